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

internal sealed class TaskEntry(QueuedTask task, TaskQueue queue)
{
    public readonly QueuedTask Task = task;
    public readonly TaskQueue Queue = queue;
    public EntryState State;
    public ExecutorHandle? Executor;
    public long LeaseExpiresAtMs;

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

// One (tenant, executor type) queue: a FIFO ring buffer (front pushes for redeliveries) plus its links in the type's
// round-robin ring of non-empty queues. Entries removed by RemoveRun stay in the buffer until they reach the front.
internal sealed class TaskQueue(string tenantId, string executorType, TypeIndex type, ExecutorPool tenantPool)
{
    private TaskEntry?[] _items = new TaskEntry?[8];
    private int _head;
    private int _count;

    public readonly string TenantId = tenantId;
    public readonly string ExecutorType = executorType;
    public readonly TypeIndex Type = type;
    // The tenant's own (non-shared) executors of this type, cached so placement needs no dictionary lookup.
    public readonly ExecutorPool TenantPool = tenantPool;

    // Live (not removed) queued entries: Depth in O(1).
    public int Live;
    public int Leased;

    public bool InRing;
    // Scratch mark while one operation collects the queues whose head changed.
    public bool Touched;
    public TaskQueue? RingNext;
    public TaskQueue? RingPrev;

    public void PushBack(TaskEntry entry)
    {
        Grow();
        _items[(_head + _count) % _items.Length] = entry;
        _count++;
    }

    public void PushFront(TaskEntry entry)
    {
        Grow();
        _head = (_head - 1 + _items.Length) % _items.Length;
        _items[_head] = entry;
        _count++;
    }

    // The first live entry, discarding removed ones in front of it.
    public TaskEntry? PeekLive()
    {
        while (_count > 0)
        {
            var entry = _items[_head]!;
            if (entry.State == EntryState.Queued)
                return entry;
            PopFront();
        }
        return null;
    }

    public void PopFront()
    {
        _items[_head] = null;
        _head = (_head + 1) % _items.Length;
        _count--;
    }

    // Only removed entries are left (Live == 0): drop them all at once.
    public void ClearRemoved()
    {
        Array.Clear(_items);
        _head = 0;
        _count = 0;
    }

    private void Grow()
    {
        if (_count < _items.Length)
            return;
        var bigger = new TaskEntry?[_items.Length * 2];
        for (var i = 0; i < _count; i++)
            bigger[i] = _items[(_head + i) % _items.Length];
        _items = bigger;
        _head = 0;
    }
}

// Per executor type: the ring of non-empty queues (round-robin across tenants) and the pools of executors that have
// capacity, so a decision looks at one queue and at most two pool tops, never at every queue or executor.
internal sealed class TypeIndex(string executorType)
{
    public readonly string ExecutorType = executorType;
    public readonly ExecutorPool Shared = new();
    public readonly Dictionary<string, ExecutorPool> TenantPools = new(StringComparer.Ordinal);

    // The queue whose turn is next; new non-empty queues join just before it (the end of the current round).
    public TaskQueue? Cursor;
    public int RingCount;

    public ExecutorPool PoolOf(string tenantId)
    {
        if (!TenantPools.TryGetValue(tenantId, out var pool))
        {
            pool = new ExecutorPool();
            TenantPools.Add(tenantId, pool);
        }
        return pool;
    }

    public void AddToRing(TaskQueue queue)
    {
        if (queue.InRing)
            return;
        queue.InRing = true;
        RingCount++;
        if (Cursor is null)
        {
            queue.RingNext = queue.RingPrev = queue;
            Cursor = queue;
            return;
        }
        var last = Cursor.RingPrev!;
        queue.RingPrev = last;
        queue.RingNext = Cursor;
        last.RingNext = queue;
        Cursor.RingPrev = queue;
    }

    public void RemoveFromRing(TaskQueue queue)
    {
        if (!queue.InRing)
            return;
        queue.InRing = false;
        RingCount--;
        if (RingCount == 0)
        {
            Cursor = null;
        }
        else
        {
            if (Cursor == queue)
                Cursor = queue.RingNext;
            queue.RingPrev!.RingNext = queue.RingNext;
            queue.RingNext!.RingPrev = queue.RingPrev;
        }
        queue.RingNext = queue.RingPrev = null;
    }

    public void Advance() => Cursor = Cursor?.RingNext;
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
