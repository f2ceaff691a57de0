using System.Runtime.InteropServices;
using Wayang.Fast.Common;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Engine;

namespace Wayang.Fast.Execution.Dispatch;

// LOCK RULE (engine and server code follow this):
// - One lock (_lock) guards every queue, executor and lease here. Under it the dispatcher calls out to exactly two
//   things: the AssignmentFactory and IExecutorChannel.TryPush. The lock order is: dispatcher lock, then whatever
//   those two take.
// - The AssignmentFactory MAY take a run lock (to read the run's input, node config and upstream outputs). Hence
//   engine code MUST NOT call any TaskDispatcher method while holding a run lock: decide under the run lock, leave
//   it, then Enqueue/Release/RemoveRun. (Likewise any other engine lock the factory takes.)
// - TryPush must not block: it writes the frame into the connection's pipe and the server flushes elsewhere. The
//   server must not call the engine/dispatcher while holding a lock that TryPush takes.
// - Neither callback may call back into the dispatcher (System.Threading.Lock is reentrant, so it would not deadlock,
//   but it would run in the middle of an update). The factory must not throw (an exception propagates to the caller,
//   the task stays queued); a TryPush that throws counts as false (connection gone).
// - Under the lock the work per task is O(1) or O(log executors) and allocates only the task's entry: queues are
//   ring buffers, leases and run membership are intrusive lists, ready executors are indexed heaps.

// A task ready to run: one attempt of one TASK node. Identity is TaskId ("<runId>:<nodeId>:<attempt>").
public sealed class QueuedTask
{
    public required string TenantId { get; init; }
    public required string ExecutorType { get; init; }
    public required string RunId { get; init; }
    public required string NodeId { get; init; }
    public required int Attempt { get; init; }
    public required string TaskId { get; init; }
    // Labels the executor must carry (the node's labels), or null.
    public IReadOnlyDictionary<string, string>? Labels { get; init; }
    public long EnqueuedAtMs { get; init; }
    // SLA: the priority class (Unspecified = Normal), the deadline (unix ms, 0 = none) and what a missed one means.
    public SlaPriority Priority { get; init; }
    public long DeadlineAtMs { get; init; }
    public DeadlineMissPolicy OnDeadlineMiss { get; init; }
}

// The engine's hook to turn a queued task into the frame an executor receives (it reads the run's input, the
// node's config and upstream outputs, issues the token). Null: the task is stale (run cancelled, node already
// done) and is dropped.
public delegate TaskAssignment? AssignmentFactory(QueuedTask task, string executorId, long leaseExpiresAtMs);

// Where tasks wait and who runs them: the queues (tenant x executor type), the executors with their slots and
// stream credit, and the leases of dispatched tasks. An executor is never sent more tasks than
// min(credit, slots - in flight).
//
// How matching stays cheap: the dispatcher keeps the invariant "no queued head task can be taken by any executor
// that has capacity now" after every call. So only two events can dispatch anything: a queue gets a new head
// (Enqueue into an empty queue or at the front, RemoveRun/dropping a head), which tries that one queue; or an
// executor gains capacity (Register, GrantCredit, SetSlots up, Release, expiry, RemoveRun), which offers that one
// executor to the queues it serves. Neither scans all queues or all executors.
public sealed class TaskDispatcher
{
    private const int MaxSlots = 10_000;
    private const int MaxExecutorIdLength = 128;

    private readonly Lock _lock = new();
    private readonly ExecutionOptions _options;
    private readonly TimeProvider _time;
    private readonly AssignmentFactory _assign;
    private readonly long _leaseMs;

    // Written under _lock; concurrent so Depth (the submit path's queue-full check) reads it without the lock.
    // Queues are never removed.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<QueueKey, TaskQueue> _queues = new();
    private readonly Dictionary<string, TypeIndex> _types = new(StringComparer.Ordinal);
    // Every queued or leased task by TaskId: Release/TryGetLease lookups and the no-duplicates rule.
    private readonly Dictionary<string, TaskEntry> _tasks = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RunTasks> _runs = new(StringComparer.Ordinal);
    private readonly Dictionary<ExecutorKey, ExecutorHandle> _executors = [];
    // Every lease, oldest expiry first: a lease is appended when pushed or renewed, and every lease lasts LeaseDuration,
    // so the list stays in expiry order (a wall clock stepping back only delays expiries by the step). O(1) per change.
    private TaskEntry? _leaseHead;
    private TaskEntry? _leaseTail;
    // Entries and run lists whose task left the dispatcher, for reuse (bounded so a burst's worth is not kept forever).
    private readonly Stack<TaskEntry> _entryPool = new();
    private readonly Stack<RunTasks> _runPool = new();
    private const int MaxPooled = 4096;
    // Posted operations waiting for the combiner, and whether a thread is combining (see "Posted operations").
    private readonly System.Collections.Concurrent.ConcurrentQueue<PostedOp> _posted = new();
    private int _combining;

