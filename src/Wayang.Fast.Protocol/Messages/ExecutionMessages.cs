using MessagePack;

namespace Wayang.Fast.Protocol.Messages;

// Execution plane (Gamelan) bodies. Fields named *Json carry UTF-8 JSON documents as MessagePack bin: workflow
// definitions, run inputs, node configs and outputs are JSON in this product, and the server stores and evaluates
// them as JSON, so they cross the wire untranslated. An empty bin means "no value" (JSON null).

[MessagePackObject]
public sealed class WorkflowRegisterRequest
{
    [Key(0)] public byte[] DefinitionJson { get; set; } = [];
}

[MessagePackObject]
public sealed class WorkflowRegisterResponse
{
    [Key(0)] public string WorkflowId { get; set; } = "";
    [Key(1)] public int Version { get; set; }
}

[MessagePackObject]
public sealed class WorkflowGetRequest
{
    [Key(0)] public string WorkflowId { get; set; } = "";
    // 0: the latest version.
    [Key(1)] public int Version { get; set; }
}

[MessagePackObject]
public sealed class WorkflowGetResponse
{
    [Key(0)] public byte[] DefinitionJson { get; set; } = [];
}

[MessagePackObject]
public sealed class WorkflowInfoDto
{
    [Key(0)] public string WorkflowId { get; set; } = "";
    [Key(1)] public int LatestVersion { get; set; }
    [Key(2)] public int[] Versions { get; set; } = [];
    [Key(3)] public long UpdatedAtMs { get; set; }
}

[MessagePackObject]
public sealed class WorkflowListResponse
{
    [Key(0)] public WorkflowInfoDto[] Workflows { get; set; } = [];
}

[MessagePackObject]
public sealed class RunSubmitRequest
{
    [Key(0)] public string WorkflowId { get; set; } = "";
    // 0: the latest version at submission time.
    [Key(1)] public int Version { get; set; }
    [Key(2)] public byte[] InputJson { get; set; } = [];
    // Empty: no idempotency. Scoped to the tenant, remembered for the server's retention window (default 24 h).
    [Key(3)] public string IdempotencyKey { get; set; } = "";
    // SLA tags (0 = unset): priority class (SlaPriority: 1 LOW .. 4 CRITICAL; unset = NORMAL), an absolute deadline
    // (unix ms) or a latency budget from submission (ms) -- not both -- and the deadline-miss policy
    // (DeadlineMissPolicy: 1 RUN_ANYWAY, 2 FAIL; unset = RUN_ANYWAY). Tasks inherit them unless a node's `sla` overrides.
    [Key(4)] public int Priority { get; set; }
    [Key(5)] public long DeadlineAtMs { get; set; }
    [Key(6)] public long LatencyBudgetMs { get; set; }
    [Key(7)] public int OnDeadlineMiss { get; set; }
}

[MessagePackObject]
public sealed class RunSubmitResponse
{
    [Key(0)] public string RunId { get; set; } = "";
    [Key(1)] public int Status { get; set; }
    [Key(2)] public int WorkflowVersion { get; set; }
    // True when the idempotency key matched an earlier submission: this is that submission's run.
    [Key(3)] public bool Replayed { get; set; }
}

[MessagePackObject]
public sealed class RunGetRequest
{
    [Key(0)] public string RunId { get; set; } = "";
    [Key(1)] public bool IncludeEvents { get; set; }
}

[MessagePackObject]
public sealed class AttemptDto
{
    [Key(0)] public int Attempt { get; set; }
    [Key(1)] public string ExecutorId { get; set; } = "";
    [Key(2)] public long StartedAtMs { get; set; }
    [Key(3)] public long EndedAtMs { get; set; }
    [Key(4)] public bool Succeeded { get; set; }
    [Key(5)] public string ErrorCode { get; set; } = "";
    [Key(6)] public string ErrorMessage { get; set; } = "";
}

