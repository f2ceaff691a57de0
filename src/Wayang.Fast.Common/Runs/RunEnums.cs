using System.Text.Json.Serialization;

namespace Wayang.Fast.Common.Runs;

// The run and node statuses and run event types: persisted inside run records by the execution plane and carried on
// the wire as integers, so the plane and the SDK share these definitions here (neither may reference the other).
// Explicit values, append-only, frozen by a golden test.
public enum RunStatus : byte
{
    Unspecified = 0,
    Created = 1,
    Pending = 2,
    Running = 3,
    Suspended = 4,
    Completed = 5,
    Failed = 6,
    Cancelled = 7,
}

public enum NodeStatus : byte
{
    Unspecified = 0,
    // Waiting for its predecessors to be decided.
    Pending = 1,
    // Ready: in a task queue (TASK), or about to be called (AGENT), or its timer/signal is armed (WAIT).
    Queued = 2,
    // Leased to an executor (TASK) or being called (AGENT).
    Executing = 3,
    Completed = 4,
    Failed = 5,
    // An attempt failed and the next one waits for its backoff timer.
    Retrying = 6,
    Skipped = 7,
    Cancelled = 8,
}

public enum RunEventType : byte
{
    Unspecified = 0,
    RunCreated = 1,
    RunStarted = 2,
    NodeQueued = 3,
    NodeDispatched = 4,
    NodeCompleted = 5,
    NodeFailed = 6,
    NodeRetryScheduled = 7,
    NodeSkipped = 8,
    NodeCancelled = 9,
    RunSuspended = 10,
    RunResumed = 11,
    RunSignalled = 12,
    RunCompleted = 13,
    RunFailed = 14,
    RunCancelled = 15,
    NodeDeadLettered = 16,
    NodeReplayed = 17,
    NodeLeaseExpired = 18,
    NodeTimedOut = 19,
}

// A run's (or node's) priority class. Higher values dispatch first; within one class tenants share by weight and a
// tenant's own tasks go earliest deadline first. Unspecified means Normal.
[JsonConverter(typeof(JsonStringEnumConverter<SlaPriority>))]
public enum SlaPriority : byte
{
    [JsonStringEnumMemberName("UNSPECIFIED")] Unspecified = 0,
    [JsonStringEnumMemberName("LOW")] Low = 1,
    [JsonStringEnumMemberName("NORMAL")] Normal = 2,
    [JsonStringEnumMemberName("HIGH")] High = 3,
    [JsonStringEnumMemberName("CRITICAL")] Critical = 4,
}

// What happens to a task whose deadline has passed when its turn to dispatch comes.
[JsonConverter(typeof(JsonStringEnumConverter<DeadlineMissPolicy>))]
public enum DeadlineMissPolicy : byte
{
    // Unspecified means RunAnyway.
    [JsonStringEnumMemberName("UNSPECIFIED")] Unspecified = 0,
    // Dispatch it anyway and count the miss.
    [JsonStringEnumMemberName("RUN_ANYWAY")] RunAnyway = 1,
    // Count the miss and fail the attempt with DEADLINE_EXCEEDED without running it (not retried: a retry would be
    // late too; FAILURE transitions and the DLQ apply).
    [JsonStringEnumMemberName("FAIL")] Fail = 2,
}
