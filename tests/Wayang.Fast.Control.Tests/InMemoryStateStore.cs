using System.Collections.Concurrent;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Control.Tests;

// Test double of the storage contract: lets tenancy logic be tested without a data directory.
// The FASTER-backed store has its own tests; TenancyDurabilityTests runs the directory on the real one.
internal sealed class InMemoryStateStore : IStateStore
{
    private readonly ConcurrentDictionary<string, byte[]> _data = new(StringComparer.Ordinal);

    public int Writes;

    public ValueTask PutAsync(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref Writes);
        _data[Convert.ToBase64String(key.Span)] = value.ToArray();
        return ValueTask.CompletedTask;
    }

    public ValueTask DeleteAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        _data.TryRemove(Convert.ToBase64String(key.Span), out _);
        return ValueTask.CompletedTask;
    }

    public bool TryGet(ReadOnlySpan<byte> key, out byte[] value) => _data.TryGetValue(Convert.ToBase64String(key), out value!);

    public IReadOnlyList<KeyValuePair<byte[], byte[]>> ScanPrefix(ReadOnlySpan<byte> prefix)
    {
        var result = new List<KeyValuePair<byte[], byte[]>>();
        foreach (var (k, v) in _data)
        {
            var key = Convert.FromBase64String(k);
            if (key.AsSpan().StartsWith(prefix))
                result.Add(new(key, v));
        }
        return result;
    }
}
