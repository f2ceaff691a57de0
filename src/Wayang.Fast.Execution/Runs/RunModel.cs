using System.Text.Json;
using System.Text.Json.Serialization;
using Wayang.Fast.Common.Runs;

namespace Wayang.Fast.Execution.Runs;

// A run's whole durable state: one record per run, rewritten on every durable change, so a change (a node's
// result, the run's completion, the events that explain them) is one atomic write. Mutated only under the
// engine's per-run lock.
public sealed class RunState
{
    public string RunId { get; set; } = "";
    public string TenantId { get; set; } = "";
    public string WorkflowId { get; set; } = "";
    public int WorkflowVersion { get; set; }
    public RunStatus Status { get; set; }
    public JsonElement? Input { get; set; }
    public JsonElement? Output { get; set; }
    public string? IdempotencyKey { get; set; }
    // SLA tags (see RunSla); the deadline is absolute here (a latency budget was resolved at submission).
    public SlaPriority Priority { get; set; }
    public long DeadlineAtMs { get; set; }
    public DeadlineMissPolicy OnDeadlineMiss { get; set; }
    public long CreatedAtMs { get; set; }
    public long UpdatedAtMs { get; set; }
    public long? FinishedAtMs { get; set; }
    // Why a run FAILED or was CANCELLED: an error code name (RUN_STUCK, TASK_FAILED, ...) and a message.
    public string? ErrorCode { get; set; }
    public string? ErrorMessage { get; set; }
    public Dictionary<string, NodeState> Nodes { get; set; } = new(StringComparer.Ordinal);
    // Signals that arrived before a WAIT node armed for them (name -> payload), consumed in arrival order.
    public List<SignalRecord> PendingSignals { get; set; } = [];
    public List<RunEvent> Events { get; set; } = [];
    public long NextEventSeq { get; set; } = 1;

    public RunEvent AddEvent(RunEventType type, long atMs, string? nodeId = null, int attempt = 0, string? detail = null)
    {
        var e = new RunEvent { Seq = NextEventSeq++, AtMs = atMs, Type = type, NodeId = nodeId, Attempt = attempt, Detail = detail };
        Events.Add(e);
        return e;
    }

    public bool IsTerminal => Status is RunStatus.Completed or RunStatus.Failed or RunStatus.Cancelled;
}

public sealed class NodeState
{
    public string NodeId { get; set; } = "";
    public NodeStatus Status { get; set; } = NodeStatus.Pending;
    // The current attempt (1-based; 0 before the first). Increments on every retry and on DLQ replay, never on
    // redelivery of the same attempt after a lease expiry or disconnect.
    public int Attempt { get; set; }
    public JsonElement? Output { get; set; }
    // Retrying: when the next attempt is due. WAIT: when the timer fires. Persisted, so timers survive restarts.
    public long? DueAtMs { get; set; }
    // Executing: when the current attempt started (the node timeout counts from here).
    public long? AttemptStartedAtMs { get; set; }
    // Executing: the executor holding the lease (informational; leases themselves are not persisted).
    public string? ExecutorId { get; set; }
    // The error of the last failed attempt.
    public string? ErrorCode { get; set; }
    public string? ErrorMessage { get; set; }
    public List<AttemptRecord> Attempts { get; set; } = [];
    // Set by the planner when the node becomes terminal: the indexes of its transitions that fired. Recorded once,
    // so a condition is evaluated against the data as it was when the node finished, and replays are deterministic.
    public List<int>? FiredTransitions { get; set; }

    [JsonIgnore]
    public bool IsTerminal => Status is NodeStatus.Completed or NodeStatus.Failed or NodeStatus.Skipped or NodeStatus.Cancelled;
}

public sealed class AttemptRecord
{
    public int Attempt { get; set; }
    public string? ExecutorId { get; set; }
    public long StartedAtMs { get; set; }
    public long? EndedAtMs { get; set; }
    public bool Succeeded { get; set; }
    public string? ErrorCode { get; set; }
    public string? ErrorMessage { get; set; }
}

public sealed class RunEvent
{
    public long Seq { get; set; }
    public long AtMs { get; set; }
    public RunEventType Type { get; set; }
    public string? NodeId { get; set; }
    public int Attempt { get; set; }
    public string? Detail { get; set; }
}

public sealed class SignalRecord
{
    public string Name { get; set; } = "";
    public JsonElement? Payload { get; set; }
    public long AtMs { get; set; }
}
