using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Execution.Definitions;
using static Wayang.Fast.Execution.Tests.Workflows;

namespace Wayang.Fast.Execution.Tests;

public class WorkflowValidatorTests
{
    private static readonly ValidationContext Ctx = Context();

    // Asserts WORKFLOW_INVALID naming nodeId ("" for the workflow) in the details and the message.
    private static WayangError AssertInvalid(WorkflowDefinition def, string nodeId, string reasonFragment, ValidationContext? ctx = null)
    {
        var ex = Assert.Throws<WayangException>(() => WorkflowValidator.Validate(def, ctx ?? Ctx));
        Assert.Equal(ErrorCode.WorkflowInvalid, ex.Code);
        Assert.Equal(nodeId, ex.Error.Details["node"]);
        Assert.Contains(reasonFragment, ex.Error.Details["reason"], StringComparison.Ordinal);
        if (nodeId.Length > 0)
            Assert.StartsWith($"node '{nodeId}': ", ex.Error.Message, StringComparison.Ordinal);
        else
            Assert.StartsWith("workflow: ", ex.Error.Message, StringComparison.Ordinal);
        return ex.Error;
    }

    [Fact]
    public void Sample_workflows_are_valid()
    {
        foreach (var def in new[] { OneTask(), FanOutJoin(), DecisionFlow(), RetryingTask(), WaitTimerFlow(), WaitSignalFlow(), WaitSignalFlow(timeoutMs: 1000), AgentFlow(), Parse(OneTaskJson), Parse(DecisionJson) })
            WorkflowValidator.Validate(def, Ctx);
    }

    [Theory]
    [InlineData("")]
    [InlineData("Upper")]
    [InlineData("-dash")]
    [InlineData("has space")]
    [InlineData("a/b")]
    public void Workflow_id_must_be_a_valid_name(string id)
    {
        var def = OneTask();
        def.Id = id;
        AssertInvalid(def, "", "workflow id");
    }

    [Fact]
    public void Workflow_needs_at_least_one_node() => AssertInvalid(Define("empty"), "", "at least one node");

    [Fact]
    public void Node_count_is_limited()
    {
        var def = FanOutJoin();
        AssertInvalid(def, "", "exceed the limit of 3", Context(maxNodes: 3));
        WorkflowValidator.Validate(def, Context(maxNodes: 4));
    }

    [Fact]
    public void Null_node_is_invalid()
    {
        var def = OneTask();
        def.Nodes.Add(null!);
        AssertInvalid(def, "", "nodes[1] is null");
    }

    [Theory]
    [InlineData("")]
    [InlineData("Bad")]
    [InlineData("$input")]
    public void Node_ids_must_be_valid_names(string id)
    {
        var def = Define("w", TaskNode("ok"), TaskNode(id));
        AssertInvalid(def, id, "not a valid name");
    }

    [Fact]
    public void Node_ids_must_be_unique() => AssertInvalid(Define("w", TaskNode("a"), TaskNode("a")), "a", "more than one node");

    [Fact]
    public void Node_type_must_be_set() => AssertInvalid(Define("w", Node("x", NodeType.Unspecified)), "x", "type");

    [Fact]
    public void Undefined_node_type_is_invalid() => AssertInvalid(Define("w", Node("x", (NodeType)42)), "x", "type");

    [Fact]
    public void Task_needs_an_executor_type()
    {
        var node = TaskNode("t");
        node.ExecutorType = null;
        AssertInvalid(Define("w", node), "t", "executorType");
        node.ExecutorType = "Not Valid";
        AssertInvalid(Define("w", node), "t", "executorType");
    }

    [Fact]
    public void Task_executor_type_must_be_known_when_types_are_listed()
    {
        var def = OneTask();
        AssertInvalid(def, "start", "not a known executor type", Context(executorTypes: ["mailer"]));
        WorkflowValidator.Validate(def, Context(executorTypes: ["mailer", Worker]));
    }

    [Fact]
    public void Only_task_nodes_set_executor_type() =>
        AssertInvalid(Define("w", new NodeDefinition { Id = "w1", Type = NodeType.Wait, DurationMs = 5, ExecutorType = Worker }), "w1", "only TASK nodes may set executorType");

