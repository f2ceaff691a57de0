using System.Globalization;
using System.Text.Json;
using Wayang.Fast.Common;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Planning;

namespace Wayang.Fast.Execution.Definitions;

// Agents: the control plane's agent definitions, when this server has them; null keeps the agent name a free string
// that only the inference plane interprets (no version needed).
public sealed record ValidationContext(bool InferenceAvailable, IReadOnlyCollection<string> KnownExecutorTypes, int MaxNodes, IAgentCatalog? Agents = null);

// What the execution plane asks the control plane about agent definitions (ARCHITECTURE: the calling plane owns the
// interface). Called while a workflow version is validated or published, never while a run executes.
public interface IAgentCatalog
{
    bool IsPublished(string tenantId, string agentId, int version);
}

// Validation of a definition: the structure (everything the planner and the compiler assume, so a stored workflow
// can never crash them; enough for a DRAFT) and the references (agents, the inference plane: needed to validate or
// publish). Reports the FIRST violation, naming the node ("" for the workflow).
public static class WorkflowValidator
{
    public const int MaxRetryAttempts = 100;
    public const double MaxMultiplier = 100;
    private const int MaxFieldNameLength = 64;

    // Structure and references. Throws WayangException(WORKFLOW_INVALID) naming the offending node, or
    // AGENT_UNAVAILABLE. tenantId is required when the context has an agent catalog (agents are per tenant).
    public static void Validate(WorkflowDefinition definition, ValidationContext context, string? tenantId = null)
    {
        ValidateStructure(definition, context);
        ValidateReferences(definition, context, tenantId);
    }

    // What a DRAFT must satisfy: the references may name things that do not exist yet.
    public static void ValidateStructure(WorkflowDefinition definition, ValidationContext context)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(context);

        if (!Ids.IsValidName(definition.Id))
            throw Invalid("", $"workflow id '{definition.Id}' is not a valid name (1..64 of [a-z0-9-_], starting with a letter or digit)");
        var nodes = definition.Nodes;
        if (nodes is null || nodes.Count == 0)
            throw Invalid("", "a workflow needs at least one node");
        if (nodes.Count > context.MaxNodes)
            throw Invalid("", $"{nodes.Count} nodes exceed the limit of {context.MaxNodes}");

        var index = new Dictionary<string, int>(nodes.Count, StringComparer.Ordinal);
        for (int i = 0; i < nodes.Count; i++)
        {
            var node = nodes[i] ?? throw Invalid("", $"nodes[{i}] is null");
            if (!Ids.IsValidName(node.Id))
                throw Invalid(node.Id ?? "", $"node id '{node.Id}' is not a valid name (1..64 of [a-z0-9-_], starting with a letter or digit)");
            if (!index.TryAdd(node.Id, i))
                throw Invalid(node.Id, "the node id is used by more than one node");
        }

        // Every node's own checks and the workflow-level ones are independent of each other: run them all and report
        // every problem at once. The graph checks (entry, reachability, cycles) assume sound nodes, so they run only then.
        List<WayangException>? problems = null;
        for (int i = 0; i < nodes.Count; i++)
            Collect(ref problems, () => ValidateNode(nodes[i], index, context), $"$.nodes[{i.ToString(CultureInfo.InvariantCulture)}]");
        if (definition.DefaultRetry is { } defaultRetry)
            Collect(ref problems, () => ValidateRetry("", defaultRetry, "defaultRetry"), "$.defaultRetry");
        Collect(ref problems, () => ValidateInputs(definition.Inputs), "$.inputs");
        Collect(ref problems, () => ValidateOutputs(definition.Outputs, index), "$.outputs");
        if (problems is not null)
            throw Combine(problems);

