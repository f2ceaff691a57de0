using System.Text;
using System.Text.Json;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Planning;

namespace Wayang.Fast.Execution.Tests;

// Sample workflows and builders shared by the execution tests. Every call returns a fresh instance, so a test may
// mutate what it gets. Executor type "worker" throughout unless a test says otherwise.
internal static class Workflows
{
    public const string Worker = "worker";

    public static JsonElement Json(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.Clone();
    }

    public static WorkflowDefinition Parse(string json) => WorkflowRegistry.ParseDefinition(Encoding.UTF8.GetBytes(json));

    public static CompiledWorkflow Compile(WorkflowDefinition definition, string tenantId = "acme")
    {
        if (definition.Version == 0)
            definition.Version = 1;
        return CompiledWorkflow.Compile(tenantId, definition);
    }

    public static ValidationContext Context(bool inference = true, int maxNodes = 100, params string[] executorTypes) =>
        new(inference, executorTypes, maxNodes);

    public static WorkflowDefinition Define(string id, params NodeDefinition[] nodes) => new() { Id = id, Nodes = [.. nodes] };

    public static NodeDefinition TaskNode(string id, params string[] dependsOn) =>
        new() { Id = id, Type = NodeType.Task, ExecutorType = Worker, DependsOn = [.. dependsOn] };

    public static NodeDefinition Decision(string id, params Transition[] transitions) =>
        new() { Id = id, Type = NodeType.Decision, Transitions = [.. transitions] };

    public static NodeDefinition Node(string id, NodeType type, params string[] dependsOn) =>
        new() { Id = id, Type = type, DependsOn = [.. dependsOn] };

    public static NodeDefinition WaitTimer(string id, long durationMs, params string[] dependsOn) =>
        new() { Id = id, Type = NodeType.Wait, DurationMs = durationMs, DependsOn = [.. dependsOn] };

    public static NodeDefinition WaitSignal(string id, string signal, long? durationMs = null, params string[] dependsOn) =>
        new() { Id = id, Type = NodeType.Wait, Signal = signal, DurationMs = durationMs, DependsOn = [.. dependsOn] };

    public static NodeDefinition AgentNode(string id, string agent = "helper", params string[] dependsOn) =>
        new() { Id = id, Type = NodeType.Agent, Agent = agent, DependsOn = [.. dependsOn] };

    public static NodeDefinition Then(this NodeDefinition node, params Transition[] transitions)
    {
        node.Transitions.AddRange(transitions);
        return node;
    }

    public static Transition OnSuccess(string to) => new() { On = TransitionOn.Success, To = to };

    public static Transition OnFailure(string to) => new() { On = TransitionOn.Failure, To = to };

    public static Transition Default(string to) => new() { On = TransitionOn.Default, To = to };

    // valueJson: the condition's value as JSON text ("100", "\"gold\"", "[1,2]"); null for EXISTS / NOT_EXISTS.
    public static Transition When(string path, ConditionOperator op, string? valueJson, string to) => new()
    {
        On = TransitionOn.Condition,
        To = to,
        Condition = new Condition { Path = path, Op = op, Value = valueJson is null ? null : Json(valueJson) },
    };

    // start
    public static WorkflowDefinition OneTask(string id = "one-task") => Define(id, TaskNode("start"));

    // a -> (b, c) -> d: d depends on both (AND join).
    public static WorkflowDefinition FanOutJoin(string id = "fan-out") => Define(id,
        TaskNode("a"),
        TaskNode("b", "a"),
        TaskNode("c", "a"),
        TaskNode("d", "b", "c"));

    // check -> route: amount > 100 -> big, tier == "gold" -> gold, otherwise small; big/gold/small -> done (OR merge
    // over SUCCESS transitions: exactly one branch runs, so done runs once). Outputs read the chosen branch.
    public static WorkflowDefinition DecisionFlow(string id = "decide") => new()
    {
        Id = id,
        Inputs = [new InputDeclaration { Name = "amount", Required = true }, new InputDeclaration { Name = "tier" }],
        Nodes =
        [
            TaskNode("check").Then(OnSuccess("route")),
            Decision("route",
                When("$input.amount", ConditionOperator.GreaterThan, "100", "big"),
                When("$input.tier", ConditionOperator.Equal, "\"gold\"", "gold"),
                Default("small")),
            TaskNode("big").Then(OnSuccess("done")),
            TaskNode("gold").Then(OnSuccess("done")),
            TaskNode("small").Then(OnSuccess("done")),
            TaskNode("done"),
        ],
        Outputs = new() { ["result"] = new OutputMapping { Path = "done.result" }, ["amount"] = new OutputMapping { Path = "$input.amount" } },
    };

    // One TASK with 3 attempts, 100 ms doubling backoff capped at 1 s, no jitter (deterministic delays).
    public static WorkflowDefinition RetryingTask(string id = "retrying", int maxAttempts = 3)
    {
        var node = TaskNode("flaky");
        node.Retry = new RetryPolicy { MaxAttempts = maxAttempts, InitialDelayMs = 100, Multiplier = 2, MaxDelayMs = 1000, Jitter = 0, NonRetryableErrors = ["BAD_INPUT"] };
        node.TimeoutMs = 5000;
        return Define(id, node);
    }

    // start -> pause (timer) -> finish
    public static WorkflowDefinition WaitTimerFlow(string id = "timer", long durationMs = 1000) => Define(id,
        TaskNode("start"),
        WaitTimer("pause", durationMs, "start"),
        TaskNode("finish", "pause"));

    // start -> approval (signal, optionally bounded) -> finish; a timed-out wait fails and goes to "expired".
    public static WorkflowDefinition WaitSignalFlow(string id = "approval", string signal = "approved", long? timeoutMs = null)
    {
        var wait = WaitSignal("approval", signal, timeoutMs, "start");
        wait.Transitions.Add(OnSuccess("finish"));
        wait.Transitions.Add(OnFailure("expired"));
        return Define(id, TaskNode("start"), wait, TaskNode("finish"), TaskNode("expired"));
    }

    // ask (AGENT) -> use
    public static WorkflowDefinition AgentFlow(string id = "agentic") => Define(id,
        AgentNode("ask", "summarizer"),
        TaskNode("use", "ask"));

    public const string OneTaskJson = """
        { "id": "one-task", "nodes": [ { "id": "start", "type": "TASK", "executorType": "worker", "config": { "x": 1 } } ] }
        """;

    public const string DecisionJson = """
        {
          "id": "decide-json",
          "inputs": [ { "name": "amount", "required": true } ],
          "nodes": [
            { "id": "route", "type": "DECISION", "transitions": [
              { "on": "CONDITION", "to": "big", "condition": { "path": "$input.amount", "op": "GT", "value": 100 } },
              { "on": "DEFAULT", "to": "small" } ] },
            { "id": "big", "type": "TASK", "executorType": "worker" },
            { "id": "small", "type": "TASK", "executorType": "worker", "retry": { "maxAttempts": 3, "initialDelayMs": 10, "multiplier": 2, "maxDelayMs": 100, "jitter": 0 } }
          ],
          "outputs": { "amount": { "path": "$input.amount" } }
        }
        """;
}
