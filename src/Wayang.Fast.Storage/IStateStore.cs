namespace Wayang.Fast.Storage;

// What the planes see of storage: a durable, indexed key/value state. Every mutation is a journal record;
// the returned task completes only when that record's group commit is durable (per DurabilityMode), so a
// caller that replies after awaiting it never acknowledges a write that a crash could lose.
// Keys are namespaced by the caller with a prefix ("tenant/", "key/", ...).
public interface IStateStore
{
    ValueTask PutAsync(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default);

    ValueTask DeleteAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default);

    // Reads the latest applied value (reads see writes as soon as they are applied, before they are durable;
    // callers only reply after the write's task completes, so nothing unacknowledged leaks to clients).
    bool TryGet(ReadOnlySpan<byte> key, out byte[] value);

    // Every live key starting with prefix, in no particular order. O(store size): for admin listings and
    // start-up loading, not for hot paths.
    IReadOnlyList<KeyValuePair<byte[], byte[]>> ScanPrefix(ReadOnlySpan<byte> prefix);
}
