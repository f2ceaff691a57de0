using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Engine;

namespace Wayang.Fast.Execution.Dispatch;

// The dispatcher's internal bookkeeping. Everything here is touched only under TaskDispatcher's lock. Intrusive links
// (an entry knows its neighbours in its executor's and its run's lists) keep add/remove O(1) with no allocation beyond
// the entry itself, which matters at tens of thousands of tasks per second.

internal enum EntryState : byte
{
    Queued,
    Leased,
    // Gone from the dispatcher (dropped, released, expired, returned). A queued entry in this state is skipped lazily.
    Removed,
}

// Pooled by the dispatcher once its lease ends (nothing references it then), so steady dispatch allocates nothing.
internal sealed class TaskEntry
{
    public QueuedTask Task = null!;
    public TaskQueue Queue = null!;
    // Queue order: priority level, then deadline (none = last), then sequence (redeliveries below new work).
    public int Level;
    public long Deadline;
    public long Sequence;
    public EntryState State;
    public bool MissCounted;
    public ExecutorHandle? Executor;
    public long LeaseExpiresAtMs;

    // The dispatcher's list of all leases in expiry order (every lease lasts the same, so appending keeps it sorted).
    public TaskEntry? LeasePrev;
    public TaskEntry? LeaseNext;

    public TaskEntry Init(QueuedTask task, TaskQueue queue, long sequence)
    {
        Task = task;
        Queue = queue;
        Level = PriorityLevels.Of(task.Priority);
        Deadline = task.DeadlineAtMs > 0 ? task.DeadlineAtMs : long.MaxValue;
        Sequence = sequence;
        State = EntryState.Queued;
        MissCounted = false;
        Executor = null;
        LeaseExpiresAtMs = 0;
        return this;
    }

    // The executor's lease list (Heartbeat renews it, Unregister returns it).
    public TaskEntry? ExecPrev;
    public TaskEntry? ExecNext;

    // The run's list of queued and leased entries (RemoveRun without a scan).
    public RunTasks? Run;
    public TaskEntry? RunPrev;
    public TaskEntry? RunNext;
}

internal sealed class RunTasks
{
    public TaskEntry? First;

    public void Add(TaskEntry entry)
    {
        entry.Run = this;
        entry.RunPrev = null;
        entry.RunNext = First;
        if (First is not null)
            First.RunPrev = entry;
        First = entry;
    }

    public void Remove(TaskEntry entry)
    {
        if (entry.RunPrev is null)
            First = entry.RunNext;
        else
            entry.RunPrev.RunNext = entry.RunNext;
        if (entry.RunNext is not null)
            entry.RunNext.RunPrev = entry.RunPrev;
        entry.Run = null;
        entry.RunPrev = entry.RunNext = null;
    }
}

// Priority levels in dispatch order, lowest first: SlaPriority Low..Critical map to 0..3 (Unspecified = Normal).
internal static class PriorityLevels
{
    public const int Count = 4;

    public static int Of(SlaPriority priority) => priority switch
    {
        SlaPriority.Low => 0,
        SlaPriority.High => 2,
        SlaPriority.Critical => 3,
        _ => 1,
    };

    // The class a level stands for: Unspecified comes back as Normal, so a count or label never splits the two.
    public static SlaPriority PriorityOf(int level) => (SlaPriority)(level + 1);
}

// A tenant's share of dispatch, shared by all its queues so a weight change applies at once and costs one write.
internal sealed class TenantShare
{
    public int Weight = 1;
    // 0 = no limit. At the limit the tenant's queues are passed over (tasks stay queued) until one of its leases ends.
    public int MaxConcurrent;
    // Across all the tenant's queues (Queued: the submission check for the tenant's queued limit).
    public int Queued;
    public int Leased;
    public readonly List<TaskQueue> Queues = [];

    public bool AtConcurrencyLimit => MaxConcurrent > 0 && Leased >= MaxConcurrent;
}

// One (tenant, executor type) queue: a binary min-heap of entries by (priority level desc, deadline asc with none
// last, sequence asc) -- highest priority first, earliest deadline first within it, FIFO among equals; redeliveries
// get sequences below every new task so they go before newer work of their class. Entries removed by RemoveRun stay
// in the heap until they surface at the top. The queue sits in its type's ring for the level of its head.
internal sealed class TaskQueue(string tenantId, string executorType, TypeIndex type, ExecutorPool tenantPool, TenantShare share)
{
    private TaskEntry[] _heap = new TaskEntry[8];
    private int _count;

