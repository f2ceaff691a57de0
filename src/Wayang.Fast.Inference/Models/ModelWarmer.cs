using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Wayang.Fast.Inference.Providers;

namespace Wayang.Fast.Inference.Models;

// Keeps the models of local runtimes (providers with the Local capability that implement IWarmableProvider) loaded
// ahead of requests: the configured ones at start, the most requested ones as popularity changes, within a memory
// budget. It learns about requests through the gateway's IModelUsage hook: last use (LRU order), requests in flight
// (never evicted), decayed request counts (popularity) and cold starts (a request for a model it did not hold
// loaded, with the time until that request's first output).
public sealed partial class ModelWarmer : IModelUsage, IAsyncDisposable
{
    private readonly Dictionary<string, IWarmableProvider> _providers;
    private readonly ModelRegistry _models;
    private readonly ModelWarmerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, State> _states = new(StringComparer.OrdinalIgnoreCase);
    // Loads, unloads and rebalances one at a time: each decides from the budget the previous one left.
    private readonly SemaphoreSlim _work = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private ITimer? _timer;
    private long _prefetches, _coldStarts, _evictions, _overBudgetLoads, _loadFailures;
    private long _coldLatencyCount;
    private double _coldLatencyTotalMs, _coldLatencyLastMs, _coldLatencyMaxMs;

    public ModelWarmer(IEnumerable<IInferenceProvider> providers, ModelRegistry models, ModelWarmerOptions? options = null,
        TimeProvider? time = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(providers);
        ArgumentNullException.ThrowIfNull(models);
        _providers = providers.Where(p => p.Capabilities.HasFlag(ProviderCapabilities.Local))
            .OfType<IWarmableProvider>()
            .ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        _models = models;
        _options = options ?? new ModelWarmerOptions();
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
    }

