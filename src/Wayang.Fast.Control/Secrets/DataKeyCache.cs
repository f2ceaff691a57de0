using System.Security.Cryptography;

namespace Wayang.Fast.Control.Secrets;

// Unwrapped data keys by their wrapped bytes: bounded LRU with a time to live, so repeated reads of a version skip
// the provider (a KMS round trip) while a revoked master key stops serving reads within the TTL. Readers get a copy,
// so an evicted key can be zeroed at once without racing a decrypt that is still using it.
internal sealed class DataKeyCache
{
    private readonly int _capacity;
    private readonly long _ttlMs;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, LinkedListNode<Item>> _items = new(StringComparer.Ordinal);
    // Most recently used first.
    private readonly LinkedList<Item> _order = new();

    public DataKeyCache(int capacity, TimeSpan ttl, TimeProvider time)
    {
        _capacity = capacity;
        _ttlMs = (long)ttl.TotalMilliseconds;
        _time = time;
    }

    public int Count
    {
        get
        {
            lock (_gate)
                return _items.Count;
        }
    }

    public static string KeyOf(WrappedDataKey wrapped) => Convert.ToBase64String(wrapped.Ciphertext);

    public bool TryCopy(string key, Span<byte> destination)
    {
        if (_capacity == 0)
            return false;
        long now = NowMs();
        lock (_gate)
        {
            if (!_items.TryGetValue(key, out var node))
                return false;
            if (node.Value.ExpiresAtMs <= now)
            {
                RemoveLocked(node);
                return false;
            }
            _order.Remove(node);
            _order.AddFirst(node);
            node.Value.Key.CopyTo(destination);
            return true;
        }
    }

    // Keeps its own copy of plaintext.
    public void Add(string key, ReadOnlySpan<byte> plaintext)
    {
        if (_capacity == 0)
            return;
        var item = new Item(key, plaintext.ToArray(), NowMs() + _ttlMs);
        lock (_gate)
        {
            if (_items.TryGetValue(key, out var existing))
                RemoveLocked(existing);
            while (_items.Count >= _capacity)
                RemoveLocked(_order.Last!);
            _items[key] = _order.AddFirst(item);
        }
    }

    public void Remove(string key)
    {
        lock (_gate)
        {
            if (_items.TryGetValue(key, out var node))
                RemoveLocked(node);
        }
    }

    private void RemoveLocked(LinkedListNode<Item> node)
    {
        _order.Remove(node);
        _items.Remove(node.Value.CacheKey);
        CryptographicOperations.ZeroMemory(node.Value.Key);
    }

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private sealed record Item(string CacheKey, byte[] Key, long ExpiresAtMs);
}