    public readonly string TenantId = tenantId;
    public readonly string ExecutorType = executorType;
    public readonly TypeIndex Type = type;
    // The tenant's own (non-shared) executors of this type, cached so placement needs no dictionary lookup.
    public readonly ExecutorPool TenantPool = tenantPool;
    public readonly TenantShare Share = share;

    // Live (not removed) queued entries: Depth in O(1).
    public int Live;
    public int Leased;

    // The level ring this queue is in (-1: none), its links there, and its deficit-round-robin credit in that ring.
    public int RingLevel = -1;
    public TaskQueue? RingNext;
    public TaskQueue? RingPrev;
    public int Deficit;
    // Scratch mark while one operation collects the queues whose head changed.
    public bool Touched;

    public void Push(TaskEntry entry)
    {
        if (_count == _heap.Length)
            Array.Resize(ref _heap, _heap.Length * 2);
        var index = _count++;
        while (index > 0)
        {
            var parent = (index - 1) / 2;
            if (Before(_heap[parent], entry))
                break;
            _heap[index] = _heap[parent];
            index = parent;
        }
        _heap[index] = entry;
    }

    // The first live entry, discarding removed ones above it.
    public TaskEntry? PeekLive()
    {
        while (_count > 0)
        {
            var top = _heap[0];
            if (top.State == EntryState.Queued)
                return top;
            Pop();
        }
        return null;
    }

    public void Pop()
    {
        var last = _heap[--_count];
        _heap[_count] = null!;
        if (_count == 0)
            return;
        var index = 0;
        while (true)
        {
            var child = (2 * index) + 1;
            if (child >= _count)
                break;
            if (child + 1 < _count && Before(_heap[child + 1], _heap[child]))
                child++;
            if (Before(last, _heap[child]))
                break;
            _heap[index] = _heap[child];
            index = child;
        }
        _heap[index] = last;
    }

    // Only removed entries are left (Live == 0): drop them all at once.
    public void ClearRemoved()
    {
        Array.Clear(_heap, 0, _count);
        _count = 0;
    }

    public static bool Before(TaskEntry a, TaskEntry b)
    {
        if (a.Level != b.Level)
            return a.Level > b.Level;
        if (a.Deadline != b.Deadline)
            return a.Deadline < b.Deadline;
        return a.Sequence < b.Sequence;
    }
}

// Per executor type: one ring per priority level of the queues whose head has that level (weighted deficit round
// robin across tenants), and the pools of executors that have capacity, so a decision looks at one queue and at most
// two pool tops, never at every queue or executor.
internal sealed class TypeIndex(string executorType)
{
    public readonly string ExecutorType = executorType;
    public readonly ExecutorPool Shared = new();
    public readonly Dictionary<string, ExecutorPool> TenantPools = new(StringComparer.Ordinal);
    public readonly LevelRing[] Rings = [new(), new(), new(), new()];

    public ExecutorPool PoolOf(string tenantId)
    {
        if (!TenantPools.TryGetValue(tenantId, out var pool))
        {
            pool = new ExecutorPool();
            TenantPools.Add(tenantId, pool);
        }
        return pool;
    }

    // Puts the queue in the ring of its head's level (or in none when it holds nothing live). Called whenever the
    // head may have changed; a queue that changes level starts the new ring with no credit.
    public void Place(TaskQueue queue)
    {
        var head = queue.Live > 0 ? queue.PeekLive() : null;
        var level = head?.Level ?? -1;
        if (queue.RingLevel == level)
            return;
        if (queue.RingLevel >= 0)
            Rings[queue.RingLevel].Remove(queue);
        if (level >= 0)
            Rings[level].Add(queue, level);
    }
}

// The queues of one priority level of one executor type, in deficit-round-robin order. The cursor's queue is the one
// being served; on becoming the cursor a queue is credited its tenant's weight (not added to what it had: an idle or
// blocked tenant banks nothing), and each dispatch from it costs 1. New queues join just before the cursor (the end of
// the current round), so a newcomer waits at most one round: the sum of the other queues' weights in dispatches.
internal sealed class LevelRing
{
    public TaskQueue? Cursor;
    public int Count;

