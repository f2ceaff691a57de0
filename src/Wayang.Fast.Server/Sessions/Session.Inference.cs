using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Gateway;
using Wayang.Fast.Inference.Routing;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;
using Wayang.Fast.Server.Planes;

namespace Wayang.Fast.Server.Sessions;

// Inference opcodes (0x0301-0x0308): chat, streaming chat and embeddings in the caller's tenant through the gateway;
// models, providers and the tenant's fallback policy. Policy changes are audited.
internal sealed partial class Session
{
    private void DispatchInference(in Frame frame, uint streamId, Opcode opcode, long start)
    {
        var gateway = _server.Inference;
        if (gateway is null)
        {
            _writer.WriteError(streamId, opcode, new WayangError(ErrorCode.Unavailable, "This server runs without an inference plane (no providers are configured)."), start);
            return;
        }
        // Decoding and mapping refuse bad requests (INVALID_ARGUMENT, FALLBACK_POLICY_INVALID) before anything is
        // registered: answered here, on the read loop.
        try
        {
            switch (opcode)
            {
                case Opcode.InferenceChat:
                {
                    if (!TryDecodeOrRefuse(frame.Body, streamId, opcode, start, out ChatRequestDto? dto))
                        return;
                    var request = InferenceMapping.ToRequest(dto, _principal!.TenantId);
                    StartUnary(streamId, opcode, start, request, static async (s, r, ct) =>
                        InferenceMapping.ToDto(await s._server.Inference!.ChatAsync(r, ct).ConfigureAwait(false)));
                    return;
                }

                case Opcode.InferenceChatStream:
                {
                    if (!TryDecodeOrRefuse(frame.Body, streamId, opcode, start, out ChatRequestDto? dto))
                        return;
                    var request = InferenceMapping.ToRequest(dto, _principal!.TenantId);
                    var stream = Register(streamId, opcode, start, stream: true);
                    _ = RunServerStreamAsync(stream, (Gateway: gateway, Request: request), static async (s, stream, state) =>
                    {
                        // Tokens go out only under the receiver's credit: a slow reader stalls the provider's stream (and
                        // so its HTTP read or llama.cpp decode) instead of growing a buffer here.
                        await foreach (var delta in state.Gateway.StreamChatAsync(state.Request, stream.Token).ConfigureAwait(false))
                        {
                            await stream.Credit!.WaitAsync(stream.Token).ConfigureAwait(false);
                            if (!s._writer.WriteMessage(FrameType.Stream, Opcode.InferenceChatStream, stream.StreamId, InferenceMapping.ToDto(delta)))
                                return false;
                            await s._writer.FlushAsync().ConfigureAwait(false);
                        }
                        return true;
                    });
                    return;
                }

                case Opcode.InferenceEmbed:
                {
                    if (!TryDecodeOrRefuse(frame.Body, streamId, opcode, start, out EmbedRequestDto? dto))
                        return;
                    if (string.IsNullOrWhiteSpace(dto.Model) || dto.Inputs is not { Length: > 0 } || dto.Inputs.Any(i => i is null))
                    {
                        _writer.WriteError(streamId, opcode, new WayangError(ErrorCode.InvalidArgument, "An embedding request needs a model and at least one input."), start);
                        return;
                    }
                    var request = new Wayang.Fast.Inference.Contracts.EmbeddingRequest
                    {
                        Model = dto.Model,
                        Inputs = [.. dto.Inputs],
                        TenantId = _principal!.TenantId,
                        Timeouts = dto.TotalTimeoutMs > 0 ? new Wayang.Fast.Inference.Contracts.InferenceTimeouts(Total: TimeSpan.FromMilliseconds(dto.TotalTimeoutMs)) : null,
                    };
                    StartUnary(streamId, opcode, start, request, static async (s, r, ct) =>
                    {
                        var response = await s._server.Inference!.EmbedAsync(r, ct).ConfigureAwait(false);
                        return new EmbedResponseDto { Provider = response.Provider, Model = response.Model, Vectors = [.. response.Vectors], PromptTokens = response.Usage.PromptTokens };
                    });
                    return;
                }

                case Opcode.InferenceModelList:
                    _writer.WriteMessage(FrameType.Response, opcode, streamId, new ModelListResponse { Models = [.. gateway.Models.All.Select(InferenceMapping.ToDto)] }, start);
                    return;

                case Opcode.InferenceProviderList:
                    // Health probes are I/O: off the read loop.
                    StartUnary(streamId, opcode, start, gateway, static async (s, g, ct) =>
                        new ProviderListResponse { Providers = [.. (await g.ListProvidersAsync(ct).ConfigureAwait(false)).Select(InferenceMapping.ToDto)] });
                    return;

                case Opcode.FallbackPolicyGet:
                {
                    if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static r => r.TenantId, out FallbackPolicyRequest? _, out var tenantId, allowEmpty: true))
                        return;
                    var policies = gateway.Policies!;
                    bool isSet = policies.TryGet(tenantId, out var policy);
                    _writer.WriteMessage(FrameType.Response, opcode, streamId,
                        new FallbackPolicyDto { TenantId = tenantId, IsSet = isSet, PolicyJson = FallbackPolicyStore.ToJson(isSet ? policy : FallbackPolicyStore.Empty) }, start);
                    return;
                }

                case Opcode.FallbackPolicySet:
                {
                    if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static r => r.TenantId, out FallbackPolicyDto? dto, out var tenantId))
                        return;
                    var policy = FallbackPolicyStore.FromJson(dto.PolicyJson ?? "");
                    StartAudited(streamId, opcode, start, (Tenant: tenantId, Policy: policy), $"fallback-policy:{tenantId}", tenantId, static async (s, r, ct) =>
                    {
                        var policies = s._server.Inference!.Policies!;
                        await policies.SetAsync(r.Tenant, r.Policy, ct).ConfigureAwait(false);
                        return new FallbackPolicyDto { TenantId = r.Tenant, IsSet = true, PolicyJson = FallbackPolicyStore.ToJson(policies.Get(r.Tenant)) };
                    });
                    return;
                }

                case Opcode.FallbackPolicyDelete:
                {
                    if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static r => r.TenantId, out FallbackPolicyRequest? _, out var tenantId, allowEmpty: true))
                        return;
                    StartAudited(streamId, opcode, start, tenantId, $"fallback-policy:{tenantId}", tenantId, static async (s, tenant, ct) =>
                    {
                        bool deleted = await s._server.Inference!.Policies!.DeleteAsync(tenant, ct).ConfigureAwait(false);
                        return new FallbackPolicyDto { TenantId = tenant, IsSet = deleted, PolicyJson = FallbackPolicyStore.ToJson(FallbackPolicyStore.Empty) };
                    });
                    return;
                }

                default:
                    _writer.WriteError(streamId, opcode, ErrorCode.UnknownOpcode, start);
                    return;
            }
        }
        catch (WayangException ex)
        {
            _writer.WriteError(streamId, opcode, ex.Error, start);
        }
    }
}