[MessagePackObject]
public sealed class NodeStateDto
{
    [Key(0)] public string NodeId { get; set; } = "";
    [Key(1)] public int Status { get; set; }
    [Key(2)] public int Attempt { get; set; }
    [Key(3)] public byte[] OutputJson { get; set; } = [];
    [Key(4)] public string ErrorCode { get; set; } = "";
    [Key(5)] public string ErrorMessage { get; set; } = "";
    [Key(6)] public AttemptDto[] Attempts { get; set; } = [];
}

[MessagePackObject]
public sealed class RunEventDto
{
    [Key(0)] public long Seq { get; set; }
    [Key(1)] public long AtMs { get; set; }
    [Key(2)] public int Type { get; set; }
    [Key(3)] public string NodeId { get; set; } = "";
    [Key(4)] public int Attempt { get; set; }
    [Key(5)] public string Detail { get; set; } = "";
}

[MessagePackObject]
public sealed class RunDto
{
    [Key(0)] public string RunId { get; set; } = "";
    [Key(1)] public string TenantId { get; set; } = "";
    [Key(2)] public string WorkflowId { get; set; } = "";
    [Key(3)] public int WorkflowVersion { get; set; }
    [Key(4)] public int Status { get; set; }
    [Key(5)] public byte[] InputJson { get; set; } = [];
    [Key(6)] public byte[] OutputJson { get; set; } = [];
    [Key(7)] public string ErrorCode { get; set; } = "";
    [Key(8)] public string ErrorMessage { get; set; } = "";
    [Key(9)] public long CreatedAtMs { get; set; }
    [Key(10)] public long UpdatedAtMs { get; set; }
    [Key(11)] public long FinishedAtMs { get; set; }
    [Key(12)] public string IdempotencyKey { get; set; } = "";
    [Key(13)] public NodeStateDto[] Nodes { get; set; } = [];
    // Only when RunGetRequest.IncludeEvents.
    [Key(14)] public RunEventDto[] Events { get; set; } = [];
}

[MessagePackObject]
public sealed class RunListRequest
{
    // 0: any status.
    [Key(0)] public int Status { get; set; }
    // 0: the server default (100); at most 1,000.
    [Key(1)] public int Limit { get; set; }
}

[MessagePackObject]
public sealed class RunSummaryDto
{
    [Key(0)] public string RunId { get; set; } = "";
    [Key(1)] public string WorkflowId { get; set; } = "";
    [Key(2)] public int WorkflowVersion { get; set; }
    [Key(3)] public int Status { get; set; }
    [Key(4)] public long CreatedAtMs { get; set; }
    [Key(5)] public long UpdatedAtMs { get; set; }
}

[MessagePackObject]
public sealed class RunListResponse
{
    [Key(0)] public RunSummaryDto[] Runs { get; set; } = [];
}

// RunCancel, RunSuspend, RunResume request (Reason is used by RunCancel only); the reply is a RunSummaryDto.
[MessagePackObject]
public sealed class RunControlRequest
{
    [Key(0)] public string RunId { get; set; } = "";
    [Key(1)] public string Reason { get; set; } = "";
}

[MessagePackObject]
public sealed class RunSignalRequest
{
    [Key(0)] public string RunId { get; set; } = "";
    [Key(1)] public string Signal { get; set; } = "";
    [Key(2)] public byte[] PayloadJson { get; set; } = [];
}

// Opens the executor's task stream. The stream's initial credit is Slots (not the session default): every TASK
// consumes one credit, and the executor grants one back for each slot it frees.
[MessagePackObject]
public sealed class ExecutorRegisterRequest
{
    [Key(0)] public string ExecutorId { get; set; } = "";
    [Key(1)] public string[] ExecutorTypes { get; set; } = [];
    [Key(2)] public int Slots { get; set; }
    [Key(3)] public Dictionary<string, string> Labels { get; set; } = [];
}

