using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Protocol;

// The inference gateway as an application calls it, remote or embedded: WayangClient implements it over a connection,
// the embedded client (services.AddWayangInference, in Wayang.Fast.Server) over an in-process gateway with the same
// routing, fallback, timeouts and error codes. Code written against this interface moves between the two unchanged.
// Failures are WayangException with the registry's codes in both.
public interface IInferenceClient
{
    ValueTask<ChatResponseDto> ChatAsync(ChatRequestDto request, TimeSpan? timeout = null, CancellationToken ct = default);

    IAsyncEnumerable<ChatDeltaDto> StreamChatAsync(ChatRequestDto request, CancellationToken ct = default);

    ValueTask<EmbedResponseDto> EmbedAsync(string model, IReadOnlyList<string> inputs, TimeSpan? timeout = null, CancellationToken ct = default);

    Task<IReadOnlyList<ModelDto>> ListModelsAsync(TimeSpan? timeout = null, CancellationToken ct = default);

    Task<IReadOnlyList<ProviderStatusDto>> ListProvidersAsync(TimeSpan? timeout = null, CancellationToken ct = default);
}