    // Scratch lists reused under the lock so events allocate nothing.
    private readonly List<TaskQueue> _walkTouched = [];
    private readonly List<TaskQueue> _touched = [];
    private readonly List<ExecutorHandle> _freed = [];
    private readonly List<TenantShare> _unblocked = [];

    private long _sequence;
    private readonly Action<QueuedTask>? _onDeadlineFailed;
    private readonly Action<string, SlaPriority>? _onDeadlineMissed;
    // Queue order among equals: new tasks count up, redeliveries count down (so they go first).
    private long _taskSequence;
    private long _frontSequence;
    private readonly Dictionary<string, TenantShare> _shares = new(StringComparer.Ordinal);
    private long _dispatched;
    private long _leaseExpirations;

    // onDeadlineFailed: a task under the FAIL deadline-miss policy reached its turn after its deadline; it has left the
    // dispatcher and the callee fails its attempt. Called under the dispatcher's lock: it must only hand the task off
    // (queue work elsewhere), never call back in.
    // onDeadlineMissed(tenant, priority): a late task reached its turn, under either policy (the engine counts misses
    // and keeps the counts); same rule.
    public TaskDispatcher(ExecutionOptions options, TimeProvider time, AssignmentFactory assign, Action<QueuedTask>? onDeadlineFailed = null,
        Action<string, SlaPriority>? onDeadlineMissed = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(assign);
        _onDeadlineFailed = onDeadlineFailed;
        _onDeadlineMissed = onDeadlineMissed;
        _options = options;
        _time = time;
        _assign = assign;
        _leaseMs = Math.Max(1, (long)options.LeaseDuration.TotalMilliseconds);
    }

    // Queue depth of (tenant, executorType): the submission check for QUEUE_FULL.
    // Lock-free: a depth a moment old is good enough for admission, and submissions must not queue behind dispatch.
    public int Depth(string tenantId, string executorType) =>
        _queues.TryGetValue(new QueueKey(tenantId, executorType), out var queue) ? Volatile.Read(ref queue.Live) : 0;

    // Adds the task and dispatches what can go. front: a redelivery (lease expiry, disconnect, restart) goes
    // before newer work. A TaskId that is already queued or leased is ignored, so no task is ever leased twice.
    // Posted (see "Posted operations"): it has taken effect before any later call of this dispatcher looks.
    public void Enqueue(QueuedTask task, bool front = false)
    {
        ArgumentNullException.ThrowIfNull(task);
        Post(new PostedOp(PostedKind.Enqueue, task, front, null, null, 0));
    }

    private void EnqueueLocked(QueuedTask task, bool front)
    {
        ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_tasks, task.TaskId, out var exists);
        if (exists)
            return;
        var queue = QueueOf(task.TenantId, task.ExecutorType);
        var entry = (_entryPool.TryPop(out var pooled) ? pooled : new TaskEntry()).Init(task, queue, front ? --_frontSequence : ++_taskSequence);
        slot = entry;
        RunOf(task.RunId).Add(entry);

