using System.Text.Json;
using System.Text.Json.Serialization;

namespace Wayang.Fast.Control.Definitions;

// One version of an agent definition: what the inference plane needs to call a model on an AGENT node's behalf.
// Clients send it as JSON (camelCase, enums as upper-case names; protocol-spec/schemas/agent-definition.schema.json)
// and it is stored as JSON too, so it stays plain data: checks live in AgentValidator, versions in AgentRegistry.
public sealed class AgentDefinition
{
    // Chosen by the author: the agent's name within its tenant (Ids.IsValidName).
    public string Id { get; set; } = "";

    // Assigned by the registry (1, 2, ...); whatever a client sends here is ignored.
    public int Version { get; set; }

    public string? Description { get; set; }

    // Exactly one of Model (a provider's model id) and ModelAlias (resolved by the inference plane's model registry).
    public string? Model { get; set; }
    public string? ModelAlias { get; set; }

    public ProviderPreference ProviderPreference { get; set; } = ProviderPreference.Auto;

    // Sent verbatim as the system message.
    public string? SystemPrompt { get; set; }

    // The user message: "{{name}}" placeholders are filled from the node's input, and every one must be declared in
    // Variables. There is no escape for a literal "{{".
    public string? PromptTemplate { get; set; }

    public List<TemplateVariable> Variables { get; set; } = [];

    public ModelParameters? Parameters { get; set; }

    public List<ToolDefinition> Tools { get; set; } = [];

    // "secret://<path>" references, resolved by the secrets store when the agent runs: a definition (and so every
    // listing and export of it) never holds a secret itself.
    public List<string> CredentialRefs { get; set; } = [];

    public GuardrailSettings? Guardrails { get; set; }

    public RedactionSettings? Redaction { get; set; }
}

public sealed class TemplateVariable
{
    public string Name { get; set; } = "";

    // A required variable missing from the node's input fails the call; an optional one renders as "".
    public bool Required { get; set; }

    public string? Description { get; set; }
}

public sealed class ModelParameters
{
    public double? Temperature { get; set; }
    public double? TopP { get; set; }
    public int? MaxTokens { get; set; }
    public List<string> Stop { get; set; } = [];
    public long? Seed { get; set; }
}

public sealed class ToolDefinition
{
    public string Name { get; set; } = "";
    public string? Description { get; set; }
    // A JSON Schema (an object schema) of the arguments the model passes; opaque to the control plane beyond being
    // a buildable schema.
    public JsonElement? Parameters { get; set; }
}

public sealed class GuardrailSettings
{
    // Redact personal data from the prompt before it leaves for a cloud provider.
    public bool RedactPii { get; set; }
    public List<string> BlockedTopics { get; set; } = [];
    // Longest rendered prompt accepted, in characters.
    public int? MaxInputChars { get; set; }
}

// What is kept out of traces and logs (the call itself is unchanged).
public sealed class RedactionSettings
{
    public bool Prompts { get; set; }
    public bool Completions { get; set; }
    // Extra .NET regular expressions whose matches are replaced in what is logged.
    public List<string> Patterns { get; set; } = [];
    // What a redacted span becomes; null: "[REDACTED]".
    public string? Replacement { get; set; }
}

// Persisted (inside stored definitions, as names) and on the wire: explicit values, append-only, frozen by a golden
// test. There is no UNSPECIFIED member: a definition that leaves it out means AUTO.
[JsonConverter(typeof(JsonStringEnumConverter<ProviderPreference>))]
public enum ProviderPreference
{
    // The inference plane's routing decides (local when a local runtime serves the model, else cloud).
    [JsonStringEnumMemberName("AUTO")] Auto = 0,
    [JsonStringEnumMemberName("LOCAL")] Local = 1,
    [JsonStringEnumMemberName("CLOUD")] Cloud = 2,
}