    [Fact]
    public void Only_task_nodes_set_labels()
    {
        var agent = AgentNode("a");
        agent.Labels = new() { ["gpu"] = "yes" };
        AssertInvalid(Define("w", agent), "a", "only TASK nodes may set labels");
        var task = TaskNode("t");
        task.Labels = new() { ["gpu"] = "yes" };
        WorkflowValidator.Validate(Define("w", task), Ctx);
    }

    [Fact]
    public void Decision_needs_a_transition() => AssertInvalid(Define("w", TaskNode("t").Then(OnSuccess("d")), Decision("d")), "d", "at least one transition");

    [Theory]
    [InlineData(TransitionOn.Success)]
    [InlineData(TransitionOn.Failure)]
    public void Decision_has_only_condition_and_default_transitions(TransitionOn on) =>
        AssertInvalid(Define("w", Decision("d", new Transition { On = on, To = "t" }), TaskNode("t")), "d", "only has CONDITION and DEFAULT");

    [Fact]
    public void Wait_needs_a_duration_or_a_signal() =>
        AssertInvalid(Define("w", new NodeDefinition { Id = "pause", Type = NodeType.Wait }), "pause", "durationMs, a signal, or both");

    [Theory]
    [InlineData(0L)]
    [InlineData(-5L)]
    public void Wait_duration_must_be_positive(long duration) => AssertInvalid(Define("w", WaitTimer("pause", duration)), "pause", "durationMs");

    [Fact]
    public void Wait_signal_must_be_a_valid_name() => AssertInvalid(Define("w", WaitSignal("pause", "Not OK")), "pause", "signal");

    [Fact]
    public void Agent_needs_an_agent() => AssertInvalid(Define("w", AgentNode("ask", "  ")), "ask", "needs an agent");

    [Fact]
    public void Agent_nodes_need_the_inference_plane()
    {
        var ex = Assert.Throws<WayangException>(() => WorkflowValidator.Validate(AgentFlow(), Context(inference: false)));
        Assert.Equal(ErrorCode.AgentUnavailable, ex.Code);
        Assert.Equal("ask", ex.Error.Details["node"]);
        Assert.Contains("'ask'", ex.Error.Message, StringComparison.Ordinal);
        WorkflowValidator.Validate(OneTask(), Context(inference: false));
    }

    [Fact]
    public void Structural_errors_win_over_agent_unavailable()
    {
        var def = AgentFlow();
        def.Nodes[1].DependsOn.Add("missing");
        AssertInvalid(def, "use", "missing", Context(inference: false));
    }

    [Fact]
    public void DependsOn_must_exist() => AssertInvalid(Define("w", TaskNode("a", "ghost")), "a", "'ghost'");

    [Fact]
    public void DependsOn_cannot_name_the_node_itself() => AssertInvalid(Define("w", TaskNode("s"), TaskNode("a", "s", "a")), "a", "depend on itself");

    [Fact]
    public void DependsOn_cannot_repeat() => AssertInvalid(Define("w", TaskNode("s"), TaskNode("a", "s", "s")), "a", "more than once");

    [Fact]
    public void Transition_target_must_exist() => AssertInvalid(Define("w", TaskNode("a").Then(OnSuccess("ghost"))), "a", "'ghost'");

    [Fact]
    public void Transition_cannot_target_the_node_itself() => AssertInvalid(Define("w", TaskNode("a").Then(OnSuccess("a"))), "a", "the node itself");

    [Fact]
    public void Transition_needs_on() =>
        AssertInvalid(Define("w", TaskNode("a").Then(new Transition { To = "b" }), TaskNode("b")), "a", "needs 'on'");

    [Fact]
    public void Condition_transition_needs_a_condition() =>
        AssertInvalid(Define("w", Decision("d", new Transition { On = TransitionOn.Condition, To = "b" }), TaskNode("b")), "d", "needs a condition");

    [Theory]
    [InlineData("")]
    [InlineData("ghost.x")]
    [InlineData("input.x")]
    [InlineData("$input..x")]
    [InlineData("start.")]
    public void Condition_path_must_start_at_input_or_a_node(string path) =>
        AssertInvalid(Define("w", TaskNode("start").Then(OnSuccess("d")), Decision("d", When(path, ConditionOperator.Exists, null, "b")), TaskNode("b")), "d", "condition path");

