using Wayang.Fast.Execution.Dispatch;

namespace Wayang.Fast.Execution.Engine;

// An executor registered on one connection; opaque outside the execution plane (the dispatcher keeps its state here,
// read and written only under the dispatcher's lock).
public sealed class ExecutorHandle
{
    internal ExecutorHandle(string executorId, string tenantId)
    {
        ExecutorId = executorId;
        TenantId = tenantId;
    }

    public string ExecutorId { get; }
    public string TenantId { get; }

    internal bool Shared;
    internal string[] Types = [];
    internal Dictionary<string, string> Labels = new(StringComparer.Ordinal);
    internal IExecutorChannel Channel = null!;
    internal int Slots;
    internal int Credit;
    internal int InFlight;
    // Registration order: the tie-break among equally loaded executors.
    internal long Sequence;
    internal long LastHeartbeatMs;
    // False once unregistered: every later call on this handle is ignored.
    internal bool Live;
    // TryPush returned false: the connection is gone; no more pushes until the server unregisters it.
    internal bool Closed;
    // One member per served type, in Types order.
    internal PoolMember[] Members = [];
    // Rotates which type is served first when capacity frees, so one busy type does not starve the others.
    internal int TypeCursor;
    // Scratch mark while one operation collects the executors whose slots it freed.
    internal bool Marked;
    internal TaskEntry? FirstLease;
    internal int LeaseCount;

    // min(credit, slots - in flight): never push beyond it.
    internal int Capacity => !Live || Closed ? 0 : Math.Max(0, Math.Min(Credit, Slots - InFlight));

    internal bool Carries(IReadOnlyDictionary<string, string>? labels)
    {
        if (labels is null || labels.Count == 0)
            return true;
        foreach (var (key, value) in labels)
        {
            if (!Labels.TryGetValue(key, out var mine) || !string.Equals(mine, value, StringComparison.Ordinal))
                return false;
        }
        return true;
    }

    internal void AddLease(TaskEntry entry)
    {
        entry.Executor = this;
        entry.ExecPrev = null;
        entry.ExecNext = FirstLease;
        if (FirstLease is not null)
            FirstLease.ExecPrev = entry;
        FirstLease = entry;
        LeaseCount++;
    }

    internal void RemoveLease(TaskEntry entry)
    {
        if (entry.ExecPrev is null)
            FirstLease = entry.ExecNext;
        else
            entry.ExecPrev.ExecNext = entry.ExecNext;
        if (entry.ExecNext is not null)
            entry.ExecNext.ExecPrev = entry.ExecPrev;
        entry.Executor = null;
        entry.ExecPrev = entry.ExecNext = null;
        LeaseCount--;
    }
}
