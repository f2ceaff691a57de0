namespace Wayang.Fast.Inference.Contracts;

// A chat completion request as the gateway takes it from any surface (binary protocol, OpenAI-compatible HTTP, the
// embedded SDK, AGENT nodes). Provider adapters translate it into their own API; fields a provider cannot honour are
// dropped where harmless (Seed) and refused where not (Tools on a provider without tool support).
public sealed class ChatRequest
{
    // A model id or alias from the model registry, or a provider's own model name when the request names a provider.
    public string Model { get; set; } = "";
    public List<ChatMessage> Messages { get; set; } = [];
    public List<ToolSpec> Tools { get; set; } = [];
    public double? Temperature { get; set; }
    public double? TopP { get; set; }
    public int? MaxTokens { get; set; }
    public List<string> Stop { get; set; } = [];
    public long? Seed { get; set; }
    public ResponseFormat ResponseFormat { get; set; } = ResponseFormat.Text;
    // JSON_SCHEMA: the schema (JSON text) the completion must follow.
    public string? ResponseSchemaJson { get; set; }
    // The platform's SLA class (Common.Runs.SlaPriority values); local runtimes order admission by it.
    public int Priority { get; set; }
    public InferenceTimeouts? Timeouts { get; set; }
    // Set by the surface from the caller's principal, never by the caller: fallback policies and quotas are per tenant.
    public string TenantId { get; set; } = "";
    // W3C trace context of the caller, when it has one.
    public string? TraceParent { get; set; }
    // The agent the request runs for (AGENT nodes): selects the agent's fallback override.
    public string? Agent { get; set; }
    // Which targets of the plan go first: LOCAL puts targets served by local runtimes before remote ones, CLOUD the
    // reverse; AUTO keeps the plan's order (the requested model, then the chain).
    public RoutePreference Preference { get; set; }
    // A credential for the provider resolved from the agent's credentialRefs: HTTP adapters send it instead of the
    // key they were configured with. Never serialized, logged or stored.
    [System.Text.Json.Serialization.JsonIgnore]
    public string? ApiKey { get; set; }
}

// Wire and persisted: explicit values, append-only.
public enum ChatRole
{
    System = 0,
    User = 1,
    Assistant = 2,
    Tool = 3,
}

public sealed class ChatMessage
{
    public ChatRole Role { get; set; }
    public List<ChatContentPart> Parts { get; set; } = [];
    // Assistant messages that called tools.
    public List<ToolCall> ToolCalls { get; set; } = [];
    // Tool messages: the call this result answers.
    public string? ToolCallId { get; set; }
    public string? Name { get; set; }

    public static ChatMessage Text(ChatRole role, string text) => new() { Role = role, Parts = [ChatContentPart.FromText(text)] };

    // The text parts joined: what a text-only provider is sent.
    public string TextContent() => Parts.Count == 1 ? Parts[0].Text ?? "" : string.Concat(Parts.Select(p => p.Text));
}

public enum ContentPartKind
{
    Text = 0,
}

public sealed class ChatContentPart
{
    public ContentPartKind Kind { get; set; }
    public string? Text { get; set; }

    public static ChatContentPart FromText(string text) => new() { Kind = ContentPartKind.Text, Text = text };
}

public sealed class ToolSpec
{
    public string Name { get; set; } = "";
    public string? Description { get; set; }
    // JSON Schema (object) of the arguments, as JSON text; null: no arguments.
    public string? ParametersJson { get; set; }
}

public sealed class ToolCall
{
    public string Id { get; set; } = "";
    public string Name { get; set; } = "";
    // The arguments as the model wrote them (JSON text; not validated by the gateway).
    public string ArgumentsJson { get; set; } = "{}";
}

// Mirrors the agent definition's ProviderPreference (same values).
public enum RoutePreference
{
    Auto = 0,
    Local = 1,
    Cloud = 2,
}

public enum ResponseFormat
{
    Text = 0,
    JsonObject = 1,
    JsonSchema = 2,
}

// The four deadlines of one request, each enforced separately (INFERENCE_TIMEOUT names which one passed). Null
// fields take the gateway's defaults.
public sealed record InferenceTimeouts(TimeSpan? Connect = null, TimeSpan? FirstToken = null, TimeSpan? BetweenTokens = null, TimeSpan? Total = null);
