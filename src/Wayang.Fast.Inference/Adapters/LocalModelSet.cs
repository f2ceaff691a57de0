using System.Collections.Concurrent;
using System.Diagnostics;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Inference.Providers;

namespace Wayang.Fast.Inference.Adapters;

// A model an in-process provider (llamacpp, gollek) holds loaded.
internal interface ILocalModel : IDisposable
{
    string Name { get; }
    // What the model holds in memory while loaded, for the gateway's memory accounting.
    long SizeBytes { get; }
    // Tokens one request may hold: prompt plus completion.
    int ContextLength { get; }
    // True once the model failed underneath: it is dropped and loaded afresh on its next use.
    bool Faulted { get; }
}

// The models an in-process provider has loaded, by name: each loaded once on first use (or when the warmer asks), the
// load shared by every request that waits for it, kept until Unload. The provider says where a model's file is (which
// fails for an unknown model) and how it is loaded.
internal sealed class LocalModelSet<TModel> : IDisposable
    where TModel : class, ILocalModel
{
    private readonly ConcurrentDictionary<string, Lazy<Task<TModel>>> _models = new(StringComparer.Ordinal);
    private readonly Func<string, string> _path;
    private readonly Func<string, string, Task<TModel>> _load;

    // path: a model name to its file; load: a name and its file to the loaded model.
    public LocalModelSet(Func<string, string> path, Func<string, string, Task<TModel>> load)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(load);
        _path = path;
        _load = load;
    }

    public bool IsLoaded(string model) => TryGetLoaded(model, out _);

    // The models whose load has finished.
    public IEnumerable<TModel> Loaded =>
        _models.Values.Where(l => l.IsValueCreated && l.Value.IsCompletedSuccessfully).Select(l => l.Value.Result);

    public IReadOnlyList<ProviderModel> LoadedModels =>
    [
        .. Loaded.Select(m => new ProviderModel(m.Name, m.SizeBytes, m.ContextLength, Loaded: true)).OrderBy(m => m.Name, StringComparer.Ordinal),
    ];

    public bool TryGetLoaded(string model, out TModel loaded)
    {
        if (_models.TryGetValue(model, out var lazy) && lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully)
        {
            loaded = lazy.Value.Result;
            return true;
        }
        loaded = null!;
        return false;
    }

    public async Task<TModel> GetAsync(string model, CancellationToken cancellationToken)
    {
        string path = _path(model);
        while (true)
        {
            var lazy = _models.GetOrAdd(model, name => new Lazy<Task<TModel>>(() => _load(name, path)));
            TModel loaded;
            try
            {
                // The load itself is not cancelled by one waiter's token: other requests may wait on the same load.
                loaded = await lazy.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception) when (lazy.Value.IsFaulted)
            {
                // A failed load is not cached: the next request tries again (the file may have been replaced).
                _models.TryRemove(new KeyValuePair<string, Lazy<Task<TModel>>>(model, lazy));
                throw;
            }
            if (!loaded.Faulted)
                return loaded;
            // It failed underneath: the model is dropped and loaded afresh rather than failing every request.
            if (_models.TryRemove(new KeyValuePair<string, Lazy<Task<TModel>>>(model, lazy)))
                loaded.Dispose();
        }
    }

    // Frees the model. Requests still running on it fail as the model's Dispose makes them.
    public bool Unload(string model)
    {
        if (!_models.TryRemove(model, out var lazy) || !lazy.IsValueCreated)
            return false;
        if (lazy.Value.IsCompletedSuccessfully)
        {
            lazy.Value.Result.Dispose();
            return true;
        }
        // Still loading: whoever awaits the load gets the model; it is disposed when the load ends.
        _ = lazy.Value.ContinueWith(t => t.Result.Dispose(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        return true;
    }

    // IWarmableProvider.LoadModelAsync: the load's time, zero where the model was loaded already.
    public async Task<ModelLoadResult> WarmAsync(string model, CancellationToken cancellationToken)
    {
        bool was = IsLoaded(model);
        long start = Stopwatch.GetTimestamp();
        var loaded = await GetAsync(model, cancellationToken).ConfigureAwait(false);
        return new ModelLoadResult(loaded.SizeBytes, was ? TimeSpan.Zero : Stopwatch.GetElapsedTime(start), was);
    }

    // The GGUF files of the models directory, the loaded ones with their context length, by name.
    public IReadOnlyList<ProviderModel> ListFiles(string modelsDirectory)
    {
        if (!Directory.Exists(modelsDirectory))
            return [];
        var list = new List<ProviderModel>();
        foreach (string file in Directory.EnumerateFiles(modelsDirectory, "*.gguf"))
        {
            string name = Path.GetFileNameWithoutExtension(file);
            var loaded = TryGetLoaded(name, out var m) ? m : null;
            list.Add(new ProviderModel(name, new FileInfo(file).Length, loaded?.ContextLength, loaded is not null));
        }
        list.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return list;
    }

    // Healthy while the models directory exists and lists and no loaded model has failed underneath; failure says why
    // a failed model failed.
    public ProviderHealth CheckHealth(string modelsDirectory, Func<TModel, string>? failure = null)
    {
        var watch = Stopwatch.StartNew();
        try
        {
            if (!Directory.Exists(modelsDirectory))
                return new ProviderHealth(false, watch.Elapsed, $"The models directory '{modelsDirectory}' does not exist.");
            ListFiles(modelsDirectory);
            var failed = Loaded.FirstOrDefault(m => m.Faulted);
            return failed is null ? new ProviderHealth(true, watch.Elapsed)
                : new ProviderHealth(false, watch.Elapsed, failure?.Invoke(failed) ?? $"Model '{failed.Name}' failed.");
        }
        catch (Exception ex)
        {
            return new ProviderHealth(false, watch.Elapsed, ex.Message);
        }
    }

    public void Dispose()
    {
        foreach (string name in _models.Keys.ToList())
            Unload(name);
    }
}
