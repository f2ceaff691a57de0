using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Client;

// The inference gateway (protocol-spec/inference.md): chat, streaming chat, embeddings, models, providers and the
// tenant's fallback policy. Answers are the protocol's DTOs (messages.md documents every field).
public sealed partial class WayangClient : IInferenceClient
{
    public ValueTask<ChatResponseDto> ChatAsync(ChatRequestDto request, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return CallAsync<ChatRequestDto, ChatResponseDto>(Opcode.InferenceChat, request, timeout, ct);
    }

    // Deltas as the server sends them, under this client's stream credit (a slow consumer slows the provider, it does
    // not grow buffers). A failure after some deltas surfaces as WayangException from the enumeration.
    public IAsyncEnumerable<ChatDeltaDto> StreamChatAsync(ChatRequestDto request, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return StreamAsync<ChatRequestDto, ChatDeltaDto>(Opcode.InferenceChatStream, request, ct);
    }

    public ValueTask<EmbedResponseDto> EmbedAsync(string model, IReadOnlyList<string> inputs, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        return CallAsync<EmbedRequestDto, EmbedResponseDto>(Opcode.InferenceEmbed, new EmbedRequestDto { Model = model, Inputs = [.. inputs] }, timeout, ct);
    }

    public async Task<IReadOnlyList<ModelDto>> ListModelsAsync(TimeSpan? timeout = null, CancellationToken ct = default) =>
        (await CallAsync<ModelListResponse>(Opcode.InferenceModelList, timeout, ct).ConfigureAwait(false)).Models ?? [];

    public async Task<IReadOnlyList<ProviderStatusDto>> ListProvidersAsync(TimeSpan? timeout = null, CancellationToken ct = default) =>
        (await CallAsync<ProviderListResponse>(Opcode.InferenceProviderList, timeout, ct).ConfigureAwait(false)).Providers ?? [];

    // policyJson: protocol-spec/inference.md#fallback-policies. tenantId null or empty: the caller's own tenant.
    public ValueTask<FallbackPolicyDto> SetFallbackPolicyAsync(string policyJson, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<FallbackPolicyDto, FallbackPolicyDto>(Opcode.FallbackPolicySet, new FallbackPolicyDto { TenantId = tenantId ?? "", PolicyJson = policyJson }, timeout, ct);

    public ValueTask<FallbackPolicyDto> GetFallbackPolicyAsync(string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<FallbackPolicyRequest, FallbackPolicyDto>(Opcode.FallbackPolicyGet, new FallbackPolicyRequest { TenantId = tenantId ?? "" }, timeout, ct);

    // IsSet in the answer: whether a policy was there to delete.
    public ValueTask<FallbackPolicyDto> DeleteFallbackPolicyAsync(string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<FallbackPolicyRequest, FallbackPolicyDto>(Opcode.FallbackPolicyDelete, new FallbackPolicyRequest { TenantId = tenantId ?? "" }, timeout, ct);
}
