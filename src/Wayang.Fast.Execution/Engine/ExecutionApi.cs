using System.Text.Json;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Runs;

namespace Wayang.Fast.Execution.Engine;

// The engine's request and result shapes: what the server maps frames to and from. Plain data, no MessagePack.

public sealed record SubmitRunRequest(string WorkflowId, int Version, JsonElement? Input, string? IdempotencyKey, RunSla? Sla = null);

// A run's SLA tags, inherited by its tasks unless a node's own `sla` overrides them. DeadlineAtMs (unix ms) and
// LatencyBudgetMs (from submission) are alternatives; neither: no deadline.
public sealed record RunSla(SlaPriority Priority = SlaPriority.Unspecified, long DeadlineAtMs = 0, long LatencyBudgetMs = 0,
    DeadlineMissPolicy OnDeadlineMiss = DeadlineMissPolicy.Unspecified);

// Replayed: the idempotency key matched an earlier submission and this is that submission's run.
public sealed record SubmitRunResult(string RunId, RunStatus Status, int WorkflowVersion, bool Replayed);

// LatestVersion: the newest version in any state; UpdatedAtMs: the latest creation or transition of any version.
public sealed record WorkflowSummary(string WorkflowId, int LatestVersion, IReadOnlyList<int> Versions, long UpdatedAtMs)
{
    // The state of each version, in the order of Versions.
    public IReadOnlyList<DefinitionState> States { get; init; } = [];

    // What version 0 runs; 0 when no version is PUBLISHED.
    public int LatestPublishedVersion { get; init; }
}

// One workflow version with its lifecycle: the times of the changes it went through (null: not yet).
public sealed record WorkflowVersionInfo(string WorkflowId, int Version, DefinitionState State, WorkflowDefinition Definition, long CreatedAtMs,
    long? ValidatedAtMs, long? PublishedAtMs, long? ArchivedAtMs);

public sealed record RunSummary(string RunId, string WorkflowId, int WorkflowVersion, RunStatus Status, long CreatedAtMs, long UpdatedAtMs);

public sealed record ExecutorRegistration(string ExecutorId, IReadOnlyList<string> ExecutorTypes, int Slots, IReadOnlyDictionary<string, string> Labels);

// What the engine pushes to an executor. Token identifies run:node:attempt and is what the result must carry.
public sealed class TaskAssignment
{
    public required string Token { get; init; }
    public required string TaskId { get; init; }          // "<runId>:<nodeId>:<attempt>": the executor's dedupe key for side effects
    public required string TenantId { get; init; }
    public required string RunId { get; init; }
    public required string WorkflowId { get; init; }
    public required string NodeId { get; init; }
    public required int Attempt { get; init; }
    public required string ExecutorType { get; init; }
    public JsonElement? Input { get; init; }               // the run's input
    public JsonElement? Config { get; init; }              // the node's config
    public JsonElement? Upstream { get; init; }            // { "<predecessorId>": output, ... } of completed predecessors
    public long LeaseExpiresAtMs { get; init; }
    public long DeadlineAtMs { get; init; }                 // the attempt times out at this instant
}

// The server side of one executor's task stream. TryPush writes the TASK frame without blocking (the server flushes);
// false means the connection is gone and the engine must take the task back.
public interface IExecutorChannel
{
    bool TryPush(TaskAssignment task);
}

public sealed record TaskResult(string Token, bool Success, JsonElement? Output, string? ErrorCode, string? ErrorMessage, bool Retryable = true);

// Duplicate: this token's result had already been accepted; nothing changed.
public sealed record TaskResultAck(string RunId, string NodeId, int Attempt, bool Duplicate);

public sealed record QueueStat(string TenantId, string ExecutorType, int Depth, int MaxDepth, int Leased);

public sealed record ExecutorStat(string ExecutorId, string TenantId, bool Shared, IReadOnlyList<string> ExecutorTypes, int Slots, int InFlight, int Credit, long LastHeartbeatMs);

public sealed record ExecutionStats(IReadOnlyList<QueueStat> Queues, IReadOnlyList<ExecutorStat> Executors, long RunsActive, long TasksDispatched, long TasksCompleted, long TasksFailed, long TasksRetried, long DeadLettered, long LeaseExpirations)
{
    // (tenant, priority, count): tasks that reached their turn to dispatch after their SLA deadline.
    public IReadOnlyList<(string TenantId, SlaPriority Priority, long Misses)> DeadlineMisses { get; init; } = [];
}

public sealed record DeadLetterFilter(string? WorkflowId = null, string? NodeId = null, string? ErrorCode = null, long? FromMs = null, long? ToMs = null, int Limit = 100);

public sealed record ReplayOutcome(string DeadLetterId, string RunId, bool Replayed, WayangError? Error);
