namespace Wayang.Fast.Inference.Contracts;

public sealed class ChatResponse
{
    public string Id { get; set; } = "";
    // The provider instance and the provider-side model that produced the answer.
    public string Provider { get; set; } = "";
    public string Model { get; set; } = "";
    public List<ChatChoice> Choices { get; set; } = [];
    public TokenUsage Usage { get; set; } = new();
    // Every target tried before this one answered, in order, with the error that moved the gateway on; empty when the
    // first target answered.
    public List<FallbackStep> FallbackPath { get; set; } = [];
}

public sealed class ChatChoice
{
    public int Index { get; set; }
    public ChatMessage Message { get; set; } = new() { Role = ChatRole.Assistant };
    public FinishReason FinishReason { get; set; }
}

// Wire: explicit values, append-only.
public enum FinishReason
{
    Unspecified = 0,
    Stop = 1,
    Length = 2,
    ToolCalls = 3,
    ContentFilter = 4,
    Cancelled = 5,
}

public sealed class TokenUsage
{
    public int PromptTokens { get; set; }
    public int CompletionTokens { get; set; }
    public int TotalTokens => PromptTokens + CompletionTokens;
}

public sealed record FallbackStep(string Provider, string Model, string ErrorCode, string? Message = null);

// One piece of a streamed completion. Content and ToolCalls carry what is new since the previous delta; the last
// delta of a choice has FinishReason set, and the stream's last delta carries Usage when the provider reports it.
public sealed class ChatDelta
{
    // Set by the gateway on a stream's first delta: the provider instance and model that serve it (a stream falls back
    // only before its first delta).
    public string? Provider { get; set; }
    public string? Model { get; set; }
    public int Index { get; set; }
    public string? Content { get; set; }
    public List<ToolCallDelta>? ToolCalls { get; set; }
    public FinishReason? FinishReason { get; set; }
    public TokenUsage? Usage { get; set; }
}

// A streamed tool call: Index identifies the call within the message; Id and Name come with its first delta,
// ArgumentsJson arrives in fragments to be concatenated.
public sealed class ToolCallDelta
{
    public int Index { get; set; }
    public string? Id { get; set; }
    public string? Name { get; set; }
    public string? ArgumentsJson { get; set; }
}