    [Theory]
    [InlineData("$input")]
    [InlineData("$input.a.0.b")]
    [InlineData("start")]
    [InlineData("start.result.items.3")]
    public void Valid_condition_paths_are_accepted(string path) =>
        WorkflowValidator.Validate(Define("w", TaskNode("start").Then(OnSuccess("d")), Decision("d", When(path, ConditionOperator.Exists, null, "b")), TaskNode("b")), Ctx);

    [Fact]
    public void Condition_needs_an_operator() =>
        AssertInvalid(Define("w", Decision("d", When("$input.x", ConditionOperator.Unspecified, "1", "b")), TaskNode("b")), "d", "operator");

    [Theory]
    [InlineData(ConditionOperator.Equal)]
    [InlineData(ConditionOperator.GreaterThan)]
    [InlineData(ConditionOperator.Contains)]
    [InlineData(ConditionOperator.In)]
    public void Condition_needs_a_value_unless_exists(ConditionOperator op) =>
        AssertInvalid(Define("w", Decision("d", When("$input.x", op, null, "b")), TaskNode("b")), "d", "needs a value");

    [Fact]
    public void Exists_and_not_exists_need_no_value()
    {
        WorkflowValidator.Validate(Define("w", Decision("d", When("$input.x", ConditionOperator.Exists, null, "b"), When("$input.x", ConditionOperator.NotExists, null, "c")), TaskNode("b"), TaskNode("c")), Ctx);
    }

    [Fact]
    public void In_needs_an_array() =>
        AssertInvalid(Define("w", Decision("d", When("$input.x", ConditionOperator.In, "\"a\"", "b")), TaskNode("b")), "d", "array");

    [Fact]
    public void Only_condition_transitions_have_a_condition()
    {
        var transition = When("$input.x", ConditionOperator.Exists, null, "b");
        transition.On = TransitionOn.Success;
        AssertInvalid(Define("w", TaskNode("a").Then(transition), TaskNode("b")), "a", "only CONDITION transitions have a condition");
    }

    [Theory]
    [InlineData(NodeType.Parallel)]
    [InlineData(NodeType.Join)]
    public void Failure_transitions_only_on_nodes_that_can_fail(NodeType type) =>
        AssertInvalid(Define("w", Node("x", type).Then(OnFailure("b")), TaskNode("b")), "x", "FAILURE");

    [Fact]
    public void Failure_transitions_are_allowed_on_task_agent_and_wait()
    {
        WorkflowValidator.Validate(Define("w", TaskNode("t").Then(OnFailure("h")), TaskNode("h")), Ctx);
        WorkflowValidator.Validate(Define("w", AgentNode("a").Then(OnFailure("h")), TaskNode("h")), Ctx);
        WorkflowValidator.Validate(Define("w", WaitTimer("p", 10).Then(OnFailure("h")), TaskNode("h")), Ctx);
    }

    [Fact]
    public void Cycle_is_rejected_naming_a_node_on_the_cycle()
    {
        // start -> a -> b -> c -> a, and c -> tail (downstream of the cycle, not on it).
        var def = Define("w",
            TaskNode("start").Then(OnSuccess("a")),
            TaskNode("a").Then(OnSuccess("b")),
            TaskNode("b", "a"),
            TaskNode("c", "b").Then(OnSuccess("a"), OnSuccess("tail")),
            TaskNode("tail"));
        var node = ErrorNode(def);
        Assert.Contains(node, new[] { "a", "b", "c" });
        AssertInvalid(def, node, "cycle");
    }

    // The validator picks which node of the cycle to name; any of them is right.
    private static string ErrorNode(WorkflowDefinition def)
    {
        var ex = Assert.Throws<WayangException>(() => WorkflowValidator.Validate(def, Ctx));
        return ex.Error.Details["node"];
    }

    [Fact]
    public void Dependency_cycle_is_rejected()
    {
        var def = Define("w", TaskNode("s"), TaskNode("a", "s", "b"), TaskNode("b", "a"));
        var node = ErrorNode(def);
        Assert.Contains(node, new[] { "a", "b" });
        AssertInvalid(def, node, "cycle");
    }

    [Fact]
    public void Workflow_needs_an_entry_node() =>
        AssertInvalid(Define("w", TaskNode("a", "b"), TaskNode("b", "a")), "", "no entry node");