// One STREAM item of ExecutorRegister: a task to run.
[MessagePackObject]
public sealed class TaskAssignmentDto
{
    [Key(0)] public string Token { get; set; } = "";
    // "<runId>:<nodeId>:<attempt>": stable across redeliveries of the same attempt; the executor's key for
    // deduplicating its own side effects.
    [Key(1)] public string TaskId { get; set; } = "";
    [Key(2)] public string TenantId { get; set; } = "";
    [Key(3)] public string RunId { get; set; } = "";
    [Key(4)] public string WorkflowId { get; set; } = "";
    [Key(5)] public string NodeId { get; set; } = "";
    [Key(6)] public int Attempt { get; set; }
    [Key(7)] public string ExecutorType { get; set; } = "";
    [Key(8)] public byte[] InputJson { get; set; } = [];
    [Key(9)] public byte[] ConfigJson { get; set; } = [];
    [Key(10)] public byte[] UpstreamJson { get; set; } = [];
    [Key(11)] public long LeaseExpiresAtMs { get; set; }
    [Key(12)] public long DeadlineAtMs { get; set; }
}

[MessagePackObject]
public sealed class ExecutorSetSlotsRequest
{
    [Key(0)] public string ExecutorId { get; set; } = "";
    [Key(1)] public int Slots { get; set; }
}

[MessagePackObject]
public sealed class ExecutorSetSlotsResponse
{
    [Key(0)] public int Slots { get; set; }
    [Key(1)] public int InFlight { get; set; }
}

[MessagePackObject]
public sealed class ExecutorHeartbeatRequest
{
    [Key(0)] public string ExecutorId { get; set; } = "";
}

[MessagePackObject]
public sealed class ExecutorHeartbeatResponse
{
    [Key(0)] public int LeasesRenewed { get; set; }
    [Key(1)] public long LeaseExpiresAtMs { get; set; }
}

[MessagePackObject]
public sealed class TaskResultRequest
{
    [Key(0)] public string Token { get; set; } = "";
    [Key(1)] public bool Success { get; set; }
    [Key(2)] public byte[] OutputJson { get; set; } = [];
    // Failure only: the executor's error code (matched against the node's nonRetryableErrors) and message.
    [Key(3)] public string ErrorCode { get; set; } = "";
    [Key(4)] public string ErrorMessage { get; set; } = "";
    // Failure only: false stops retries regardless of the policy.
    [Key(5)] public bool Retryable { get; set; } = true;
}

[MessagePackObject]
public sealed class TaskResultResponse
{
    [Key(0)] public string RunId { get; set; } = "";
    [Key(1)] public string NodeId { get; set; } = "";
    [Key(2)] public int Attempt { get; set; }
    // True when this token's result had already been accepted: nothing changed.
    [Key(3)] public bool Duplicate { get; set; }
}

[MessagePackObject]
public sealed class QueueStatsRequest
{
    // Empty: the caller's tenant. "*": every tenant (platform admin only).
    [Key(0)] public string TenantId { get; set; } = "";
}

[MessagePackObject]
public sealed class QueueStatDto
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string ExecutorType { get; set; } = "";
    [Key(2)] public int Depth { get; set; }
    [Key(3)] public int MaxDepth { get; set; }
    [Key(4)] public int Leased { get; set; }
}

[MessagePackObject]
public sealed class ExecutorStatDto
{
    [Key(0)] public string ExecutorId { get; set; } = "";
    [Key(1)] public string TenantId { get; set; } = "";
    [Key(2)] public bool Shared { get; set; }
    [Key(3)] public string[] ExecutorTypes { get; set; } = [];
    [Key(4)] public int Slots { get; set; }
    [Key(5)] public int InFlight { get; set; }
    [Key(6)] public int Credit { get; set; }
    [Key(7)] public long LastHeartbeatMs { get; set; }
}

[MessagePackObject]
public sealed class QueueStatsResponse
{
    [Key(0)] public QueueStatDto[] Queues { get; set; } = [];
    [Key(1)] public ExecutorStatDto[] Executors { get; set; } = [];
    [Key(2)] public long RunsActive { get; set; }
}

