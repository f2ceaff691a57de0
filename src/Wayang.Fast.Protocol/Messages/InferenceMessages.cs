using MessagePack;

namespace Wayang.Fast.Protocol.Messages;

// Inference (opcodes 0x0301-0x0308). protocol-spec/messages.md documents every field, protocol-spec/inference.md the
// gateway. Enums travel as their numbers (ChatRole, FinishReason, ResponseFormat: protocol-spec/inference.md); 0 in
// an optional number means "unset" (the gateway's default), so no field needs a nil.

// InferenceChat and InferenceChatStream. The tenant is the caller's; Agent selects the tenant's per-agent fallback
// override.
[MessagePackObject]
public sealed class ChatRequestDto
{
    [Key(0)] public string Model { get; set; } = "";
    [Key(1)] public ChatMessageDto[] Messages { get; set; } = [];
    [Key(2)] public ToolSpecDto[] Tools { get; set; } = [];
    // Negative: unset.
    [Key(3)] public double Temperature { get; set; } = -1;
    [Key(4)] public double TopP { get; set; } = -1;
    [Key(5)] public int MaxTokens { get; set; }
    [Key(6)] public string[] Stop { get; set; } = [];
    [Key(7)] public bool HasSeed { get; set; }
    [Key(8)] public long Seed { get; set; }
    [Key(9)] public byte ResponseFormat { get; set; }
    [Key(10)] public string ResponseSchemaJson { get; set; } = "";
    [Key(11)] public int Priority { get; set; }
    [Key(12)] public int FirstTokenTimeoutMs { get; set; }
    [Key(13)] public int BetweenTokensTimeoutMs { get; set; }
    [Key(14)] public int TotalTimeoutMs { get; set; }
    [Key(15)] public string TraceParent { get; set; } = "";
    [Key(16)] public string Agent { get; set; } = "";
}

[MessagePackObject]
public sealed class ChatMessageDto
{
    [Key(0)] public byte Role { get; set; }
    // Text parts, in order.
    [Key(1)] public string[] Parts { get; set; } = [];
    [Key(2)] public ToolCallDto[] ToolCalls { get; set; } = [];
    [Key(3)] public string ToolCallId { get; set; } = "";
    [Key(4)] public string Name { get; set; } = "";
}

[MessagePackObject]
public sealed class ToolSpecDto
{
    [Key(0)] public string Name { get; set; } = "";
    [Key(1)] public string Description { get; set; } = "";
    [Key(2)] public string ParametersJson { get; set; } = "";
}

[MessagePackObject]
public sealed class ToolCallDto
{
    [Key(0)] public string Id { get; set; } = "";
    [Key(1)] public string Name { get; set; } = "";
    [Key(2)] public string ArgumentsJson { get; set; } = "";
}

[MessagePackObject]
public sealed class ChatResponseDto
{
    [Key(0)] public string Id { get; set; } = "";
    [Key(1)] public string Provider { get; set; } = "";
    [Key(2)] public string Model { get; set; } = "";
    [Key(3)] public ChatChoiceDto[] Choices { get; set; } = [];
    [Key(4)] public int PromptTokens { get; set; }
    [Key(5)] public int CompletionTokens { get; set; }
    [Key(6)] public FallbackStepDto[] FallbackPath { get; set; } = [];
}

[MessagePackObject]
public sealed class ChatChoiceDto
{
    [Key(0)] public int Index { get; set; }
    [Key(1)] public ChatMessageDto Message { get; set; } = new();
    [Key(2)] public byte FinishReason { get; set; }
}

[MessagePackObject]
public sealed class FallbackStepDto
{
    [Key(0)] public string Provider { get; set; } = "";
    [Key(1)] public string Model { get; set; } = "";
    [Key(2)] public string ErrorCode { get; set; } = "";
    [Key(3)] public string Message { get; set; } = "";
}

