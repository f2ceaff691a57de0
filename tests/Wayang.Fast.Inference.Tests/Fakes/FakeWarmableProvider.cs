using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Inference.Providers;

namespace Wayang.Fast.Inference.Tests.Fakes;

// A local runtime in memory: models of scripted sizes that load on warm or on first request (as llama.cpp and Ollama
// do), with load and unload counts. A request holds while its model's gate is closed, so a test can keep it in flight.
public sealed class FakeWarmableProvider(string name) : IInferenceProvider, IWarmableProvider
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _gates = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _warmed = new(StringComparer.Ordinal);

    public string Name => name;
    public string Kind => "fake-local";
    public ProviderCapabilities Capabilities => ProviderCapabilities.Chat | ProviderCapabilities.Streaming | ProviderCapabilities.Local;

    public ConcurrentDictionary<string, long> Sizes { get; } = new(StringComparer.Ordinal);
    public ConcurrentDictionary<string, bool> Loaded { get; } = new(StringComparer.Ordinal);
    public ConcurrentDictionary<string, int> Loads { get; } = new(StringComparer.Ordinal);
    public ConcurrentDictionary<string, int> Unloads { get; } = new(StringComparer.Ordinal);
    // Completed when a request for the model has reached the provider (it is in flight).
    public ConcurrentDictionary<string, TaskCompletionSource> Entered { get; } = new(StringComparer.Ordinal);

    public int LoadsOf(string model) => Loads.GetValueOrDefault(model);
    public int UnloadsOf(string model) => Unloads.GetValueOrDefault(model);

    // Requests for the model wait until Open(model).
    public void Close(string model) => _gates[model] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Open(string model)
    {
        if (_gates.TryRemove(model, out var gate))
            gate.TrySetResult();
    }

    public Task EnteredAsync(string model) => EnteredFor(model).Task;

    // Completed by the next LoadModelAsync of the model (a warm, not a request's own load).
    public Task WarmedAsync(string model) =>
        _warmed.GetOrAdd(model, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    private TaskCompletionSource EnteredFor(string model) =>
        Entered.GetOrAdd(model, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public async Task<ChatResponse> ChatAsync(ChatRequest request, string model, CancellationToken cancellationToken)
    {
        await EnterAsync(model, cancellationToken);
        return FakeProvider.Answer(model, "ok");
    }

    public async IAsyncEnumerable<ChatDelta> StreamChatAsync(ChatRequest request, string model, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await EnterAsync(model, cancellationToken);
        await foreach (var d in FakeProvider.Tokens(["o", "k"], cancellationToken))
            yield return d;
    }

    public Task<EmbeddingResponse> EmbedAsync(EmbeddingRequest request, string model, CancellationToken cancellationToken) =>
        throw new NotSupportedException();

    public Task<IReadOnlyList<ProviderModel>> ListModelsAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ProviderModel>>([.. Sizes.Select(kv => new ProviderModel(kv.Key, kv.Value, Loaded: Loaded.ContainsKey(kv.Key)))]);

    public Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken) => Task.FromResult(new ProviderHealth(true, TimeSpan.Zero));

    public Task<ModelLoadResult> LoadModelAsync(string model, CancellationToken cancellationToken)
    {
        if (!Sizes.TryGetValue(model, out long size))
            throw new InvalidOperationException($"no model {model}");
        bool was = !Loaded.TryAdd(model, true);
        if (!was)
            Loads.AddOrUpdate(model, 1, (_, n) => n + 1);
        if (_warmed.TryRemove(model, out var warmed))
            warmed.TrySetResult();
        return Task.FromResult(new ModelLoadResult(size, was ? TimeSpan.Zero : TimeSpan.FromMilliseconds(5), was));
    }

    public Task UnloadModelAsync(string model, CancellationToken cancellationToken)
    {
        if (Loaded.TryRemove(model, out _))
            Unloads.AddOrUpdate(model, 1, (_, n) => n + 1);
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<ProviderModel>> ListLoadedModelsAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ProviderModel>>([.. Loaded.Keys.Select(m => new ProviderModel(m, Sizes.GetValueOrDefault(m), Loaded: true))]);

    private async Task EnterAsync(string model, CancellationToken cancellationToken)
    {
        // The runtime loads a model on first use, as the real ones do.
        if (Loaded.TryAdd(model, true))
            Loads.AddOrUpdate(model, 1, (_, n) => n + 1);
        EnteredFor(model).TrySetResult();
        if (_gates.TryGetValue(model, out var gate))
            await gate.Task.WaitAsync(cancellationToken);
    }
}