    public void Add(TaskQueue queue, int level)
    {
        queue.RingLevel = level;
        Count++;
        if (Cursor is null)
        {
            queue.RingNext = queue.RingPrev = queue;
            SetCursor(queue);
            return;
        }
        queue.Deficit = 0;
        var last = Cursor.RingPrev!;
        queue.RingPrev = last;
        queue.RingNext = Cursor;
        last.RingNext = queue;
        Cursor.RingPrev = queue;
    }

    public void Remove(TaskQueue queue)
    {
        queue.RingLevel = -1;
        queue.Deficit = 0;
        Count--;
        if (Count == 0)
        {
            Cursor = null;
        }
        else
        {
            queue.RingPrev!.RingNext = queue.RingNext;
            queue.RingNext!.RingPrev = queue.RingPrev;
            if (Cursor == queue)
                SetCursor(queue.RingNext);
        }
        queue.RingNext = queue.RingPrev = null;
    }

    public void Advance()
    {
        if (Cursor is not null)
            SetCursor(Cursor.RingNext!);
    }

    private void SetCursor(TaskQueue queue)
    {
        Cursor = queue;
        queue.Deficit = queue.Share.Weight;
    }
}

// An executor's place in one pool (one per executor type it serves).
internal sealed class PoolMember(ExecutorHandle executor, ExecutorPool pool, TypeIndex type)
{
    public readonly ExecutorHandle Executor = executor;
    public readonly ExecutorPool Pool = pool;
    public readonly TypeIndex Type = type;
    public int Index = -1;
}

// The executors of one pool that can take a task now (capacity > 0), as an indexed binary min-heap by load
// (inFlight / slots, then registration order): the least loaded is the top, and a load change re-sifts one member
// in O(log n) without allocating.
internal sealed class ExecutorPool
{
    private PoolMember[] _heap = new PoolMember[4];

    public int Count { get; private set; }

    public PoolMember? Top => Count == 0 ? null : _heap[0];

    public PoolMember this[int index] => _heap[index];

    public static int Compare(ExecutorHandle a, ExecutorHandle b)
    {
        // Cross-multiplied so loads compare exactly without division.
        var la = (long)a.InFlight * b.Slots;
        var lb = (long)b.InFlight * a.Slots;
        if (la != lb)
            return la < lb ? -1 : 1;
        return a.Sequence.CompareTo(b.Sequence);
    }

    public void Add(PoolMember member)
    {
        if (Count == _heap.Length)
            Array.Resize(ref _heap, _heap.Length * 2);
        _heap[Count] = member;
        member.Index = Count;
        Count++;
        SiftUp(member.Index);
    }

    public void Remove(PoolMember member)
    {
        var index = member.Index;
        member.Index = -1;
        Count--;
        if (index == Count)
        {
            _heap[Count] = null!;
            return;
        }
        var last = _heap[Count];
        _heap[Count] = null!;
        _heap[index] = last;
        last.Index = index;
        Fix(index);
    }

    // The member at index changed its load: move it up or down.
    public void Fix(int index)
    {
        var item = _heap[index];
        SiftUp(index);
        if (item.Index == index)
            SiftDown(index);
    }

    private void SiftUp(int index)
    {
        var item = _heap[index];
        while (index > 0)
        {
            var parent = (index - 1) / 2;
            if (Compare(_heap[parent].Executor, item.Executor) <= 0)
                break;
            _heap[index] = _heap[parent];
            _heap[index].Index = index;
            index = parent;
        }
        _heap[index] = item;
        item.Index = index;
    }

    private void SiftDown(int index)
    {
        var item = _heap[index];
        while (true)
        {
            var child = (2 * index) + 1;
            if (child >= Count)
                break;
            if (child + 1 < Count && Compare(_heap[child + 1].Executor, _heap[child].Executor) < 0)
                child++;
            if (Compare(item.Executor, _heap[child].Executor) <= 0)
                break;
            _heap[index] = _heap[child];
            _heap[index].Index = index;
            index = child;
        }
        _heap[index] = item;
        item.Index = index;
    }
}