        ValidateGraph(nodes, index);
    }

    private static void Collect(ref List<WayangException>? problems, Action check, string path)
    {
        try
        {
            check();
        }
        catch (WayangException ex) when (ex.Error.Code == ErrorCode.WorkflowInvalid)
        {
            if (ex.Error.Details.ContainsKey("path"))
            {
                (problems ??= []).Add(ex);
                return;
            }
            var details = new Dictionary<string, string>(ex.Error.Details, StringComparer.Ordinal) { ["path"] = path };
            (problems ??= []).Add(new WayangException(new WayangError(ErrorCode.WorkflowInvalid, ex.Error.Message, details: details)));
        }
    }

    // One WORKFLOW_INVALID for several problems: the first keeps the node/path/reason details clients read, and
    // Details["violations"] lists them all as {pointer, reason} (the shape of the schema's violations).
    private static WayangException Combine(List<WayangException> problems)
    {
        if (problems.Count == 1)
            return problems[0];
        var first = problems[0].Error;
        var details = new Dictionary<string, string>(first.Details, StringComparer.Ordinal)
        {
            ["violationCount"] = problems.Count.ToString(CultureInfo.InvariantCulture),
            ["violations"] = ViolationsJson(problems),
        };
        // Starts like a single problem's message (clients and logs key on it), then the others.
        var message = $"{first.Message}; and {problems.Count - 1} more: " + string.Join("; ", problems.Skip(1).Take(19).Select(p => p.Error.Message))
            + (problems.Count > 20 ? $"; ... and {problems.Count - 20} more" : "");
        return new WayangException(new WayangError(ErrorCode.WorkflowInvalid, message, details: details));
    }

    private static string ViolationsJson(List<WayangException> problems)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            foreach (var p in problems)
            {
                p.Error.Details.TryGetValue("path", out var path);
                p.Error.Details.TryGetValue("reason", out var reason);
                writer.WriteStartObject();
                writer.WriteString("pointer", JsonPointer.FromJsonPath(path));
                writer.WriteString("reason", reason ?? p.Error.Message);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    // Runs after ValidateStructure (it assumes a well-formed node list). Each AGENT node must name an agent version
    // that is PUBLISHED in the workflow's tenant when a catalog is configured; and AGENT nodes need an inference plane.
    public static void ValidateReferences(WorkflowDefinition definition, ValidationContext context, string? tenantId)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(context);
        var nodes = definition.Nodes;
        if (context.Agents is { } catalog)
        {
            ArgumentNullException.ThrowIfNull(tenantId);
            for (int i = 0; i < nodes.Count; i++)
            {
                var node = nodes[i];
                if (node.Type != NodeType.Agent)
                    continue;
                var at = $"$.nodes[{i.ToString(CultureInfo.InvariantCulture)}]";
                if (node.AgentVersion is not { } version)
                    throw Invalid(node.Id, $"an AGENT node needs agentVersion: the published version of agent '{node.Agent}' it calls", at + ".agentVersion");
                if (!catalog.IsPublished(tenantId, node.Agent!, version))
                    throw Invalid(node.Id, $"agent '{node.Agent}' version {version.ToString(CultureInfo.InvariantCulture)} is not a published agent of this tenant", at + ".agent");
            }
        }

        if (!context.InferenceAvailable)
        {
            foreach (var node in nodes)
            {
                if (node.Type == NodeType.Agent)
                {
                    throw new WayangException(new WayangError(ErrorCode.AgentUnavailable,
                        $"node '{node.Id}': AGENT nodes need the inference plane, which is not available on this server",
                        details: Details(node.Id, "the inference plane is not available")));
                }
            }
        }
    }

    private static void ValidateNode(NodeDefinition node, Dictionary<string, int> index, ValidationContext context)
    {
        var id = node.Id;
        if (node.Type == NodeType.Unspecified || !Enum.IsDefined(node.Type))
            throw Invalid(id, "the node type is missing or unknown");

        if (node.Type == NodeType.Task)
        {
            if (!Ids.IsValidName(node.ExecutorType))
                throw Invalid(id, $"a TASK node needs a valid executorType (got '{node.ExecutorType}')");
            if (context.KnownExecutorTypes is { Count: > 0 } known && !known.Contains(node.ExecutorType!))
                throw Invalid(id, $"executorType '{node.ExecutorType}' is not a known executor type");
            if (node.Labels is { } labels)
            {
                foreach (var (key, value) in labels)
                {
                    if (string.IsNullOrEmpty(key) || value is null)
                        throw Invalid(id, "labels need non-empty names and non-null values");
                }
            }
        }
        else
        {
            if (node.ExecutorType is not null)
                throw Invalid(id, "only TASK nodes may set executorType");
            if (node.Labels is not null)
                throw Invalid(id, "only TASK nodes may set labels");
        }

        if (node.Type == NodeType.Wait)
        {
            if (node.DurationMs is { } duration && duration <= 0)
                throw Invalid(id, "durationMs must be greater than 0");
            if (node.Signal is not null && !Ids.IsValidName(node.Signal))
                throw Invalid(id, $"signal '{node.Signal}' is not a valid name (1..64 of [a-z0-9-_], starting with a letter or digit)");
            if (node.DurationMs is null && node.Signal is null)
                throw Invalid(id, "a WAIT node needs durationMs, a signal, or both");
        }

        if (node.Type == NodeType.Agent && string.IsNullOrWhiteSpace(node.Agent))
            throw Invalid(id, "an AGENT node needs an agent");
        if (node.AgentVersion is { } agentVersion)
        {
            if (node.Type != NodeType.Agent)
                throw Invalid(id, "only AGENT nodes may set agentVersion");
            if (agentVersion < 1)
                throw Invalid(id, "agentVersion must be 1 or more");
        }

        if (node.TimeoutMs is { } timeout && timeout <= 0)
            throw Invalid(id, "timeoutMs must be greater than 0 when set");

        if (node.Sla is { } sla)
        {
            if (node.Type != NodeType.Task)
                throw Invalid(id, "sla applies to TASK nodes only");
            if (sla.Priority is { } p && (p == SlaPriority.Unspecified || !Enum.IsDefined(p)))
                throw Invalid(id, "sla.priority must be LOW, NORMAL, HIGH or CRITICAL");
            if (sla.LatencyBudgetMs is { } budget && budget <= 0)
                throw Invalid(id, "sla.latencyBudgetMs must be greater than 0 when set");
            if (sla.OnDeadlineMiss is { } policy && (policy == DeadlineMissPolicy.Unspecified || !Enum.IsDefined(policy)))
                throw Invalid(id, "sla.onDeadlineMiss must be RUN_ANYWAY or FAIL");
        }

        if (node.Retry is { } retry)
            ValidateRetry(id, retry, "retry");

        var dependsOn = node.DependsOn ?? throw Invalid(id, "dependsOn cannot be null");
        for (int d = 0; d < dependsOn.Count; d++)
        {
            var dep = dependsOn[d];
            if (dep is null || !index.ContainsKey(dep))
                throw Invalid(id, $"dependsOn names '{dep}', which is not a node of this workflow");
            if (string.Equals(dep, id, StringComparison.Ordinal))
                throw Invalid(id, "a node cannot depend on itself");
            if (dependsOn.IndexOf(dep, 0, d) >= 0)
                throw Invalid(id, $"dependsOn names '{dep}' more than once");
        }

        var transitions = node.Transitions ?? throw Invalid(id, "transitions cannot be null");
        if (node.Type == NodeType.Decision && transitions.Count == 0)
            throw Invalid(id, "a DECISION node needs at least one transition");
        for (int t = 0; t < transitions.Count; t++)
            ValidateTransition(node, t, transitions[t], index);
    }

    private static void ValidateTransition(NodeDefinition node, int t, Transition? transition, Dictionary<string, int> index)
    {
        var id = node.Id;
        var where = $"transitions[{t.ToString(CultureInfo.InvariantCulture)}]";
        if (transition is null)
            throw Invalid(id, $"{where} is null");
        if (transition.On == TransitionOn.Unspecified || !Enum.IsDefined(transition.On))
            throw Invalid(id, $"{where} needs 'on' (SUCCESS, FAILURE, CONDITION or DEFAULT)");
        if (transition.To is null || !index.ContainsKey(transition.To))
            throw Invalid(id, $"{where} goes to '{transition.To}', which is not a node of this workflow");
        if (string.Equals(transition.To, id, StringComparison.Ordinal))
            throw Invalid(id, $"{where} goes to the node itself");
        if (node.Type == NodeType.Decision && transition.On is not (TransitionOn.Condition or TransitionOn.Default))
            throw Invalid(id, $"{where}: a DECISION node only has CONDITION and DEFAULT transitions");
        if (transition.On == TransitionOn.Failure && node.Type is not (NodeType.Task or NodeType.Agent or NodeType.Wait))
            throw Invalid(id, $"{where}: only TASK, AGENT and WAIT nodes can fail, so only they have FAILURE transitions");

        if (transition.On != TransitionOn.Condition)
        {
            if (transition.Condition is not null)
                throw Invalid(id, $"{where}: only CONDITION transitions have a condition");
            return;
        }
        var condition = transition.Condition ?? throw Invalid(id, $"{where}: a CONDITION transition needs a condition");
        if (!IsValidPath(condition.Path, index, out var pathProblem))
            throw Invalid(id, $"{where}: condition path '{condition.Path}' {pathProblem}");
        if (condition.Op == ConditionOperator.Unspecified || !Enum.IsDefined(condition.Op))
            throw Invalid(id, $"{where}: the condition needs an operator");
        if (condition.Op is ConditionOperator.Exists or ConditionOperator.NotExists)
            return;
        if (condition.Value is not { } value || value.ValueKind == JsonValueKind.Undefined)
            throw Invalid(id, $"{where}: operator {OperatorName(condition.Op)} needs a value");
        if (condition.Op == ConditionOperator.In && value.ValueKind != JsonValueKind.Array)
            throw Invalid(id, $"{where}: operator IN needs an array value");
    }

    // Cycles over dependsOn + transition edges, entry nodes, reachability. Runs after every reference was checked.
    private static void ValidateGraph(List<NodeDefinition> nodes, Dictionary<string, int> index)
    {
        int n = nodes.Count;
        var incoming = new List<int>[n];
        var outgoing = new List<int>[n];
        for (int i = 0; i < n; i++)
        {
            incoming[i] = [];
            outgoing[i] = [];
        }
        for (int to = 0; to < n; to++)
        {
            foreach (var dep in nodes[to].DependsOn)
                AddEdge(index[dep], to);
        }
        for (int from = 0; from < n; from++)
        {
            foreach (var transition in nodes[from].Transitions)
                AddEdge(from, index[transition.To]);
        }

        var entries = new List<int>();
        for (int i = 0; i < n; i++)
        {
            if (incoming[i].Count == 0)
                entries.Add(i);
        }
        if (entries.Count == 0)
            throw Invalid("", "no entry node: every node has an incoming edge");

        var reached = new bool[n];
        var stack = new Stack<int>(entries);
        foreach (int e in entries)
            reached[e] = true;
        while (stack.Count > 0)
        {
            foreach (int next in outgoing[stack.Pop()])
            {
                if (!reached[next])
                {
                    reached[next] = true;
                    stack.Push(next);
                }
            }
        }
        for (int i = 0; i < n; i++)
        {
            if (!reached[i])
                throw Invalid(nodes[i].Id, "the node is not reachable from an entry node");
        }

        // Kahn's algorithm: what it cannot order is on a cycle or downstream of one.
        var indegree = new int[n];
        var ready = new Queue<int>();
        for (int i = 0; i < n; i++)
        {
            indegree[i] = incoming[i].Count;
            if (indegree[i] == 0)
                ready.Enqueue(i);
        }
        int ordered = 0;
        while (ready.Count > 0)
        {
            ordered++;
            foreach (int next in outgoing[ready.Dequeue()])
            {
                if (--indegree[next] == 0)
                    ready.Enqueue(next);
            }
        }
        if (ordered == n)
            return;
        // Every unordered node has an unordered predecessor; walking predecessors n times from any of them must
        // end on a cycle, which is the node to name (not one merely downstream of the cycle).
        int at = Array.FindIndex(indegree, d => d > 0);
        for (int step = 0; step < n; step++)
            at = incoming[at].Find(p => indegree[p] > 0);
        throw Invalid(nodes[at].Id, "the node is on a cycle (dependsOn and transitions must form a DAG)");

        void AddEdge(int from, int to)
        {
            incoming[to].Add(from);
            outgoing[from].Add(to);
        }
    }

    private static void ValidateRetry(string nodeId, RetryPolicy retry, string field)
    {
        if (retry.MaxAttempts is < 1 or > MaxRetryAttempts)
            throw Invalid(nodeId, $"{field}.maxAttempts must be between 1 and {MaxRetryAttempts}");
        if (retry.InitialDelayMs < 0 || retry.MaxDelayMs < 0)
            throw Invalid(nodeId, $"{field} delays cannot be negative");
        if (retry.InitialDelayMs > retry.MaxDelayMs)
            throw Invalid(nodeId, $"{field}.initialDelayMs cannot exceed maxDelayMs");
        if (!(retry.Multiplier >= 1 && retry.Multiplier <= MaxMultiplier))
            throw Invalid(nodeId, $"{field}.multiplier must be between 1 and {MaxMultiplier}");
        if (!(retry.Jitter >= 0 && retry.Jitter <= 1))
            throw Invalid(nodeId, $"{field}.jitter must be between 0 and 1");
        var codes = retry.NonRetryableErrors ?? throw Invalid(nodeId, $"{field}.nonRetryableErrors cannot be null");
        foreach (var code in codes)
        {
            if (string.IsNullOrEmpty(code))
                throw Invalid(nodeId, $"{field}.nonRetryableErrors cannot hold an empty code");
        }
    }

    private static void ValidateInputs(List<InputDeclaration>? inputs)
    {
        if (inputs is null)
            throw Invalid("", "inputs cannot be null");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var input in inputs)
        {
            if (input is null || !IsValidFieldName(input.Name))
                throw Invalid("", $"input name '{input?.Name}' is not valid (1..64 of [A-Za-z0-9-_], starting with a letter, digit or '_')");
            if (!seen.Add(input.Name))
                throw Invalid("", $"input '{input.Name}' is declared more than once");
        }
    }

    private static void ValidateOutputs(Dictionary<string, OutputMapping>? outputs, Dictionary<string, int> index)
    {
        if (outputs is null)
            throw Invalid("", "outputs cannot be null");
        foreach (var (name, mapping) in outputs)
        {
            if (!IsValidFieldName(name))
                throw Invalid("", $"output name '{name}' is not valid (1..64 of [A-Za-z0-9-_], starting with a letter, digit or '_')");
            if (mapping is null)
                throw Invalid("", $"output '{name}' needs a path");
            if (!IsValidPath(mapping.Path, index, out var problem))
                throw Invalid("", $"output '{name}': path '{mapping.Path}' {problem}");
        }
    }

    // "$input[.field...]" or "<nodeId>[.field...]", no empty segments.
    private static bool IsValidPath(string? path, Dictionary<string, int> index, out string? problem)
    {
        problem = null;
        if (string.IsNullOrEmpty(path))
        {
            problem = "is empty";
            return false;
        }
        int dot = path.IndexOf('.', StringComparison.Ordinal);
        var root = dot < 0 ? path : path[..dot];
        if (root != ConditionEvaluator.InputRoot && !index.ContainsKey(root))
        {
            problem = $"must start with {ConditionEvaluator.InputRoot} or a node id ('{root}' is neither)";
            return false;
        }
        if (path.EndsWith('.') || path.Contains("..", StringComparison.Ordinal))
        {
            problem = "has an empty segment";
            return false;
        }
        return true;
    }

    // Input and output names are JSON field names, so camelCase is allowed (unlike ids).
    private static bool IsValidFieldName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxFieldNameLength)
            return false;
        if (!(char.IsAsciiLetterOrDigit(name[0]) || name[0] == '_'))
            return false;
        foreach (char c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c == '_' || c == '-'))
                return false;
        }
        return true;
    }

    private static string OperatorName(ConditionOperator op) => JsonSerializer.Serialize(op, Engine.ExecutionJsonContext.Default.ConditionOperator).Trim('"');

    private static Dictionary<string, string> Details(string nodeId, string reason) => new(StringComparer.Ordinal) { ["node"] = nodeId, ["reason"] = reason };

    // path: the JSON path of the offending field, when the check is about one field (the same shape as a parse error).
    private static WayangException Invalid(string nodeId, string reason, string? path = null)
    {
        var message = nodeId.Length == 0 ? $"workflow: {reason}" : $"node '{nodeId}': {reason}";
        var details = Details(nodeId, reason);
        if (path is not null)
            details["path"] = path;
        return new WayangException(new WayangError(ErrorCode.WorkflowInvalid, message, details: details));
    }
}
