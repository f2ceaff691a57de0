using System.Collections.Concurrent;

namespace Wayang.Fast.Inference.Gateway;

// Counters the gateway keeps for /metrics, provider health and cache warming (popularity = requests per model).
public sealed class GatewayMetrics
{
    private readonly ConcurrentDictionary<string, Counter> _byModel = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, Counter> _errorsByCode = new(StringComparer.Ordinal);
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

    internal void OnFallbackServed() => Interlocked.Increment(ref _fallbacks);

    internal void OnFailed() => Interlocked.Increment(ref _failed);

    private sealed class Counter
    {
        private long _value;
        public long Value => Interlocked.Read(ref _value);
        public void Increment() => Interlocked.Increment(ref _value);
    }
}
