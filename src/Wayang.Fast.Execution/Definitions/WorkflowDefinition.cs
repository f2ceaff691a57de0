using System.Text.Json;
using System.Text.Json.Serialization;
using Wayang.Fast.Common.Runs;

namespace Wayang.Fast.Execution.Definitions;

// The one model of a workflow definition. Clients send it as JSON (the same shape, camelCase, enums as upper-case
// names); it is stored as JSON too. The control-plane issue adds a JSON Schema and a lifecycle around this same type,
// so it stays plain data: validation lives in WorkflowValidator, graph indexes in CompiledWorkflow.
public sealed class WorkflowDefinition
{
    // Chosen by the author: the workflow's name within its tenant (Ids.IsValidName).
    public string Id { get; set; } = "";

    // Assigned by the registry (1, 2, ...); whatever a client sends here is ignored.
    public int Version { get; set; }

    public string? Description { get; set; }

    public List<InputDeclaration> Inputs { get; set; } = [];

    public List<NodeDefinition> Nodes { get; set; } = [];

    // Run output name -> where its value comes from once the run completes.
    public Dictionary<string, OutputMapping> Outputs { get; set; } = [];

    // Applies to every TASK/AGENT node without its own policy.
    public RetryPolicy? DefaultRetry { get; set; }
}

public sealed class InputDeclaration
{
    public string Name { get; set; } = "";
    public bool Required { get; set; }
}

public sealed class OutputMapping
{
    // Same syntax as Condition.Path: "<nodeId>.<field>..." or "$input.<field>...".
    public string Path { get; set; } = "";
}

public sealed class NodeDefinition
{
    public string Id { get; set; } = "";

    public NodeType Type { get; set; }

    // TASK: which executors can run it (an executor registers the types it serves).
    public string? ExecutorType { get; set; }

    // Opaque to the server: handed to the executor (TASK) or the inference gateway (AGENT).
    public JsonElement? Config { get; set; }

    // Nodes that must have COMPLETED before this one starts (AND join).
    public List<string> DependsOn { get; set; } = [];

    // Edges out of this node, evaluated when it finishes (see Planner for the exact rule).
    public List<Transition> Transitions { get; set; } = [];

    public RetryPolicy? Retry { get; set; }

    // Upper bound of one attempt (TASK, AGENT); an attempt that exceeds it fails with TASK_TIMEOUT and may retry.
    public long? TimeoutMs { get; set; }

    // A critical node that fails (with no FAILURE transition to handle it) fails the run; a non-critical one only
    // skips what depends on it.
    public bool Critical { get; set; } = true;

    // WAIT: a timer of this length, or (with Signal) the longest time to wait for the signal.
    public long? DurationMs { get; set; }

    // WAIT: the signal name that releases the node; the signal's payload becomes the node's output.
    public string? Signal { get; set; }

    // AGENT: the agent definition the node calls (resolved by the inference plane).
    public string? Agent { get; set; }

    // AGENT: which version of that agent definition. Required (and checked to be PUBLISHED) when the server has an
    // agent catalog; optional without one, where the agent is only a name the inference plane interprets.
    public int? AgentVersion { get; set; }

    // TASK: executor labels the executor must carry (all of them, equal values).
    public Dictionary<string, string>? Labels { get; set; }

    // TASK nodes: SLA tags that override the run's for this node's tasks.
    public NodeSla? Sla { get; set; }
}

public sealed class NodeSla
{
    public SlaPriority? Priority { get; set; }

    // The node's task must dispatch within this long of becoming ready (replaces the run's deadline for it).
    public long? LatencyBudgetMs { get; set; }

    public DeadlineMissPolicy? OnDeadlineMiss { get; set; }
}

public sealed class Transition
{
    public TransitionOn On { get; set; }

    public string To { get; set; } = "";

    // Only for On = CONDITION.
    public Condition? Condition { get; set; }
}

// Structured, not a string language: a path into run data, an operator, a JSON value.
public sealed class Condition
{
    // "<nodeId>.<field>.<field>|<index>..." reads a completed node's output; "$input.<field>..." reads the run input.
    // A path that does not resolve makes every operator false except NOT_EXISTS.
    public string Path { get; set; } = "";

    public ConditionOperator Op { get; set; }

    // Unused by EXISTS / NOT_EXISTS; an array for IN.
    public JsonElement? Value { get; set; }
}

public sealed class RetryPolicy
{
    // Attempts in all, the first included: 1 means no retry.
    public int MaxAttempts { get; set; } = 1;
    public long InitialDelayMs { get; set; } = 1000;
    public double Multiplier { get; set; } = 2.0;
    public long MaxDelayMs { get; set; } = 60_000;
    // Fraction of the delay randomized (0.2: the delay is within +/-20%).
    public double Jitter { get; set; } = 0.2;
    // Error codes (the executor's error code strings) that are never retried.
    public List<string> NonRetryableErrors { get; set; } = [];
}

// Persisted (inside stored definitions, as names) and on the wire: explicit values, append-only.
[JsonConverter(typeof(JsonStringEnumConverter<NodeType>))]
public enum NodeType
{
    [JsonStringEnumMemberName("UNSPECIFIED")] Unspecified = 0,
    [JsonStringEnumMemberName("TASK")] Task = 1,
    [JsonStringEnumMemberName("DECISION")] Decision = 2,
    [JsonStringEnumMemberName("PARALLEL")] Parallel = 3,
    [JsonStringEnumMemberName("JOIN")] Join = 4,
    [JsonStringEnumMemberName("WAIT")] Wait = 5,
    [JsonStringEnumMemberName("AGENT")] Agent = 6,
}

[JsonConverter(typeof(JsonStringEnumConverter<TransitionOn>))]
public enum TransitionOn
{
    [JsonStringEnumMemberName("UNSPECIFIED")] Unspecified = 0,
    [JsonStringEnumMemberName("SUCCESS")] Success = 1,
    [JsonStringEnumMemberName("FAILURE")] Failure = 2,
    [JsonStringEnumMemberName("CONDITION")] Condition = 3,
    [JsonStringEnumMemberName("DEFAULT")] Default = 4,
}

[JsonConverter(typeof(JsonStringEnumConverter<ConditionOperator>))]
public enum ConditionOperator
{
    [JsonStringEnumMemberName("UNSPECIFIED")] Unspecified = 0,
    [JsonStringEnumMemberName("EQ")] Equal = 1,
    [JsonStringEnumMemberName("NE")] NotEqual = 2,
    [JsonStringEnumMemberName("GT")] GreaterThan = 3,
    [JsonStringEnumMemberName("GTE")] GreaterOrEqual = 4,
    [JsonStringEnumMemberName("LT")] LessThan = 5,
    [JsonStringEnumMemberName("LTE")] LessOrEqual = 6,
    [JsonStringEnumMemberName("EXISTS")] Exists = 7,
    [JsonStringEnumMemberName("NOT_EXISTS")] NotExists = 8,
    [JsonStringEnumMemberName("CONTAINS")] Contains = 9,
    [JsonStringEnumMemberName("IN")] In = 10,
}
