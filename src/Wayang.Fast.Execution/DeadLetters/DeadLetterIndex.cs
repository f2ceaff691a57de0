using Wayang.Fast.Execution.Engine;

namespace Wayang.Fast.Execution.DeadLetters;

// The in-memory index of the durable dead-letter entries ("dlq/<tenant>/<id>"), per tenant: loaded at open, changed
// only after the store write or delete it mirrors is durable.
internal sealed class DeadLetterIndex
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Dictionary<string, DeadLetter>> _byTenant = new(StringComparer.Ordinal);
    // Entries per run id: a run with a dead letter is kept past its retention (replay needs it).
    private readonly Dictionary<string, int> _byRun = new(StringComparer.Ordinal);
    private int _count;

    public int Count
    {
        get
        {
            lock (_gate)
                return _count;
        }
    }

    public void Add(DeadLetter entry)
    {
        lock (_gate)
        {
            if (!_byTenant.TryGetValue(entry.TenantId, out var entries))
            {
                entries = new Dictionary<string, DeadLetter>(StringComparer.Ordinal);
                _byTenant[entry.TenantId] = entries;
            }
            if (entries.TryAdd(entry.Id, entry))
            {
                _count++;
                _byRun[entry.RunId] = _byRun.GetValueOrDefault(entry.RunId) + 1;
            }
        }
    }

    public bool Remove(string tenantId, string id)
    {
        lock (_gate)
        {
            if (_byTenant.TryGetValue(tenantId, out var entries) && entries.Remove(id, out var removed))
            {
                _count--;
                if (_byRun[removed.RunId] == 1)
                    _byRun.Remove(removed.RunId);
                else
                    _byRun[removed.RunId]--;
                return true;
            }
            return false;
        }
    }

    public bool HasRun(string runId)
    {
        lock (_gate)
            return _byRun.ContainsKey(runId);
    }

    public DeadLetter? Get(string tenantId, string id)
    {
        lock (_gate)
            return _byTenant.TryGetValue(tenantId, out var entries) && entries.TryGetValue(id, out var entry) ? entry : null;
    }

    // Newest first, at most filter.Limit (<= 0: 100; capped at 1000).
    public List<DeadLetter> List(string tenantId, DeadLetterFilter filter)
    {
        int limit = NormalizeLimit(filter.Limit);
        var result = new List<DeadLetter>();
        lock (_gate)
        {
            if (!_byTenant.TryGetValue(tenantId, out var entries))
                return result;
            foreach (var entry in entries.Values)
            {
                if (Matches(entry, filter))
                    result.Add(entry);
            }
        }
        result.Sort(static (a, b) => b.DeadLetteredAtMs != a.DeadLetteredAtMs
            ? b.DeadLetteredAtMs.CompareTo(a.DeadLetteredAtMs)
            : string.CompareOrdinal(b.Id, a.Id));
        if (result.Count > limit)
            result.RemoveRange(limit, result.Count - limit);
        return result;
    }

    public static int NormalizeLimit(int limit) => limit <= 0 ? 100 : Math.Min(limit, 1000);

    private static bool Matches(DeadLetter entry, DeadLetterFilter filter) =>
        (filter.WorkflowId is null || entry.WorkflowId == filter.WorkflowId)
        && (filter.NodeId is null || entry.NodeId == filter.NodeId)
        && (filter.ErrorCode is null || entry.LastErrorCode == filter.ErrorCode)
        && (filter.FromMs is not { } from || entry.DeadLetteredAtMs >= from)
        && (filter.ToMs is not { } to || entry.DeadLetteredAtMs <= to);
}
