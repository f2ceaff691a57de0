using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Gateway;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Routing;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Messages;
using Wayang.Fast.Server.Planes;

namespace Wayang.Fast.Server.Embedded;

// The inference gateway inside the calling process, for latency-critical services: no server, no socket, no data
// directory. The same gateway class the server runs (routing, fallback, breakers, timeouts, classification) behind
// the same IInferenceClient the remote WayangClient implements.
public sealed class EmbeddedInferenceOptions
{
    public List<IInferenceProvider> Providers { get; set; } = [];
    public List<ModelEntry> Models { get; set; } = [];
    public InferenceGatewayOptions Gateway { get; set; } = new();
    // The fallback policy every request of this process uses (there are no tenants in-process).
    public TenantFallbackPolicy? FallbackPolicy { get; set; }
    // The tenant name requests carry (what a policy or a provider sees).
    public string TenantId { get; set; } = "embedded";
}

public sealed class EmbeddedInferenceClient : IInferenceClient, IAsyncDisposable
{
    private readonly EmbeddedInferenceOptions _options;

    public EmbeddedInferenceClient(EmbeddedInferenceOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        var models = new ModelRegistry();
        foreach (var model in options.Models)
            models.Register(model);
        var policies = FallbackPolicyStore.InMemory();
        if (options.FallbackPolicy is { } policy)
            policies.SetAsync(options.TenantId, policy).AsTask().GetAwaiter().GetResult();
        Gateway = new InferenceGateway(options.Providers, models, policies, options.Gateway, logger: logger ?? NullLogger.Instance);
    }

    public InferenceGateway Gateway { get; }

    // timeout: the request's total timeout when it sets none (INFERENCE_TIMEOUT "total" when it passes, as a server
    // would answer; the remote client's timeout is its own wait for the answer).
    public async ValueTask<ChatResponseDto> ChatAsync(ChatRequestDto request, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var chat = InferenceMapping.ToRequest(request, _options.TenantId);
        ApplyTimeout(chat, timeout);
        return InferenceMapping.ToDto(await Gateway.ChatAsync(chat, ct).ConfigureAwait(false));
    }

    public async IAsyncEnumerable<ChatDeltaDto> StreamChatAsync(ChatRequestDto request, [EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var chat = InferenceMapping.ToRequest(request, _options.TenantId);
        await foreach (var delta in Gateway.StreamChatAsync(chat, ct).ConfigureAwait(false))
            yield return InferenceMapping.ToDto(delta);
    }

    public async ValueTask<EmbedResponseDto> EmbedAsync(string model, IReadOnlyList<string> inputs, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (string.IsNullOrWhiteSpace(model) || inputs.Count == 0)
            throw new WayangException(ErrorCode.InvalidArgument, "An embedding request needs a model and at least one input.");
        var request = new Inference.Contracts.EmbeddingRequest
        {
            Model = model, Inputs = [.. inputs], TenantId = _options.TenantId,
            Timeouts = timeout is { } t ? new Inference.Contracts.InferenceTimeouts(Total: t) : null,
        };
        var response = await Gateway.EmbedAsync(request, ct).ConfigureAwait(false);
        return new EmbedResponseDto { Provider = response.Provider, Model = response.Model, Vectors = [.. response.Vectors], PromptTokens = response.Usage.PromptTokens };
    }

    public Task<IReadOnlyList<ModelDto>> ListModelsAsync(TimeSpan? timeout = null, CancellationToken ct = default) =>
        Task.FromResult<IReadOnlyList<ModelDto>>([.. Gateway.Models.All.Select(InferenceMapping.ToDto)]);

    public async Task<IReadOnlyList<ProviderStatusDto>> ListProvidersAsync(TimeSpan? timeout = null, CancellationToken ct = default) =>
        [.. (await Gateway.ListProvidersAsync(ct).ConfigureAwait(false)).Select(InferenceMapping.ToDto)];

    // The client owns its providers (as the server does).
    public async ValueTask DisposeAsync()
    {
        foreach (var provider in _options.Providers)
        {
            if (provider is IAsyncDisposable asyncDisposable)
                await asyncDisposable.DisposeAsync().ConfigureAwait(false);
            else if (provider is IDisposable disposable)
                disposable.Dispose();
        }
    }

    private static void ApplyTimeout(Inference.Contracts.ChatRequest chat, TimeSpan? timeout)
    {
        if (timeout is not { } t || chat.Timeouts?.Total is not null)
            return;
        chat.Timeouts = (chat.Timeouts ?? new Inference.Contracts.InferenceTimeouts()) with { Total = t };
    }
}

public static class EmbeddedInferenceServiceCollectionExtensions
{
    // Registers the in-process gateway as the IInferenceClient singleton (the container disposes it and its providers).
    public static IServiceCollection AddWayangInference(this IServiceCollection services, Action<EmbeddedInferenceOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.TryAddSingleton(sp =>
        {
            var options = new EmbeddedInferenceOptions();
            configure(options);
            return new EmbeddedInferenceClient(options, sp.GetService<ILoggerFactory>()?.CreateLogger("Wayang.Fast.Inference"));
        });
        services.TryAddSingleton<IInferenceClient>(sp => sp.GetRequiredService<EmbeddedInferenceClient>());
        return services;
    }
}
