using Wayang.Fast.Storage;

namespace Wayang.Fast.Benchmarks.Server;

// A dictionary IStateStore: the session benchmark measures the protocol path, not storage.
internal sealed class InMemoryStateStore : IStateStore
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, KeyValuePair<byte[], byte[]>> _data = new(StringComparer.Ordinal);

    public ValueTask PutAsync(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default)
    {
        lock (_lock)
            _data[Convert.ToHexString(key.Span)] = new(key.ToArray(), value.ToArray());
        return default;
    }

    public ValueTask DeleteAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        lock (_lock)
            _data.Remove(Convert.ToHexString(key.Span));
        return default;
    }

    public bool TryGet(ReadOnlySpan<byte> key, out byte[] value)
    {
        lock (_lock)
        {
            if (_data.TryGetValue(Convert.ToHexString(key), out var pair))
            {
                value = pair.Value;
                return true;
            }
        }
        value = [];
        return false;
    }

    public IReadOnlyList<KeyValuePair<byte[], byte[]>> ScanPrefix(ReadOnlySpan<byte> prefix)
    {
        var result = new List<KeyValuePair<byte[], byte[]>>();
        lock (_lock)
        {
            foreach (var pair in _data.Values)
            {
                if (pair.Key.AsSpan().StartsWith(prefix))
                    result.Add(pair);
            }
        }
        return result;
    }
}
