using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Gateway;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Planes;

// Wire DTOs (Protocol) to the gateway's contracts (Inference) and back: the planes never see MessagePack types.
internal static class InferenceMapping
{
    // INVALID_ARGUMENT for what the gateway cannot route: no model, no messages, an unknown role or format.
    public static ChatRequest ToRequest(ChatRequestDto dto, string tenantId)
    {
        if (string.IsNullOrWhiteSpace(dto.Model))
            throw new WayangException(ErrorCode.InvalidArgument, "The request names no model.");
        if (dto.Messages is not { Length: > 0 })
            throw new WayangException(ErrorCode.InvalidArgument, "The request has no messages.");
        if (dto.ResponseFormat > (byte)ResponseFormat.JsonSchema)
            throw new WayangException(ErrorCode.InvalidArgument, $"Unknown response format {dto.ResponseFormat}.");
        // MessagePack nil decodes as null even inside arrays (messages.md: receivers treat nil as the default; an
        // element cannot default, so it is refused).
        if (dto.Messages.Any(m => m is null) || dto.Tools?.Any(t => t is null) == true || dto.Stop?.Any(s => s is null) == true)
            throw new WayangException(ErrorCode.InvalidArgument, "Messages, tools and stop sequences may not contain nil.");
        var request = new ChatRequest
        {
            Model = dto.Model,
            TenantId = tenantId,
            Messages = [.. dto.Messages.Select(ToMessage)],
            Tools = [.. (dto.Tools ?? []).Select(t => new ToolSpec { Name = t.Name ?? "", Description = NullIfEmpty(t.Description), ParametersJson = NullIfEmpty(t.ParametersJson) })],
            Temperature = dto.Temperature >= 0 ? dto.Temperature : null,
            TopP = dto.TopP >= 0 ? dto.TopP : null,
            MaxTokens = dto.MaxTokens > 0 ? dto.MaxTokens : null,
            Stop = [.. dto.Stop ?? []],
            Seed = dto.HasSeed ? dto.Seed : null,
            ResponseFormat = (ResponseFormat)dto.ResponseFormat,
            ResponseSchemaJson = NullIfEmpty(dto.ResponseSchemaJson),
            Priority = dto.Priority,
            TraceParent = NullIfEmpty(dto.TraceParent),
            Agent = NullIfEmpty(dto.Agent),
        };
        if (dto.FirstTokenTimeoutMs > 0 || dto.BetweenTokensTimeoutMs > 0 || dto.TotalTimeoutMs > 0)
            request.Timeouts = new InferenceTimeouts(null, Ms(dto.FirstTokenTimeoutMs), Ms(dto.BetweenTokensTimeoutMs), Ms(dto.TotalTimeoutMs));
        return request;
    }

    public static ChatMessage ToMessage(ChatMessageDto dto)
    {
        if (dto.Role > (byte)ChatRole.Tool)
            throw new WayangException(ErrorCode.InvalidArgument, $"Unknown message role {dto.Role}.");
        if (dto.Parts?.Any(p => p is null) == true || dto.ToolCalls?.Any(t => t is null) == true)
            throw new WayangException(ErrorCode.InvalidArgument, "Message parts and tool calls may not contain nil.");
        return new ChatMessage
        {
            Role = (ChatRole)dto.Role,
            Parts = [.. (dto.Parts ?? []).Select(ChatContentPart.FromText)],
            ToolCalls = [.. (dto.ToolCalls ?? []).Select(t => new ToolCall { Id = t.Id ?? "", Name = t.Name ?? "", ArgumentsJson = string.IsNullOrEmpty(t.ArgumentsJson) ? "{}" : t.ArgumentsJson })],
            ToolCallId = NullIfEmpty(dto.ToolCallId),
            Name = NullIfEmpty(dto.Name),
        };
    }

    public static ChatMessageDto ToDto(ChatMessage m) => new()
    {
        Role = (byte)m.Role,
        Parts = [.. m.Parts.Select(p => p.Text ?? "")],
        ToolCalls = [.. m.ToolCalls.Select(t => new ToolCallDto { Id = t.Id, Name = t.Name, ArgumentsJson = t.ArgumentsJson })],
        ToolCallId = m.ToolCallId ?? "",
        Name = m.Name ?? "",
    };

    public static ChatResponseDto ToDto(ChatResponse r) => new()
    {
        Id = r.Id,
        Provider = r.Provider,
        Model = r.Model,
        Choices = [.. r.Choices.Select(c => new ChatChoiceDto { Index = c.Index, Message = ToDto(c.Message), FinishReason = (byte)c.FinishReason })],
        PromptTokens = r.Usage.PromptTokens,
        CompletionTokens = r.Usage.CompletionTokens,
        FallbackPath = [.. r.FallbackPath.Select(s => new FallbackStepDto { Provider = s.Provider, Model = s.Model, ErrorCode = s.ErrorCode, Message = s.Message ?? "" })],
    };

    public static ChatDeltaDto ToDto(ChatDelta d) => new()
    {
        Provider = d.Provider ?? "",
        Model = d.Model ?? "",
        Index = d.Index,
        Content = d.Content ?? "",
        ToolCalls = d.ToolCalls is { Count: > 0 } calls
            ? [.. calls.Select(t => new ToolCallDeltaDto { Index = t.Index, Id = t.Id ?? "", Name = t.Name ?? "", ArgumentsJson = t.ArgumentsJson ?? "" })]
            : [],
        FinishReason = (byte)(d.FinishReason ?? FinishReason.Unspecified),
        HasUsage = d.Usage is not null,
        PromptTokens = d.Usage?.PromptTokens ?? 0,
        CompletionTokens = d.Usage?.CompletionTokens ?? 0,
    };

    public static ModelDto ToDto(ModelEntry m) => new()
    {
        Id = m.Id,
        Aliases = [.. m.Aliases],
        Provider = m.Provider,
        RemoteName = m.ProviderModel,
        Format = m.Format,
        ContextLength = m.ContextLength,
        InputCostPerMillion = m.InputCostPerMillion,
        OutputCostPerMillion = m.OutputCostPerMillion,
    };

    public static ProviderStatusDto ToDto(ProviderStatus p) => new()
    {
        Name = p.Name,
        Kind = p.Kind,
        Capabilities = (int)p.Capabilities,
        Healthy = p.Health.Healthy,
        LatencyMs = p.Health.Latency.TotalMilliseconds,
        Error = p.Health.Error ?? "",
        Breakers = [.. p.Breakers.Select(b => new BreakerDto
        {
            Target = b.Target, State = (byte)b.State, ConsecutiveFailures = b.ConsecutiveFailures, OpenUntilMs = b.OpenUntil?.ToUnixTimeMilliseconds() ?? 0, Opened = b.Opened,
        })],
    };

    private static TimeSpan? Ms(int ms) => ms > 0 ? TimeSpan.FromMilliseconds(ms) : null;

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;
}
