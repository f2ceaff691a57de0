using System.Collections.Concurrent;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Testing;

// Test double of the storage contract: tenancy logic and the in-process session benchmark run without a data
// directory. Linked into the projects that need it (Control tests, benchmarks); the FASTER store has its own tests.
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