    // Learns what the runtimes hold already (an Ollama keeps models across our restarts), loads WarmAtStart and starts
    // the rebalance timer. A model that fails to load is logged and counted, not fatal.
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await _work.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await ReconcileAsync(cancellationToken).ConfigureAwait(false);
            foreach (string name in _options.WarmAtStart)
            {
                if (TryResolve(name, out var provider, out string model))
                    await LoadAsync(provider, model, prefetch: true, protect: null, cancellationToken).ConfigureAwait(false);
                else
                    LogUnknownModel(name);
            }
        }
        finally
        {
            _work.Release();
        }
        if (_options.RebalanceInterval > TimeSpan.Zero)
            _timer = _time.CreateTimer(static s => ((ModelWarmer)s!).OnTimer(), this, _options.RebalanceInterval, _options.RebalanceInterval);
    }

    // Loads one model now (an operator's warm), evicting under the budget like any load. False: not a model of a
    // warmable local provider, or the load failed.
    public async Task<bool> WarmAsync(string model, CancellationToken cancellationToken = default)
    {
        if (!TryResolve(model, out var provider, out string providerModel))
            return false;
        await _work.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await LoadAsync(provider, providerModel, prefetch: true, protect: null, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _work.Release();
        }
    }

    // Reconciles with the runtimes, loads the popular models not loaded, then evicts least recently used models while
    // the loaded bytes exceed the budget. The timer calls it; tests call it directly.
    public async Task RebalanceAsync(CancellationToken cancellationToken = default)
    {
        await _work.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await ReconcileAsync(cancellationToken).ConfigureAwait(false);
            var popular = Popular();
            // Popular models are not evicted to make room for each other: that would load and unload them in turns.
            var protect = new HashSet<string>(popular.Select(s => s.Key), StringComparer.OrdinalIgnoreCase);
            foreach (var s in popular)
            {
                if (!s.Loaded)
                    await LoadAsync(s.Provider, s.Model, prefetch: true, protect, cancellationToken).ConfigureAwait(false);
            }
            await EvictOverBudgetAsync(keep: null, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _work.Release();
        }
    }

    public ModelWarmerSnapshot Snapshot()
    {
        double now = NowSeconds;
        lock (_gate)
        {
            var loaded = _states.Values.Where(s => s.Loaded).OrderBy(s => s.Key, StringComparer.Ordinal)
                .Select(s => new LoadedModelSnapshot(s.Provider.Name, s.Model, s.SizeBytes, s.LastUse, s.InFlight, s.ScoreAt(now, HalfLife)))
                .ToList();
            return new ModelWarmerSnapshot(loaded, loaded.Sum(m => m.SizeBytes), _options.MemoryBudgetBytes, _prefetches, _coldStarts, _evictions,
                _overBudgetLoads, _loadFailures, new ColdStartLatency(_coldLatencyCount, _coldLatencyTotalMs, _coldLatencyLastMs, _coldLatencyMaxMs));
        }
    }

    public IModelUse BeginUse(string provider, string providerModel)
    {
        if (!_providers.TryGetValue(provider, out var warmable))
            return NoUse.Instance;
        long now = _time.GetTimestamp();
        bool cold;
        lock (_gate)
        {
            var state = StateFor(warmable, providerModel);
            state.InFlight++;
            state.LastUse = _time.GetUtcNow();
            state.AddRequest(NowSeconds, HalfLife);
            cold = !state.Loaded;
            if (cold)
                _coldStarts++;
        }
        if (cold)
            LogColdStart(provider, providerModel);
        return new Use(this, warmable, providerModel, cold, now);
    }

    public async ValueTask DisposeAsync()
    {
        if (_timer is not null)
            await _timer.DisposeAsync().ConfigureAwait(false);
        await _stopping.CancelAsync().ConfigureAwait(false);
        // A timer rebalance still running ends at its next await; waiting for it keeps disposal from racing it.
        await _work.WaitAsync().ConfigureAwait(false);
        _work.Release();
        _stopping.Dispose();
    }

    // ---- internals ----

    private double NowSeconds => _time.GetTimestamp() / (double)_time.TimestampFrequency;

    private TimeSpan HalfLife => _options.PopularityHalfLife > TimeSpan.Zero ? _options.PopularityHalfLife : TimeSpan.FromMinutes(30);

    private void OnTimer()
    {
        // A rebalance still running (a slow load) makes this tick a no-op rather than a queue of them.
        if (_stopping.IsCancellationRequested || _work.CurrentCount == 0)
            return;
        _ = Task.Run(async () =>
        {
            try
            {
                await RebalanceAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
            }
            catch (Exception ex)
            {
                LogRebalanceFailed(ex);
            }
        });
    }

    private bool TryResolve(string name, out IWarmableProvider provider, out string model)
    {
        provider = null!;
        model = "";
        if (_models.TryResolve(name, out var entry))
        {
            model = entry.ProviderModel;
            return _providers.TryGetValue(entry.Provider, out provider!);
        }
        int slash = name.IndexOf('/', StringComparison.Ordinal);
        if (slash > 0 && _providers.TryGetValue(name[..slash], out provider!))
        {
            model = name[(slash + 1)..];
            return true;
        }
        return false;
    }

    private State StateFor(IWarmableProvider provider, string model)
    {
        string key = string.Concat(provider.Name, "/", model);
        if (!_states.TryGetValue(key, out var state))
            _states[key] = state = new State(provider, model, key);
        return state;
    }

    private List<State> Popular()
    {
        if (_options.PopularCount <= 0)
            return [];
        double now = NowSeconds;
        lock (_gate)
        {
            return [.. _states.Values.Select(s => (State: s, Score: s.ScoreAt(now, HalfLife)))
                .Where(x => x.Score >= _options.PopularMinScore)
                .OrderByDescending(x => x.Score).ThenBy(x => x.State.Key, StringComparer.Ordinal)
                .Take(_options.PopularCount)
                .Select(x => x.State)];
        }
    }

    // The runtimes are the truth about what is loaded: a request loads a model on first use, Ollama drops one when
    // its keep_alive ends, and sizes are known only once loaded. A runtime that cannot be asked keeps our view.
    private async Task ReconcileAsync(CancellationToken cancellationToken)
    {
        foreach (var provider in _providers.Values)
        {
            IReadOnlyList<ProviderModel> loaded;
            try
            {
                loaded = await provider.ListLoadedModelsAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                LogReconcileFailed(provider.Name, ex.Message);
                continue;
            }
            var names = loaded.ToDictionary(m => m.Name, StringComparer.OrdinalIgnoreCase);
            lock (_gate)
            {
                foreach (var m in loaded)
                {
                    var state = StateFor(provider, m.Name);
                    if (!state.Loaded)
                    {
                        state.Loaded = true;
                        if (state.LastUse == default)
                            state.LastUse = _time.GetUtcNow();
                    }
                    if (m.SizeBytes is long size and > 0)
                        state.SizeBytes = size;
                }
                foreach (var state in _states.Values)
                {
                    if (ReferenceEquals(state.Provider, provider) && state.Loaded && state.InFlight == 0 && !names.ContainsKey(state.Model))
                        state.Loaded = false;
                }
            }
        }
    }

    // Called holding _work. Evicts for the model's known size first (so the runtime does not hold both), then, with
    // the size the load reports, again; the model just loaded and `protect` are never victims.
    private async Task<bool> LoadAsync(IWarmableProvider provider, string model, bool prefetch, HashSet<string>? protect, CancellationToken cancellationToken)
    {
        State state;
        lock (_gate)
            state = StateFor(provider, model);
        var keep = new HashSet<string>(protect ?? [], StringComparer.OrdinalIgnoreCase) { state.Key };
        if (state.SizeBytes > 0 && !state.Loaded)
            await EvictOverBudgetAsync(keep, cancellationToken, incoming: state.SizeBytes).ConfigureAwait(false);
        ModelLoadResult result;
        try
        {
            result = await provider.LoadModelAsync(model, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            lock (_gate)
                _loadFailures++;
            LogLoadFailed(provider.Name, model, ex.Message);
            return false;
        }
        lock (_gate)
        {
            if (result.SizeBytes > 0)
                state.SizeBytes = result.SizeBytes;
            state.Loaded = true;
            state.LastUse = _time.GetUtcNow();
            if (prefetch && !result.WasLoaded)
                _prefetches++;
        }
        LogLoaded(provider.Name, model, state.SizeBytes, result.LoadTime.TotalMilliseconds);
        if (!await EvictOverBudgetAsync(keep, cancellationToken).ConfigureAwait(false))
        {
            lock (_gate)
                _overBudgetLoads++;
            LogOverBudget(provider.Name, model, LoadedBytes(), _options.MemoryBudgetBytes);
        }
        return true;
    }

    // Unloads least recently used models, skipping those with requests in flight and those in `keep`, until the
    // loaded bytes (plus `incoming`) fit the budget. False: they still do not fit.
    private async Task<bool> EvictOverBudgetAsync(HashSet<string>? keep, CancellationToken cancellationToken, long incoming = 0)
    {
        long budget = _options.MemoryBudgetBytes;
        if (budget <= 0)
            return true;
        while (true)
        {
            State? victim;
            lock (_gate)
            {
                long loaded = _states.Values.Where(s => s.Loaded).Sum(s => s.SizeBytes);
                if (loaded + incoming <= budget)
                    return true;
                victim = _states.Values
                    .Where(s => s.Loaded && s.InFlight == 0 && (keep is null || !keep.Contains(s.Key)))
                    .OrderBy(s => s.LastUse).ThenBy(s => s.Key, StringComparer.Ordinal)
                    .FirstOrDefault();
                if (victim is null)
                    return false;
                // Marked unloaded before the unload: a request arriving meanwhile is a cold start, and the next
                // pass of this loop does not pick the same model again.
                victim.Loaded = false;
                _evictions++;
            }
            LogEvicting(victim.Provider.Name, victim.Model, victim.SizeBytes);
            try
            {
                await victim.Provider.UnloadModelAsync(victim.Model, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // The runtime may still hold it; the next reconcile says so and it becomes a candidate again.
                LogUnloadFailed(victim.Provider.Name, victim.Model, ex.Message);
            }
        }
    }

    private long LoadedBytes()
    {
        lock (_gate)
            return _states.Values.Where(s => s.Loaded).Sum(s => s.SizeBytes);
    }

    private void EndUse(IWarmableProvider provider, string model)
    {
        lock (_gate)
        {
            var state = StateFor(provider, model);
            state.InFlight--;
            state.LastUse = _time.GetUtcNow();
        }
    }

    private void OnFirstOutput(IWarmableProvider provider, string model, bool cold, long started)
    {
        double ms = cold ? _time.GetElapsedTime(started).TotalMilliseconds : 0;
        lock (_gate)
        {
            var state = StateFor(provider, model);
            // Output means the runtime has the model now (it loaded it for this request); its size comes with the
            // next reconcile.
            state.Loaded = true;
            if (!cold)
                return;
            _coldLatencyCount++;
            _coldLatencyTotalMs += ms;
            _coldLatencyLastMs = ms;
            _coldLatencyMaxMs = Math.Max(_coldLatencyMaxMs, ms);
        }
        LogColdStartLatency(provider.Name, model, ms);
    }

    private sealed class State(IWarmableProvider provider, string model, string key)
    {
        private double _score;
        private double _scoredAt;

        public IWarmableProvider Provider { get; } = provider;
        public string Model { get; } = model;
        public string Key { get; } = key;
        public bool Loaded { get; set; }
        public long SizeBytes { get; set; }
        public DateTimeOffset LastUse { get; set; }
        public int InFlight { get; set; }

        // Exponentially decayed request count: each request adds one, and the total halves every half-life. Times
        // are seconds on the warmer's TimeProvider.
        public void AddRequest(double now, TimeSpan halfLife)
        {
            _score = ScoreAt(now, halfLife) + 1;
            _scoredAt = now;
        }

        public double ScoreAt(double now, TimeSpan halfLife) =>
            _score == 0 ? 0 : _score * Math.Pow(0.5, (now - _scoredAt) / halfLife.TotalSeconds);
    }

    private sealed class Use(ModelWarmer warmer, IWarmableProvider provider, string model, bool cold, long started) : IModelUse
    {
        private int _output;
        private int _disposed;

        public void FirstOutput()
        {
            if (Interlocked.Exchange(ref _output, 1) == 0)
                warmer.OnFirstOutput(provider, model, cold, started);
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
                warmer.EndUse(provider, model);
        }
    }

    private sealed class NoUse : IModelUse
    {
        public static readonly NoUse Instance = new();

        public void FirstOutput()
        {
        }

        public void Dispose()
        {
        }
    }

    [LoggerMessage(EventId = 7101, Level = LogLevel.Information, Message = "Loaded model {Provider}/{Model} ({Bytes} bytes) in {Milliseconds} ms")]
    private partial void LogLoaded(string provider, string model, long bytes, double milliseconds);

    [LoggerMessage(EventId = 7102, Level = LogLevel.Warning, Message = "Could not load model {Provider}/{Model}: {Message}")]
    private partial void LogLoadFailed(string provider, string model, string message);

    [LoggerMessage(EventId = 7103, Level = LogLevel.Information, Message = "Evicting model {Provider}/{Model} ({Bytes} bytes), least recently used")]
    private partial void LogEvicting(string provider, string model, long bytes);

    [LoggerMessage(EventId = 7104, Level = LogLevel.Warning, Message = "Could not unload model {Provider}/{Model}: {Message}")]
    private partial void LogUnloadFailed(string provider, string model, string message);

    [LoggerMessage(EventId = 7105, Level = LogLevel.Warning, Message = "Loaded model {Provider}/{Model} over the memory budget: {Loaded} of {Budget} bytes, nothing evictable")]
    private partial void LogOverBudget(string provider, string model, long loaded, long budget);

    [LoggerMessage(EventId = 7106, Level = LogLevel.Information, Message = "Cold start: a request for {Provider}/{Model}, which was not loaded")]
    private partial void LogColdStart(string provider, string model);

    [LoggerMessage(EventId = 7107, Level = LogLevel.Information, Message = "Cold start of {Provider}/{Model}: first output after {Milliseconds} ms")]
    private partial void LogColdStartLatency(string provider, string model, double milliseconds);

    [LoggerMessage(EventId = 7108, Level = LogLevel.Warning, Message = "Model warming rebalance failed")]
    private partial void LogRebalanceFailed(Exception exception);

    [LoggerMessage(EventId = 7109, Level = LogLevel.Warning, Message = "Could not list the loaded models of {Provider}: {Message}")]
    private partial void LogReconcileFailed(string provider, string message);

    [LoggerMessage(EventId = 7110, Level = LogLevel.Warning, Message = "WarmAtStart names '{Name}', which is no model of a warmable local provider")]
    private partial void LogUnknownModel(string name);
}

public sealed record LoadedModelSnapshot(string Provider, string Model, long SizeBytes, DateTimeOffset LastUse, int InFlight, double Popularity);

// Time from a cold request's start to its first output (the response, or a stream's first delta).
public sealed record ColdStartLatency(long Count, double TotalMilliseconds, double LastMilliseconds, double MaxMilliseconds)
{
    public double MeanMilliseconds => Count == 0 ? 0 : TotalMilliseconds / Count;
}

public sealed record ModelWarmerSnapshot(
    IReadOnlyList<LoadedModelSnapshot> Loaded,
    long LoadedBytes,
    long BudgetBytes,
    long Prefetches,
    long ColdStarts,
    long Evictions,
    long OverBudgetLoads,
    long LoadFailures,
    ColdStartLatency ColdStartLatency);