    [Fact]
    public void Every_node_must_be_reachable_from_an_entry_node()
    {
        // b and c feed each other, so neither is an entry node and nothing reaches them.
        var def = Define("w", TaskNode("a"), TaskNode("b"), TaskNode("c", "b").Then(OnSuccess("b")));
        AssertInvalid(def, "b", "not reachable");
    }

    [Theory]
    [InlineData(0, 0L, 1L, 2.0, 0.0, "maxAttempts")]
    [InlineData(101, 0L, 1L, 2.0, 0.0, "maxAttempts")]
    [InlineData(3, -1L, 1L, 2.0, 0.0, "negative")]
    [InlineData(3, 0L, -1L, 2.0, 0.0, "negative")]
    [InlineData(3, 10L, 5L, 2.0, 0.0, "initialDelayMs cannot exceed")]
    [InlineData(3, 0L, 1L, 0.5, 0.0, "multiplier")]
    [InlineData(3, 0L, 1L, 101.0, 0.0, "multiplier")]
    [InlineData(3, 0L, 1L, double.NaN, 0.0, "multiplier")]
    [InlineData(3, 0L, 1L, 2.0, -0.1, "jitter")]
    [InlineData(3, 0L, 1L, 2.0, 1.5, "jitter")]
    public void Retry_policy_ranges_are_checked(int maxAttempts, long initial, long max, double multiplier, double jitter, string fragment)
    {
        var def = RetryingTask();
        def.Nodes[0].Retry = new RetryPolicy { MaxAttempts = maxAttempts, InitialDelayMs = initial, MaxDelayMs = max, Multiplier = multiplier, Jitter = jitter };
        AssertInvalid(def, "flaky", fragment);
    }

    [Fact]
    public void Retry_policy_limits_are_inclusive()
    {
        var def = RetryingTask();
        def.Nodes[0].Retry = new RetryPolicy { MaxAttempts = 100, InitialDelayMs = 0, MaxDelayMs = 0, Multiplier = 100, Jitter = 1 };
        WorkflowValidator.Validate(def, Ctx);
        def.Nodes[0].Retry = new RetryPolicy { MaxAttempts = 1, InitialDelayMs = 5, MaxDelayMs = 5, Multiplier = 1, Jitter = 0 };
        WorkflowValidator.Validate(def, Ctx);
    }

    [Fact]
    public void Default_retry_policy_is_checked_at_workflow_level()
    {
        var def = OneTask();
        def.DefaultRetry = new RetryPolicy { MaxAttempts = 0 };
        AssertInvalid(def, "", "defaultRetry.maxAttempts");
    }

    [Fact]
    public void A_node_sla_parses_by_name_and_round_trips()
    {
        var def = Parse("""
            { "id": "sla", "nodes": [ { "id": "start", "type": "TASK", "executorType": "worker",
              "sla": { "priority": "CRITICAL", "latencyBudgetMs": 250, "onDeadlineMiss": "FAIL" } } ] }
            """);
        WorkflowValidator.Validate(def, Ctx);
        var sla = def.Nodes[0].Sla!;
        Assert.Equal((SlaPriority.Critical, 250L, DeadlineMissPolicy.Fail), (sla.Priority, sla.LatencyBudgetMs, sla.OnDeadlineMiss));
        var json = JsonSerializer.Serialize(def, ExecutionJsonContext.Default.WorkflowDefinition);
        Assert.Contains("\"priority\":\"CRITICAL\"", json, StringComparison.Ordinal);
        Assert.Contains("\"onDeadlineMiss\":\"FAIL\"", json, StringComparison.Ordinal);
    }

    [Fact]
    public void A_node_sla_is_checked()
    {
        var budget = OneTask();
        budget.Nodes[0].Sla = new NodeSla { LatencyBudgetMs = 0 };
        AssertInvalid(budget, "start", "sla.latencyBudgetMs");

        var priority = OneTask();
        priority.Nodes[0].Sla = new NodeSla { Priority = SlaPriority.Unspecified };
        AssertInvalid(priority, "start", "sla.priority");

        var policy = OneTask();
        policy.Nodes[0].Sla = new NodeSla { OnDeadlineMiss = (DeadlineMissPolicy)9 };
        AssertInvalid(policy, "start", "sla.onDeadlineMiss");

        var wait = WaitTimerFlow();
        wait.Nodes.Single(n => n.Type == NodeType.Wait).Sla = new NodeSla { Priority = SlaPriority.High };
        AssertInvalid(wait, wait.Nodes.Single(n => n.Type == NodeType.Wait).Id, "TASK nodes only");
    }