        queue.Push(entry);
        queue.Live++;
        queue.Share.Queued++;
        // Only a new head can be placeable: every other head already waits for capacity that does not exist.
        if (queue.PeekLive() == entry)
            Drain(queue);
    }

    public const int MaxWeight = 1000;

    // A tenant's dispatch settings. weight (1..MaxWeight): within a priority level, shared executors serve tenants'
    // queues in proportion to their weights; it takes effect at the next turn of each of the tenant's queues.
    // maxConcurrent: the most tasks it may have leased at once (0 = no limit; beyond it its tasks stay queued, never
    // dropped).
    public void SetTenantSchedule(string tenantId, int weight, int maxConcurrent)
    {
        ArgumentNullException.ThrowIfNull(tenantId);
        ArgumentOutOfRangeException.ThrowIfLessThan(weight, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(weight, MaxWeight);
        ArgumentOutOfRangeException.ThrowIfNegative(maxConcurrent);
        lock (_lock)
        {
            ApplyPostedLocked();
            var share = ShareOf(tenantId);
            bool wasAtLimit = share.AtConcurrencyLimit;
            share.Weight = weight;
            share.MaxConcurrent = maxConcurrent;
            // Only a tenant the old limit held back has queued work that may go now.
            if (wasAtLimit && !share.AtConcurrencyLimit)
            {
                _unblocked.Add(share);
                DrainUnblocked();
            }
        }
    }

    // Queued tasks of a tenant across its queues: the submission check for its queued limit (asked only for tenants
    // that have one, so the common submission path does not take the lock).
    public int TenantQueued(string tenantId)
    {
        lock (_lock)
        {
            return _shares.TryGetValue(tenantId, out var share) ? share.Queued : 0;
        }
    }

    // ---- Posted operations ----
    // The hot, fire-and-forget operations (Enqueue, PostRelease, GrantCredit) are posted to a queue, and the caller
    // applies every posted operation under one lock acquisition unless another thread is doing so already (flat
    // combining). After a group commit hundreds of continuations reach the dispatcher at once; rather than each
    // spinning on the lock, one applies the batch and the others return. Ordering: every locked method applies what
    // was posted before it looks, so a caller never observes its own posted operation as not yet done.

    private enum PostedKind : byte { Enqueue, Release, Credit }

    private readonly record struct PostedOp(PostedKind Kind, QueuedTask? Task, bool Front, string? TaskId, ExecutorHandle? Executor, int Credits);

    private void Post(in PostedOp op)
    {
        _posted.Enqueue(op);
        // Re-checked after releasing the flag: an operation posted while the combiner was finishing is not stranded.
        while (!_posted.IsEmpty && Interlocked.CompareExchange(ref _combining, 1, 0) == 0)
        {
            try
            {
                lock (_lock)
                    ApplyPostedLocked();
            }
            finally
            {
                Volatile.Write(ref _combining, 0);
            }
        }
    }

    private void ApplyPostedLocked()
    {
        while (_posted.TryDequeue(out var op))
        {
            switch (op.Kind)
            {
                case PostedKind.Enqueue:
                    EnqueueLocked(op.Task!, op.Front);
                    break;
                case PostedKind.Release:
                    ReleaseLocked(op.TaskId!);
                    break;
                case PostedKind.Credit:
                    GrantCreditLocked(op.Executor!, op.Credits);
                    break;
            }
        }
    }

    public ExecutorHandle Register(string tenantId, bool shared, ExecutorRegistration registration, IExecutorChannel channel)
    {
        ArgumentNullException.ThrowIfNull(tenantId);
        ArgumentNullException.ThrowIfNull(registration);
        ArgumentNullException.ThrowIfNull(channel);
        var executorId = registration.ExecutorId;
        if (string.IsNullOrEmpty(executorId) || executorId.Length > MaxExecutorIdLength || executorId.Any(char.IsControl))
            throw new WayangException(ErrorCode.InvalidArgument, $"executorId must be 1..{MaxExecutorIdLength} printable characters");
        if (registration.Slots is < 1 or > MaxSlots)
            throw new WayangException(ErrorCode.InvalidArgument, $"slots must be 1..{MaxSlots}");
        if (registration.ExecutorTypes is null || registration.ExecutorTypes.Count == 0)
            throw new WayangException(ErrorCode.InvalidArgument, "an executor must serve at least one executor type");
        foreach (var type in registration.ExecutorTypes)
        {
            if (!Ids.IsValidName(type))
                throw new WayangException(ErrorCode.InvalidArgument, "executor types are 1..64 of [a-z0-9-_], starting alphanumeric");
        }
        var types = registration.ExecutorTypes.Distinct(StringComparer.Ordinal).ToArray();
        var labels = registration.Labels is null
            ? new Dictionary<string, string>(StringComparer.Ordinal)
            : new Dictionary<string, string>(registration.Labels, StringComparer.Ordinal);

        lock (_lock)
        {
            ApplyPostedLocked();
            var key = new ExecutorKey(tenantId, executorId);
            if (_executors.ContainsKey(key))
                throw new WayangException(ErrorCode.ExecutorExists, $"executor '{executorId}' is already registered");
            var executor = new ExecutorHandle(executorId, tenantId)
            {
                Shared = shared,
                Types = types,
                Labels = labels,
                Channel = channel,
                Slots = registration.Slots,
                // The register stream opens with Slots credit.
                Credit = registration.Slots,
                Sequence = ++_sequence,
                LastHeartbeatMs = NowMs(),
                Live = true,
            };
            var members = new PoolMember[types.Length];
            for (var i = 0; i < types.Length; i++)
            {
                var index = TypeOf(types[i]);
                members[i] = new PoolMember(executor, shared ? index.Shared : index.PoolOf(tenantId), index);
            }
            executor.Members = members;
            _executors.Add(key, executor);
            UpdatePools(executor);
            OnCapacity(executor);
            return executor;
        }
    }

    // Returns the tasks the executor held (their leases are gone); the caller requeues them.
    public IReadOnlyList<QueuedTask> Unregister(ExecutorHandle executor)
    {
        ArgumentNullException.ThrowIfNull(executor);
        lock (_lock)
        {
            ApplyPostedLocked();
            if (!executor.Live)
                return [];
            executor.Live = false;
            UpdatePools(executor);
            _executors.Remove(new ExecutorKey(executor.TenantId, executor.ExecutorId));
            if (executor.LeaseCount == 0)
                return [];
            var held = new List<QueuedTask>(executor.LeaseCount);
            for (var entry = executor.FirstLease; entry is not null; entry = executor.FirstLease)
            {
                held.Add(entry.Task);
                EndLease(entry);
            }
            DrainUnblocked();
            return held;
        }
    }

    // Posted (see "Posted operations").
    public void GrantCredit(ExecutorHandle executor, int credits)
    {
        ArgumentNullException.ThrowIfNull(executor);
        if (credits <= 0)
            return;
        Post(new PostedOp(PostedKind.Credit, null, false, null, executor, credits));
    }

    private void GrantCreditLocked(ExecutorHandle executor, int credits)
    {
        if (!executor.Live)
            return;
        executor.Credit = (int)Math.Min((long)executor.Credit + credits, int.MaxValue);
        UpdatePools(executor);
        OnCapacity(executor);
    }

    // Lowering below the tasks in flight only stops new pushes until enough of them finish.
    public void SetSlots(ExecutorHandle executor, int slots)
    {
        ArgumentNullException.ThrowIfNull(executor);
        if (slots is < 1 or > MaxSlots)
            throw new WayangException(ErrorCode.InvalidArgument, $"slots must be 1..{MaxSlots}");
        lock (_lock)
        {
            ApplyPostedLocked();
            if (!executor.Live)
                return;
            executor.Slots = slots;
            UpdatePools(executor);
            OnCapacity(executor);
        }
    }

    // Renews every lease the executor holds; returns how many and the new expiry.
    public (int Renewed, long ExpiresAtMs) Heartbeat(ExecutorHandle executor)
    {
        ArgumentNullException.ThrowIfNull(executor);
        lock (_lock)
        {
            ApplyPostedLocked();
            var now = NowMs();
            var expiresAt = now + _leaseMs;
            if (!executor.Live)
                return (0, expiresAt);
            executor.LastHeartbeatMs = now;
            for (var entry = executor.FirstLease; entry is not null; entry = entry.ExecNext)
            {
                entry.LeaseExpiresAtMs = expiresAt;
                UnlinkLease(entry);
                LinkLease(entry);
            }
            return (executor.LeaseCount, expiresAt);
        }
    }

    // The result for taskId arrived (or the attempt ended otherwise): frees its slot. False if no lease existed.
    public bool Release(string taskId)
    {
        ArgumentNullException.ThrowIfNull(taskId);
        lock (_lock)
        {
            ApplyPostedLocked();
            return ReleaseLocked(taskId);
        }
    }

    // Release without an answer, posted (see "Posted operations"): the engine's path after every result.
    public void PostRelease(string taskId)
    {
        ArgumentNullException.ThrowIfNull(taskId);
        Post(new PostedOp(PostedKind.Release, null, false, taskId, null, 0));
    }

    private bool ReleaseLocked(string taskId)
    {
        if (!_tasks.TryGetValue(taskId, out var entry) || entry.State != EntryState.Leased)
            return false;
        var executor = entry.Executor!;
        EndLease(entry);
        UpdatePools(executor);
        OnCapacity(executor);
        DrainUnblocked();
        return true;
    }

    // Whether taskId is currently leased, and to whom.
    public bool TryGetLease(string taskId, out string executorId)
    {
        ArgumentNullException.ThrowIfNull(taskId);
        lock (_lock)
        {
            ApplyPostedLocked();
            if (_tasks.TryGetValue(taskId, out var entry) && entry.State == EntryState.Leased)
            {
                executorId = entry.Executor!.ExecutorId;
                return true;
            }
            executorId = "";
            return false;
        }
    }

    // Drops every queued task and lease of a run (cancel, run failure). Returns the task ids that were leased.
    public IReadOnlyList<string> RemoveRun(string runId)
    {
        ArgumentNullException.ThrowIfNull(runId);
        lock (_lock)
        {
            ApplyPostedLocked();
            if (!_runs.Remove(runId, out var run))
                return [];
            List<string>? leased = null;
            for (var entry = run.First; entry is not null;)
            {
                var next = entry.RunNext;
                entry.Run = null;
                entry.RunPrev = entry.RunNext = null;
                var queue = entry.Queue;
                if (entry.State == EntryState.Queued)
                {
                    // Left in the queue's buffer and skipped when it reaches the front.
                    entry.State = EntryState.Removed;
                    queue.Live--;
                    queue.Share.Queued--;
                    Mark(queue, _touched);
                }
                else if (entry.State == EntryState.Leased)
                {
                    var executor = entry.Executor!;
                    executor.RemoveLease(entry);
                    UnlinkLease(entry);
                    executor.InFlight--;
                    queue.Leased--;
                    LeaseEnded(queue.Share);
                    entry.State = EntryState.Removed;
                    (leased ??= []).Add(entry.Task.TaskId);
                    Mark(executor);
                }
                _tasks.Remove(entry.Task.TaskId);
                entry = next;
            }
            // A removed head may uncover a head that some executor can take.
            foreach (var queue in _touched)
            {
                queue.Touched = false;
                if (queue.Live == 0)
                    queue.ClearRemoved();
                Drain(queue);
            }
            _touched.Clear();
            OfferFreed();
            return leased ?? (IReadOnlyList<string>)[];
        }
    }

    // Leases whose expiry passed; they are removed and their slots freed. The caller requeues them.
    public IReadOnlyList<QueuedTask> ExpireLeases(long nowMs)
    {
        lock (_lock)
        {
            ApplyPostedLocked();
            List<QueuedTask>? expired = null;
            while (_leaseHead is { } entry && entry.LeaseExpiresAtMs <= nowMs)
            {
                var executor = entry.Executor!;
                (expired ??= []).Add(entry.Task);
                EndLease(entry);
                _leaseExpirations++;
                Mark(executor);
            }
            OfferFreed();
            return expired ?? (IReadOnlyList<QueuedTask>)[];
        }
    }

    // Earliest lease expiry, for the engine's timer (long.MaxValue when none).
    public long NextLeaseExpiryMs
    {
        get
        {
            lock (_lock)
            {
                ApplyPostedLocked();
                return _leaseHead?.LeaseExpiresAtMs ?? long.MaxValue;
            }
        }
    }

    // tenantId null: every queue and executor. Otherwise the tenant's queues, its executors and the shared ones.
    public (IReadOnlyList<QueueStat> Queues, IReadOnlyList<ExecutorStat> Executors) Stats(string? tenantId)
    {
        lock (_lock)
        {
            ApplyPostedLocked();
            var queues = new List<QueueStat>();
            foreach (var queue in _queues.Values)
            {
                if (tenantId is null || queue.TenantId == tenantId)
                    queues.Add(new QueueStat(queue.TenantId, queue.ExecutorType, queue.Live, _options.MaxQueueDepth, queue.Leased));
            }
            var executors = new List<ExecutorStat>();
            foreach (var executor in _executors.Values)
            {
                if (tenantId is null || executor.Shared || executor.TenantId == tenantId)
                {
                    executors.Add(new ExecutorStat(executor.ExecutorId, executor.TenantId, executor.Shared, Array.AsReadOnly(executor.Types),
                        executor.Slots, executor.InFlight, executor.Credit, executor.LastHeartbeatMs));
                }
            }
            return (queues, executors);
        }
    }

    public long Dispatched => Interlocked.Read(ref _dispatched);
    public long LeaseExpirations => Interlocked.Read(ref _leaseExpirations);

    // ---- the policy: priority levels, earliest deadline first within a tenant, weighted fair share between tenants ----
    // Which executor takes a task: the least loaded (in flight / slots, ties to the earliest registered) among the
    // ready executors allowed to serve it: the task tenant's own executors of its type and the shared ones.
    // Which task an executor takes when it frees capacity: a tenant's own executor takes its tenant's queue in queue
    // order (priority, then deadline, then FIFO); a shared executor serves the highest priority level that has work,
    // and within it the tenants' queues by weighted deficit round robin (LevelRing), so a tenant with a deep backlog
    // delays another tenant's task by at most the sum of the other tenants' weights in dispatches.

    private ExecutorHandle? SelectExecutor(TaskEntry entry)
    {
        var labels = entry.Task.Labels;
        var own = LeastLoaded(entry.Queue.TenantPool, labels);
        var shared = LeastLoaded(entry.Queue.Type.Shared, labels);
        if (own is null)
            return shared;
        if (shared is null)
            return own;
        return ExecutorPool.Compare(own, shared) <= 0 ? own : shared;
    }

    private static ExecutorHandle? LeastLoaded(ExecutorPool pool, IReadOnlyDictionary<string, string>? labels)
    {
        var top = pool.Top;
        if (top is null)
            return null;
        if (top.Executor.Carries(labels))
            return top.Executor;
        // A labelled task the least loaded executor cannot take: look through this pool (O(pool size), only for
        // tasks with labels the top lacks; unlabelled work never gets here).
        ExecutorHandle? best = null;
        for (var i = 1; i < pool.Count; i++)
        {
            var candidate = pool[i].Executor;
            if (candidate.Carries(labels) && (best is null || ExecutorPool.Compare(candidate, best) < 0))
                best = candidate;
        }
        return best;
    }

    // The executor gained capacity: offer it to the queues it serves. By the invariant no other ready executor can
    // take any current head, so this executor is the only candidate and the order among queues is the whole policy.
    private void OnCapacity(ExecutorHandle executor)
    {
        if (executor.Capacity == 0)
            return;
        var members = executor.Members;
        var start = executor.TypeCursor;
        executor.TypeCursor = (start + 1) % members.Length;
        for (var k = 0; k < members.Length && executor.Capacity > 0; k++)
        {
            var type = members[(start + k) % members.Length].Type;
            if (executor.Shared)
                ServeRoundRobin(executor, type);
            else
                ServeOwnQueue(executor, type);
        }
        // A queue whose head went may now show a head another executor can take (different labels): restore the
        // invariant for those queues.
        foreach (var queue in _walkTouched)
        {
            queue.Touched = false;
            Drain(queue);
        }
        _walkTouched.Clear();
    }

    // Highest level first; within a level, weighted deficit round robin over the tenants' queues (LevelRing).
    private void ServeRoundRobin(ExecutorHandle executor, TypeIndex type)
    {
        for (var level = PriorityLevels.Count - 1; level >= 0 && executor.Capacity > 0; level--)
        {
            var ring = type.Rings[level];
            // Stops after a full round with nothing this executor can take (heads with labels it lacks).
            var misses = 0;
            while (executor.Capacity > 0 && ring.Cursor is { } queue && misses < ring.Count)
            {
                var head = queue.PeekLive();
                if (head is null || head.Level != level)
                {
                    // Removed entries surfaced and uncovered a head of another level (or none): move the queue.
                    type.Place(queue);
                    continue;
                }
                // A tenant at its concurrency limit is passed over like a head this executor cannot take.
                if (queue.Share.AtConcurrencyLimit || !executor.Carries(head.Task.Labels))
                {
                    ring.Advance();
                    misses++;
                    continue;
                }
                var outcome = PushTo(executor, head);
                if (outcome == Outcome.Closed)
                    return;
                Mark(queue, _walkTouched);
                if (outcome == Outcome.Pushed)
                {
                    misses = 0;
                    // A queue that emptied or changed level has left this ring (the cursor moved on with it).
                    if (ring.Cursor == queue && --queue.Deficit <= 0)
                        ring.Advance();
                }
                // Stale: the task was dropped without using the queue's credit.
            }
        }
    }

    private void ServeOwnQueue(ExecutorHandle executor, TypeIndex type)
    {
        if (!_queues.TryGetValue(new QueueKey(executor.TenantId, type.ExecutorType), out var queue))
            return;
        while (executor.Capacity > 0 && !queue.Share.AtConcurrencyLimit && queue.PeekLive() is { } head && executor.Carries(head.Task.Labels))
        {
            if (PushTo(executor, head) == Outcome.Closed)
                return;
            Mark(queue, _walkTouched);
        }
    }

    // ---- mechanics ----

    private enum Outcome
    {
        Pushed,
        // The factory returned null: the task was dropped.
        Stale,
        // TryPush failed: the executor is closed, the task is still at the head.
        Closed,
        NoExecutor,
    }

    // Places the queue's heads until one has no executor (restores the invariant for this queue), and leaves the
    // queue in the ring of its head's level.
    private void Drain(TaskQueue queue)
    {
        while (!queue.Share.AtConcurrencyLimit && queue.PeekLive() is { } head)
        {
            Outcome outcome;
            do
            {
                var executor = SelectExecutor(head);
                outcome = executor is null ? Outcome.NoExecutor : PushTo(executor, head);
            }
            while (outcome == Outcome.Closed);
            if (outcome == Outcome.NoExecutor)
                break;
        }
        queue.Type.Place(queue);
    }

    // entry is its queue's head and executor has capacity and may serve it.
    private Outcome PushTo(ExecutorHandle executor, TaskEntry entry)
    {
        var now = NowMs();
        if (entry.Deadline < now && DeadlineMissed(entry))
            return Outcome.Stale;
        var expiresAt = now + _leaseMs;
        var assignment = _assign(entry.Task, executor.ExecutorId, expiresAt);
        if (assignment is null)
        {
            TakeHead(entry.Queue);
            Forget(entry);
            return Outcome.Stale;
        }
        bool pushed;
        try
        {
            pushed = executor.Channel.TryPush(assignment);
        }
        catch (Exception)
        {
            // A channel that throws is as gone as one that says so; the task must not be lost with it.
            pushed = false;
        }
        if (!pushed)
        {
            // Nothing was recorded yet, so the task simply stays at the head; the server unregisters the executor.
            executor.Closed = true;
            UpdatePools(executor);
            return Outcome.Closed;
        }
        TakeHead(entry.Queue);
        entry.State = EntryState.Leased;
        entry.LeaseExpiresAtMs = expiresAt;
        executor.AddLease(entry);
        entry.Queue.Leased++;
        entry.Queue.Share.Leased++;
        executor.InFlight++;
        executor.Credit--;
        UpdatePools(executor);
        LinkLease(entry);
        _dispatched++;
        return Outcome.Pushed;
    }

    // A late task reached its turn: report the miss once per queued entry (a push retried after a closed executor is
    // not a second miss; a redelivery after a lease expiry or disconnect is queued anew and reported again), and under
    // the FAIL policy take it out and hand it to the engine. Returns true when the task left.
    private bool DeadlineMissed(TaskEntry entry)
    {
        if (!entry.MissCounted)
        {
            entry.MissCounted = true;
            _onDeadlineMissed?.Invoke(entry.Task.TenantId, PriorityLevels.PriorityOf(entry.Level));
        }
        if (entry.Task.OnDeadlineMiss != DeadlineMissPolicy.Fail || _onDeadlineFailed is null)
            return false;
        TakeHead(entry.Queue);
        Forget(entry);
        _onDeadlineFailed(entry.Task);
        return true;
    }

    private static void TakeHead(TaskQueue queue)
    {
        queue.Pop();
        queue.Live--;
        queue.Share.Queued--;
        if (queue.Live == 0)
            queue.ClearRemoved();
        queue.Type.Place(queue);
    }

    // The lease ends (release, expiry, unregister): the slot is free, the task leaves the dispatcher. The caller
    // updates the executor's pools.
    // The entry is reused afterwards: the caller must not touch it after this returns.
    private void EndLease(TaskEntry entry)
    {
        var executor = entry.Executor!;
        executor.RemoveLease(entry);
        UnlinkLease(entry);
        executor.InFlight--;
        entry.Queue.Leased--;
        LeaseEnded(entry.Queue.Share);
        Forget(entry);
        // A leased entry is in no queue heap (it was popped to be pushed), so nothing refers to it any more.
        if (_entryPool.Count < MaxPooled)
            _entryPool.Push(entry);
    }

    private void Forget(TaskEntry entry)
    {
        entry.State = EntryState.Removed;
        _tasks.Remove(entry.Task.TaskId);
        var run = entry.Run;
        if (run is not null)
        {
            run.Remove(entry);
            if (run.First is null)
            {
                _runs.Remove(entry.Task.RunId);
                if (_runPool.Count < MaxPooled)
                    _runPool.Push(run);
            }
        }
    }

    private void LinkLease(TaskEntry entry)
    {
        entry.LeaseNext = null;
        entry.LeasePrev = _leaseTail;
        if (_leaseTail is null)
            _leaseHead = entry;
        else
            _leaseTail.LeaseNext = entry;
        _leaseTail = entry;
    }

    private void UnlinkLease(TaskEntry entry)
    {
        if (entry.LeasePrev is null)
            _leaseHead = entry.LeaseNext;
        else
            entry.LeasePrev.LeaseNext = entry.LeaseNext;
        if (entry.LeaseNext is null)
            _leaseTail = entry.LeasePrev;
        else
            entry.LeaseNext.LeasePrev = entry.LeasePrev;
        entry.LeasePrev = entry.LeaseNext = null;
    }

    // Keeps the executor in its pools exactly while it can take a task, at its current load.
    private static void UpdatePools(ExecutorHandle executor)
    {
        var ready = executor.Capacity > 0;
        foreach (var member in executor.Members)
        {
            if (ready)
            {
                if (member.Index < 0)
                    member.Pool.Add(member);
                else
                    member.Pool.Fix(member.Index);
            }
            else if (member.Index >= 0)
            {
                member.Pool.Remove(member);
            }
        }
    }

    private void Mark(ExecutorHandle executor)
    {
        if (executor.Marked)
            return;
        executor.Marked = true;
        _freed.Add(executor);
    }

    private static void Mark(TaskQueue queue, List<TaskQueue> list)
    {
        if (queue.Touched)
            return;
        queue.Touched = true;
        list.Add(queue);
    }

    private void OfferFreed()
    {
        foreach (var executor in _freed)
        {
            executor.Marked = false;
            UpdatePools(executor);
            OnCapacity(executor);
        }
        _freed.Clear();
        DrainUnblocked();
    }

    // A lease of a tenant at its concurrency limit ended: its queues may dispatch again (after the caller's update).
    private void LeaseEnded(TenantShare share)
    {
        share.Leased--;
        if (share.MaxConcurrent > 0 && share.Leased == share.MaxConcurrent - 1 && !_unblocked.Contains(share))
            _unblocked.Add(share);
    }

    private void DrainUnblocked()
    {
        for (var i = 0; i < _unblocked.Count; i++)
        {
            foreach (var queue in _unblocked[i].Queues)
            {
                if (queue.Live > 0)
                    Drain(queue);
            }
        }
        _unblocked.Clear();
    }

    private TaskQueue QueueOf(string tenantId, string executorType)
    {
        var key = new QueueKey(tenantId, executorType);
        if (!_queues.TryGetValue(key, out var queue))
        {
            var type = TypeOf(executorType);
            var share = ShareOf(tenantId);
            queue = new TaskQueue(tenantId, executorType, type, type.PoolOf(tenantId), share);
            share.Queues.Add(queue);
            _queues[key] = queue;
        }
        return queue;
    }

    private TenantShare ShareOf(string tenantId)
    {
        ref var share = ref CollectionsMarshal.GetValueRefOrAddDefault(_shares, tenantId, out _);
        return share ??= new TenantShare();
    }

    private TypeIndex TypeOf(string executorType)
    {
        if (!_types.TryGetValue(executorType, out var type))
        {
            type = new TypeIndex(executorType);
            _types.Add(executorType, type);
        }
        return type;
    }

    private RunTasks RunOf(string runId)
    {
        ref var run = ref CollectionsMarshal.GetValueRefOrAddDefault(_runs, runId, out _);
        return run ??= _runPool.TryPop(out var pooled) ? pooled : new RunTasks();
    }

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private readonly record struct QueueKey(string TenantId, string ExecutorType);

    // Executor ids are unique per tenant: one tenant's choice of id never blocks or reveals another tenant's.
    private readonly record struct ExecutorKey(string TenantId, string ExecutorId);
}
