using Wayang.Fast.Inference.Providers;

namespace Wayang.Fast.Inference.Models;

// A provider whose models can be loaded ahead of use and unloaded on demand (llama.cpp in this process, a local
// Ollama): what ModelWarmer prefetches and evicts through. Model names are provider-side names.
public interface IWarmableProvider
{
    string Name { get; }

    // Loads the model (a no-op when it is loaded) and says what it takes in memory.
    Task<ModelLoadResult> LoadModelAsync(string model, CancellationToken cancellationToken);

    Task UnloadModelAsync(string model, CancellationToken cancellationToken);

    // What the runtime holds loaded right now, with sizes: models also load on first use and a runtime may drop them
    // by itself (Ollama's keep_alive), so the warmer reconciles its view with this.
    Task<IReadOnlyList<ProviderModel>> ListLoadedModelsAsync(CancellationToken cancellationToken);
}

// SizeBytes: 0 when the runtime does not say. LoadTime: zero when it was loaded already.
public sealed record ModelLoadResult(long SizeBytes, TimeSpan LoadTime, bool WasLoaded);

// The gateway's hook around each attempt on a target (provider instance and provider-side model): the warmer's source
// of last use, requests in flight, popularity and cold starts.
public interface IModelUsage
{
    IModelUse BeginUse(string provider, string providerModel);
}

// Disposed when the attempt ends (a stream: when it is closed), whatever the outcome.
public interface IModelUse : IDisposable
{
    // The response (unary) or the first delta (stream) arrived: a cold start's extra latency ends here.
    void FirstOutput();
}