    [Fact]
    public void An_unknown_sla_priority_name_is_refused()
    {
        Assert.ThrowsAny<Exception>(() => Parse("""
            { "id": "sla", "nodes": [ { "id": "start", "type": "TASK", "executorType": "worker", "sla": { "priority": "URGENT" } } ] }
            """));
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-1L)]
    public void Timeout_must_be_positive_when_set(long timeout)
    {
        var def = OneTask();
        def.Nodes[0].TimeoutMs = timeout;
        AssertInvalid(def, "start", "timeoutMs");
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("a.b")]
    [InlineData("$x")]
    public void Input_names_must_be_valid(string name)
    {
        var def = OneTask();
        def.Inputs.Add(new InputDeclaration { Name = name });
        AssertInvalid(def, "", "input name");
    }

    [Fact]
    public void Input_names_may_be_camel_case_json_fields()
    {
        var def = OneTask();
        def.Inputs.Add(new InputDeclaration { Name = "orderId" });
        def.Inputs.Add(new InputDeclaration { Name = "_meta" });
        WorkflowValidator.Validate(def, Ctx);
    }

    [Fact]
    public void Input_names_must_be_unique()
    {
        var def = OneTask();
        def.Inputs.Add(new InputDeclaration { Name = "x" });
        def.Inputs.Add(new InputDeclaration { Name = "x", Required = true });
        AssertInvalid(def, "", "more than once");
    }

    [Fact]
    public void Output_names_must_be_valid()
    {
        var def = OneTask();
        def.Outputs["bad name"] = new OutputMapping { Path = "start.x" };
        AssertInvalid(def, "", "output name");
    }

    [Theory]
    [InlineData("")]
    [InlineData("ghost.x")]
    [InlineData("start..x")]
    public void Output_paths_must_be_valid(string path)
    {
        var def = OneTask();
        def.Outputs["result"] = new OutputMapping { Path = path };
        AssertInvalid(def, "", "output 'result'");
    }

    [Fact]
    public void Null_collections_from_json_are_rejected_not_crashed_on()
    {
        var def = Parse("""{ "id": "w", "nodes": [ { "id": "a", "type": "TASK", "executorType": "worker", "dependsOn": null } ] }""");
        AssertInvalid(def, "a", "dependsOn cannot be null");
        AssertInvalid(Parse("""{ "id": "w", "nodes": null }"""), "", "at least one node");
    }

    [Fact]
    public void Config_may_be_any_json()
    {
        foreach (var config in new[] { "1", "\"s\"", "[1,{\"a\":null}]", "null", "{\"deep\":{\"x\":[true]}}" })
        {
            var def = Parse($$"""{ "id": "w", "nodes": [ { "id": "a", "type": "TASK", "executorType": "worker", "config": {{config}} } ] }""");
            WorkflowValidator.Validate(def, Ctx);
        }
    }

    [Fact]
    public void Every_node_violation_is_reported_and_the_first_is_named()
    {
        // Both nodes are wrong: the first in definition order is named in the details clients read, and both are listed.
        var def = Define("w", TaskNode("a", "ghost1"), TaskNode("b", "ghost2"));
        var error = AssertInvalid(def, "a", "ghost1");
        Assert.Equal("2", error.Details["violationCount"]);
        using var violations = JsonDocument.Parse(error.Details["violations"]);
        Assert.Equal(
            [("/nodes/0", true), ("/nodes/1", true)],
            violations.RootElement.EnumerateArray().Select(v => (v.GetProperty("pointer").GetString(), v.GetProperty("reason").GetString()!.Contains("ghost", StringComparison.Ordinal))));
        Assert.Contains("node 'b'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Graph_checks_wait_for_sound_nodes()
    {
        // A node problem and a cycle (c <-> d): only the node problem is reported (the graph checks rest on sound nodes).
        var def = Define("w", TaskNode("a", "ghost1"), TaskNode("c", "d"), TaskNode("d", "c"));
        var error = AssertInvalid(def, "a", "ghost1");
        Assert.False(error.Details.ContainsKey("violations"));
    }
}
