using Wayang.Fast.Execution.Engine;

namespace Wayang.Fast.Execution.Dispatch;

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
}

// The engine's hook to turn a queued task into the frame an executor receives (it reads the run's input, the
// node's config and upstream outputs, issues the token). Null: the task is stale (run cancelled, node already
// done) and is dropped.
public delegate TaskAssignment? AssignmentFactory(QueuedTask task, string executorId, long leaseExpiresAtMs);

// Where tasks wait and who runs them: the queues (tenant x executor type), the executors with their slots and
// stream credit, and the leases of dispatched tasks (STUB: implemented by the dispatch work item).
// An executor is never sent more tasks than min(credit, slots - in flight).
public sealed class TaskDispatcher
{
    public TaskDispatcher(ExecutionOptions options, TimeProvider time, AssignmentFactory assign) => throw new NotImplementedException();

    // Queue depth of (tenant, executorType): the submission check for QUEUE_FULL.
    public int Depth(string tenantId, string executorType) => throw new NotImplementedException();

    // Adds the task and dispatches what can go. front: a redelivery (lease expiry, disconnect, restart) goes
    // before newer work.
    public void Enqueue(QueuedTask task, bool front = false) => throw new NotImplementedException();

    public ExecutorHandle Register(string tenantId, bool shared, ExecutorRegistration registration, IExecutorChannel channel) => throw new NotImplementedException();

    // Returns the tasks the executor held (their leases are gone); the caller requeues them.
    public IReadOnlyList<QueuedTask> Unregister(ExecutorHandle executor) => throw new NotImplementedException();

    public void GrantCredit(ExecutorHandle executor, int credits) => throw new NotImplementedException();

    public void SetSlots(ExecutorHandle executor, int slots) => throw new NotImplementedException();

    // Renews every lease the executor holds; returns how many and the new expiry.
    public (int Renewed, long ExpiresAtMs) Heartbeat(ExecutorHandle executor) => throw new NotImplementedException();

    // The result for taskId arrived (or the attempt ended otherwise): frees its slot. False if no lease existed.
    public bool Release(string taskId) => throw new NotImplementedException();

    // Whether taskId is currently leased, and to whom.
    public bool TryGetLease(string taskId, out string executorId) => throw new NotImplementedException();

    // Drops every queued task and lease of a run (cancel, run failure). Returns the task ids that were leased.
    public IReadOnlyList<string> RemoveRun(string runId) => throw new NotImplementedException();

    // Leases whose expiry passed; they are removed and their slots freed. The caller requeues them.
    public IReadOnlyList<QueuedTask> ExpireLeases(long nowMs) => throw new NotImplementedException();

    // Earliest lease expiry, for the engine's timer (long.MaxValue when none).
    public long NextLeaseExpiryMs => throw new NotImplementedException();

    public (IReadOnlyList<QueueStat> Queues, IReadOnlyList<ExecutorStat> Executors) Stats(string? tenantId) => throw new NotImplementedException();

    public long Dispatched => throw new NotImplementedException();
    public long LeaseExpirations => throw new NotImplementedException();
}
