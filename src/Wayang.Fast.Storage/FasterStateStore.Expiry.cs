using FASTER.core;
using Wayang.Fast.Common;

namespace Wayang.Fast.Storage;

// IExpiringStateStore: the registered checks run inside FASTER's Lookup compaction, for each live record below the
// compaction address (tombstones and overwritten versions are dropped by compaction anyway). A record a check calls
// expired is not copied forward, so once BeginAddress passes it the key is gone. That is all it takes: the index entry
// left behind points below BeginAddress and reads as not found, and the checkpoint after the compaction records the
// new BeginAddress, so recovery never sees the record again.
public sealed partial class FasterStateStore
{
    private ExpiryRule[] _expiryRules = [];
    private readonly Lock _expiryGate = new();

    public void RegisterExpiry(ReadOnlySpan<byte> prefix, RecordExpired check)
    {
        ArgumentNullException.ThrowIfNull(check);
        if (prefix.IsEmpty)
            ThrowHelper.ThrowArgument(nameof(prefix), "An expiry prefix must not be empty.");
        var owned = prefix.ToArray();
        lock (_expiryGate)
        {
            var rules = new List<ExpiryRule>(_expiryRules.Length + 1);
            foreach (var rule in _expiryRules)
            {
                if (!rule.Prefix.AsSpan().SequenceEqual(owned))
                    rules.Add(rule);
            }
            rules.Add(new ExpiryRule(owned, check));
            Volatile.Write(ref _expiryRules, rules.ToArray());
        }
    }

    private sealed record ExpiryRule(byte[] Prefix, RecordExpired Check);

    // A class (FASTER takes the functions by value as a generic argument; the count must survive the copies).
    private sealed class ExpiringCompaction(ExpiryRule[] rules) : ICompactionFunctions<SpanByte, SpanByte>
    {
        public long Expired { get; private set; }

        public bool IsDeleted(ref SpanByte key, ref SpanByte value)
        {
            if (rules.Length == 0)
                return false;
            var k = key.AsReadOnlySpan();
            foreach (var rule in rules)
            {
                if (!k.StartsWith(rule.Prefix))
                    continue;
                bool expired;
                try
                {
                    expired = rule.Check(k, value.AsReadOnlySpan());
                }
                catch (Exception)
                {
                    // A check that fails keeps the record: forgetting data by mistake is the one outcome to avoid.
                    expired = false;
                }
                if (expired)
                    Expired++;
                return expired;
            }
            return false;
        }
    }
}
