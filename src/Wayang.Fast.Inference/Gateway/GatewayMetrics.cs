using System.Collections.Concurrent;

namespace Wayang.Fast.Inference.Gateway;

// Counters the gateway keeps for /metrics, provider health and cache warming (popularity = requests per model).
public sealed class GatewayMetrics
{
    private readonly ConcurrentDictionary<string, Counter> _byModel = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, Counter> _errorsByCode = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ProviderCounters> _byProvider = new(StringComparer.OrdinalIgnoreCase);
    private long _requests;
    private long _fallbacks;
    private long _failed;

    public long Requests => Interlocked.Read(ref _requests);
    // Requests answered by a target other than the first.
    public long Fallbacks => Interlocked.Read(ref _fallbacks);
    public long Failed => Interlocked.Read(ref _failed);

    public IReadOnlyDictionary<string, long> RequestsByModel => _byModel.ToDictionary(kv => kv.Key, kv => kv.Value.Value, StringComparer.OrdinalIgnoreCase);
    public IReadOnlyDictionary<string, long> ErrorsByCode => _errorsByCode.ToDictionary(kv => kv.Key, kv => kv.Value.Value, StringComparer.Ordinal);

    internal void OnRequest(string model)
    {
        Interlocked.Increment(ref _requests);
        _byModel.GetOrAdd(model, static _ => new Counter()).Increment();
    }

    internal void OnAttemptFailed(string code) => _errorsByCode.GetOrAdd(code, static _ => new Counter()).Increment();

    // Every provider's standard figures: attempts, failed attempts, and the time attempts took (to the answer, or for a
    // stream to its first delta).
    public IReadOnlyDictionary<string, ProviderStats> ByProvider =>
        _byProvider.ToDictionary(kv => kv.Key, kv => kv.Value.Snapshot(), StringComparer.OrdinalIgnoreCase);

    internal void OnAttempt(string provider, long startTimestamp, bool failed)
    {
        var c = _byProvider.GetOrAdd(provider, static _ => new ProviderCounters());
        Interlocked.Increment(ref c.Attempts);
        if (failed)
            Interlocked.Increment(ref c.Failures);
        Interlocked.Add(ref c.Ticks, System.Diagnostics.Stopwatch.GetElapsedTime(startTimestamp).Ticks);
    }

    private sealed class ProviderCounters
    {
        public long Attempts;
        public long Failures;
        public long Ticks;

        public ProviderStats Snapshot() =>
            new(Interlocked.Read(ref Attempts), Interlocked.Read(ref Failures), TimeSpan.FromTicks(Interlocked.Read(ref Ticks)));
    }

    internal void OnFallbackServed() => Interlocked.Increment(ref _fallbacks);

    internal void OnFailed() => Interlocked.Increment(ref _failed);

    private sealed class Counter
    {
        private long _value;
        public long Value => Interlocked.Read(ref _value);
        public void Increment() => Interlocked.Increment(ref _value);
    }
}

public sealed record ProviderStats(long Attempts, long Failures, TimeSpan Time);
