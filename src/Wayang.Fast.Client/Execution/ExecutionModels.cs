using System.Text.Json;
using Wayang.Fast.Common.Runs;

namespace Wayang.Fast.Client.Execution;

// SDK views of the execution plane's wire messages: timestamps as DateTimeOffset, JSON documents as JsonElement
// (null when the server sent no value), statuses as the shared enums of Wayang.Fast.Common.Runs.

public sealed record WorkflowRegistration(string WorkflowId, int Version);

public sealed record WorkflowInfo(string WorkflowId, int LatestVersion, IReadOnlyList<int> Versions, DateTimeOffset UpdatedAt);

// Replayed: the idempotency key matched an earlier submission, and RunId is that submission's run.
public sealed record SubmitResult(string RunId, RunStatus Status, int Version, bool Replayed);

// A run's SLA tags. Deadline and LatencyBudget are alternatives (the server refuses both); neither: no deadline.
public sealed record SubmitSla(SlaPriority Priority = SlaPriority.Unspecified, DateTimeOffset? Deadline = null, TimeSpan? LatencyBudget = null,
    DeadlineMissPolicy OnDeadlineMiss = DeadlineMissPolicy.Unspecified);

public sealed record RunSummary(string RunId, string WorkflowId, int WorkflowVersion, RunStatus Status, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt)
{
    public bool IsTerminal => RunStatuses.IsTerminal(Status);
}

public sealed record RunInfo(
    string RunId,
    string TenantId,
    string WorkflowId,
    int WorkflowVersion,
    RunStatus Status,
    JsonElement? Input,
    JsonElement? Output,
    string? ErrorCode,
    string? ErrorMessage,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    DateTimeOffset? FinishedAt,
    string? IdempotencyKey,
    IReadOnlyList<NodeInfo> Nodes,
    IReadOnlyList<RunEvent> Events)
{
    public bool IsTerminal => RunStatuses.IsTerminal(Status);

    // The node's state, or null when the run has not reached it yet.
    public NodeInfo? Node(string nodeId)
    {
        foreach (var node in Nodes)
        {
            if (node.NodeId == nodeId)
                return node;
        }
        return null;
    }
}

public sealed record NodeInfo(
    string NodeId,
    NodeStatus Status,
    int Attempt,
    JsonElement? Output,
    string? ErrorCode,
    string? ErrorMessage,
    IReadOnlyList<AttemptInfo> Attempts);

// One attempt of a node as the server recorded it; EndedAt is null while it runs.
public sealed record AttemptInfo(
    int Attempt,
    string? ExecutorId,
    DateTimeOffset? StartedAt,
    DateTimeOffset? EndedAt,
    bool Succeeded,
    string? ErrorCode,
    string? ErrorMessage);

public sealed record RunEvent(long Seq, DateTimeOffset At, RunEventType Type, string? NodeId, int Attempt, string? Detail);

// DLQ list, replay and discard filters. Every field is optional; From and To are inclusive.
public sealed record DeadLetterFilter
{
    public string? WorkflowId { get; init; }
    public string? NodeId { get; init; }
    public string? ErrorCode { get; init; }
    public DateTimeOffset? From { get; init; }
    public DateTimeOffset? To { get; init; }
    // 0: the server default (100); the server caps it at 1,000.
    public int Limit { get; init; }

    public bool IsEmpty => WorkflowId is null && NodeId is null && ErrorCode is null && From is null && To is null;
}

// A task whose attempts ran out, with the context needed to understand and replay it.
public sealed record DeadLetterInfo(
    string Id,
    string TenantId,
    string RunId,
    string WorkflowId,
    int WorkflowVersion,
    string NodeId,
    string? ExecutorType,
    JsonElement? Input,
    JsonElement? Config,
    IReadOnlyList<AttemptInfo> Attempts,
    string? LastErrorCode,
    string? LastErrorMessage,
    string? ExecutorId,
    DateTimeOffset DeadLetteredAt);

// Error is null when the entry was replayed; otherwise why it was not (e.g. its run was cancelled since).
public sealed record DeadLetterReplayOutcome(string DeadLetterId, string? RunId, bool Replayed, Common.Errors.WayangError? Error);

public sealed record QueueInfo(string TenantId, string ExecutorType, int Depth, int MaxDepth, int Leased);

public sealed record ExecutorInfo(
    string ExecutorId,
    string TenantId,
    bool Shared,
    IReadOnlyList<string> ExecutorTypes,
    int Slots,
    int InFlight,
    int Credit,
    DateTimeOffset? LastHeartbeat);

public sealed record QueueStats(IReadOnlyList<QueueInfo> Queues, IReadOnlyList<ExecutorInfo> Executors, long RunsActive);

// A tenant's scheduling settings (0 = no limit): fair-share weight 1..1000, tasks leased at once, tasks queued,
// submissions per second.
public sealed record TenantScheduleInfo(string TenantId, int Weight = 1, int MaxConcurrent = 0, int MaxQueued = 0, int MaxSubmitsPerSecond = 0);

public static class RunStatuses
{
    public static bool IsTerminal(RunStatus status) => status is RunStatus.Completed or RunStatus.Failed or RunStatus.Cancelled;

    // Upper-case names as the CLI and the protocol spec write them (RUNNING, COMPLETED, ...).
    public static string Name(RunStatus status) => status.ToString().ToUpperInvariant();

    public static string Name(NodeStatus status) => status.ToString().ToUpperInvariant();

    public static bool TryParse(string? value, out RunStatus status)
    {
        status = RunStatus.Unspecified;
        return !string.IsNullOrWhiteSpace(value)
            && Enum.TryParse(value.Trim(), ignoreCase: true, out status)
            && status != RunStatus.Unspecified
            && Enum.IsDefined(status);
    }
}
