namespace Wayang.Fast.Storage;

// True when a record may be dropped: it is past whatever retention its owner keeps it for.
public delegate bool RecordExpired(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value);

// A state store that can forget records its owner no longer needs, at no cost to the request path: the check runs
// while the store compacts its log (FasterStateStore: for each live record compaction would otherwise copy forward),
// so a record goes at the first compaction after it expires, not at its expiry time, and a store that never compacts
// never drops anything. A dropped key reads as absent and scans skip it, as after a delete; nothing is journaled for it,
// which is safe because a record old enough to expire is covered by every checkpoint recovery could start from.
public interface IExpiringStateStore : IStateStore
{
    // Registers the check for keys starting with prefix (one check per prefix; registering again replaces it).
    // The check must be cheap and must not throw (a check that throws keeps the record).
    void RegisterExpiry(ReadOnlySpan<byte> prefix, RecordExpired check);
}