// One STREAM frame of InferenceChatStream. Provider and Model are set on the first; FinishReason (0: none yet) on the
// last of a choice; HasUsage on the one that carries the token counts.
[MessagePackObject]
public sealed class ChatDeltaDto
{
    [Key(0)] public string Provider { get; set; } = "";
    [Key(1)] public string Model { get; set; } = "";
    [Key(2)] public int Index { get; set; }
    [Key(3)] public string Content { get; set; } = "";
    [Key(4)] public ToolCallDeltaDto[] ToolCalls { get; set; } = [];
    [Key(5)] public byte FinishReason { get; set; }
    [Key(6)] public bool HasUsage { get; set; }
    [Key(7)] public int PromptTokens { get; set; }
    [Key(8)] public int CompletionTokens { get; set; }
}

[MessagePackObject]
public sealed class ToolCallDeltaDto
{
    [Key(0)] public int Index { get; set; }
    [Key(1)] public string Id { get; set; } = "";
    [Key(2)] public string Name { get; set; } = "";
    [Key(3)] public string ArgumentsJson { get; set; } = "";
}

[MessagePackObject]
public sealed class EmbedRequestDto
{
    [Key(0)] public string Model { get; set; } = "";
    [Key(1)] public string[] Inputs { get; set; } = [];
    [Key(2)] public int TotalTimeoutMs { get; set; }
}

[MessagePackObject]
public sealed class EmbedResponseDto
{
    [Key(0)] public string Provider { get; set; } = "";
    [Key(1)] public string Model { get; set; } = "";
    [Key(2)] public float[][] Vectors { get; set; } = [];
    [Key(3)] public int PromptTokens { get; set; }
}

[MessagePackObject]
public sealed class ModelListResponse
{
    [Key(0)] public ModelDto[] Models { get; set; } = [];
}

[MessagePackObject]
public sealed class ModelDto
{
    [Key(0)] public string Id { get; set; } = "";
    [Key(1)] public string[] Aliases { get; set; } = [];
    [Key(2)] public string Provider { get; set; } = "";
    [Key(3)] public string RemoteName { get; set; } = "";
    [Key(4)] public string Format { get; set; } = "";
    [Key(5)] public int ContextLength { get; set; }
    [Key(6)] public double InputCostPerMillion { get; set; }
    [Key(7)] public double OutputCostPerMillion { get; set; }
}

[MessagePackObject]
public sealed class ProviderListResponse
{
    [Key(0)] public ProviderStatusDto[] Providers { get; set; } = [];
}

[MessagePackObject]
public sealed class ProviderStatusDto
{
    [Key(0)] public string Name { get; set; } = "";
    [Key(1)] public string Kind { get; set; } = "";
    // ProviderCapabilities flags (protocol-spec/inference.md).
    [Key(2)] public int Capabilities { get; set; }
    [Key(3)] public bool Healthy { get; set; }
    [Key(4)] public double LatencyMs { get; set; }
    [Key(5)] public string Error { get; set; } = "";
    [Key(6)] public BreakerDto[] Breakers { get; set; } = [];
}

[MessagePackObject]
public sealed class BreakerDto
{
    [Key(0)] public string Target { get; set; } = "";
    // 0 closed, 1 open, 2 half-open.
    [Key(1)] public byte State { get; set; }
    [Key(2)] public int ConsecutiveFailures { get; set; }
    // Unix ms until which an open breaker refuses; 0 when not open.
    [Key(3)] public long OpenUntilMs { get; set; }
    [Key(4)] public long Opened { get; set; }
}

// FallbackPolicySet (TenantId, PolicyJson) and the answer of all three policy opcodes. PolicyJson is the policy as
// JSON (protocol-spec/inference.md#fallback-policies); TenantId "" is the caller's own tenant.
[MessagePackObject]
public sealed class FallbackPolicyDto
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string PolicyJson { get; set; } = "";
    [Key(2)] public bool IsSet { get; set; }
}

// FallbackPolicyGet and FallbackPolicyDelete.
[MessagePackObject]
public sealed class FallbackPolicyRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
}