[MessagePackObject]
public sealed class DlqFilterDto
{
    [Key(0)] public string WorkflowId { get; set; } = "";
    [Key(1)] public string NodeId { get; set; } = "";
    [Key(2)] public string ErrorCode { get; set; } = "";
    // Unix ms, inclusive; 0: unbounded.
    [Key(3)] public long FromMs { get; set; }
    [Key(4)] public long ToMs { get; set; }
    // 0: the server default (100); at most 1,000.
    [Key(5)] public int Limit { get; set; }
}

[MessagePackObject]
public sealed class DlqListRequest
{
    [Key(0)] public DlqFilterDto Filter { get; set; } = new();
}

[MessagePackObject]
public sealed class DeadLetterDto
{
    [Key(0)] public string Id { get; set; } = "";
    [Key(1)] public string TenantId { get; set; } = "";
    [Key(2)] public string RunId { get; set; } = "";
    [Key(3)] public string WorkflowId { get; set; } = "";
    [Key(4)] public int WorkflowVersion { get; set; }
    [Key(5)] public string NodeId { get; set; } = "";
    [Key(6)] public string ExecutorType { get; set; } = "";
    [Key(7)] public byte[] InputJson { get; set; } = [];
    [Key(8)] public byte[] ConfigJson { get; set; } = [];
    [Key(9)] public AttemptDto[] Attempts { get; set; } = [];
    [Key(10)] public string LastErrorCode { get; set; } = "";
    [Key(11)] public string LastErrorMessage { get; set; } = "";
    [Key(12)] public string ExecutorId { get; set; } = "";
    [Key(13)] public long DeadLetteredAtMs { get; set; }
}

[MessagePackObject]
public sealed class DlqListResponse
{
    [Key(0)] public DeadLetterDto[] Entries { get; set; } = [];
}

[MessagePackObject]
public sealed class DlqShowRequest
{
    [Key(0)] public string Id { get; set; } = "";
}

// DlqReplay and DlqDiscard: the listed Ids, or (Ids empty) every entry matching Filter. All must be true to act on
// an empty filter, so a forgotten filter never replays or discards a whole tenant's queue by accident.
[MessagePackObject]
public sealed class DlqActionRequest
{
    [Key(0)] public string[] Ids { get; set; } = [];
    [Key(1)] public DlqFilterDto Filter { get; set; } = new();
    [Key(2)] public bool All { get; set; }
    // Replay only: entries per second (0: the server default).
    [Key(3)] public int RatePerSecond { get; set; }
}

[MessagePackObject]
public sealed class ReplayOutcomeDto
{
    [Key(0)] public string DeadLetterId { get; set; } = "";
    [Key(1)] public string RunId { get; set; } = "";
    [Key(2)] public bool Replayed { get; set; }
    [Key(3)] public int ErrorCode { get; set; }
    [Key(4)] public string ErrorMessage { get; set; } = "";
}

[MessagePackObject]
public sealed class DlqReplayResponse
{
    [Key(0)] public ReplayOutcomeDto[] Outcomes { get; set; } = [];
}

[MessagePackObject]
public sealed class DlqDiscardResponse
{
    [Key(0)] public int Discarded { get; set; }
}

// A tenant's scheduling settings; 0 = no limit (README: Scheduling).
[MessagePackObject]
public sealed class TenantScheduleDto
{
    [Key(0)] public string TenantId { get; set; } = "";
    // 1..1000: its share of dispatch within a priority class.
    [Key(1)] public int Weight { get; set; } = 1;
    [Key(2)] public int MaxConcurrent { get; set; }
    [Key(3)] public int MaxQueued { get; set; }
    [Key(4)] public int MaxSubmitsPerSecond { get; set; }
}

[MessagePackObject]
public sealed class TenantScheduleListRequest
{
    // Empty: every tenant that has a schedule.
    [Key(0)] public string TenantId { get; set; } = "";
}

[MessagePackObject]
public sealed class TenantScheduleListResponse
{
    [Key(0)] public TenantScheduleDto[] Schedules { get; set; } = [];
}
