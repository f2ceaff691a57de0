using System.Text.Json;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Planning;
using Wayang.Fast.Execution.Runs;
using static Wayang.Fast.Execution.Tests.Workflows;

namespace Wayang.Fast.Execution.Tests;

public class PlannerTests
{
    private const long Now = 1_000;

    // Drives one run through the planner the way the engine does: start what is ready, report outcomes, advance.
    private sealed class Driver
    {
        private readonly List<string> _started = [];

        public Driver(WorkflowDefinition definition, string? inputJson = null)
        {
            WorkflowValidator.Validate(definition, Context());
            Workflow = Compile(definition);
            Run = new RunState { RunId = "run1", TenantId = "acme", WorkflowId = definition.Id, WorkflowVersion = 1, Status = RunStatus.Running, Input = inputJson is null ? null : Json(inputJson) };
        }

        public CompiledWorkflow Workflow { get; }
        public RunState Run { get; }
        public IReadOnlyList<string> Started => _started;

        public PlanResult Advance()
        {
            var result = Planner.Advance(Workflow, Run, Now);
            foreach (var id in result.Ready)
            {
                // Ready nodes are queued once: the planner never hands out the same node twice.
                Assert.Equal(NodeStatus.Queued, Run.Nodes[id].Status);
                Assert.DoesNotContain(id, _started);
                _started.Add(id);
                Run.Nodes[id].Attempt = 1;
            }
            return result;
        }

        public PlanResult Complete(string nodeId, string? outputJson = null)
        {
            var node = Run.Nodes[nodeId];
            Assert.Equal(NodeStatus.Queued, node.Status);
            node.Status = NodeStatus.Completed;
            node.Output = outputJson is null ? null : Json(outputJson);
            return Advance();
        }

        public PlanResult Fail(string nodeId)
        {
            var node = Run.Nodes[nodeId];
            Assert.Equal(NodeStatus.Queued, node.Status);
            node.Status = NodeStatus.Failed;
            node.ErrorCode = "BOOM";
            return Advance();
        }

        public NodeStatus Status(string nodeId) => Run.Nodes[nodeId].Status;
    }

    private static void AssertReady(PlanResult result, params string[] expected) => Assert.Equal(expected.Order(), result.Ready.Order());

    [Fact]
    public void Entry_nodes_are_ready_at_once_and_the_rest_wait()
    {
        var d = new Driver(Define("w", TaskNode("x"), TaskNode("y"), TaskNode("z", "x", "y")));
        var result = d.Advance();
        Assert.Equal(RunOutcome.InProgress, result.Outcome);
        AssertReady(result, "x", "y");
        Assert.Equal(NodeStatus.Pending, d.Status("z"));
        Assert.Equal(2, d.Run.Events.Count(e => e.Type == RunEventType.NodeQueued));
        // Advancing again with nothing new changes nothing.
        AssertReady(d.Advance());
    }

    [Fact]
    public void Fan_out_runs_in_parallel_and_the_join_waits_for_all()
    {
        var d = new Driver(FanOutJoin());
        AssertReady(d.Advance(), "a");
        AssertReady(d.Complete("a"), "b", "c");
        var afterB = d.Complete("b");
        AssertReady(afterB);
        Assert.Equal(RunOutcome.InProgress, afterB.Outcome);
        Assert.Equal(NodeStatus.Pending, d.Status("d"));
        AssertReady(d.Complete("c"), "d");
        var done = d.Complete("d");
        Assert.Equal(RunOutcome.Completed, done.Outcome);
        Assert.Null(d.Run.Output);
    }

    [Theory]
    [InlineData("""{ "amount": 150, "tier": "gold" }""", "big")]
    [InlineData("""{ "amount": 50, "tier": "gold" }""", "gold")]
    [InlineData("""{ "amount": 50, "tier": "silver" }""", "small")]
    [InlineData("""{ "tier": "silver" }""", "small")]
    public void Decision_takes_the_first_matching_branch_or_default(string input, string branch)
    {
        var d = new Driver(DecisionFlow(), input);
        AssertReady(d.Advance(), "check");
        var afterCheck = d.Complete("check");
        // The DECISION completes on the spot; only the chosen branch runs, the others are skipped.
        Assert.Equal(NodeStatus.Completed, d.Status("route"));
        AssertReady(afterCheck, branch);
        foreach (var other in new[] { "big", "gold", "small" }.Where(b => b != branch))
            Assert.Equal(NodeStatus.Skipped, d.Status(other));
        Assert.Equal(NodeStatus.Pending, d.Status("done"));

        // OR merge: done has three incoming SUCCESS edges, exactly one fires, and done runs once.
        AssertReady(d.Complete(branch), "done");
        var end = d.Complete("done", $$"""{ "result": "{{branch}}" }""");
        Assert.Equal(RunOutcome.Completed, end.Outcome);
        Assert.Equal(1, d.Started.Count(s => s == "done"));
        Assert.Equal(1, d.Run.Events.Count(e => e.Type == RunEventType.NodeQueued && e.NodeId == "done"));

        // Outputs come from their paths; one that does not resolve is left out.
        var output = d.Run.Output!.Value;
        Assert.Equal(branch, output.GetProperty("result").GetString());
        Assert.Equal(input.Contains("amount", StringComparison.Ordinal), output.TryGetProperty("amount", out _));
    }

    [Fact]
    public void Decision_conditions_can_read_a_completed_nodes_output()
    {
        var def = Define("w",
            TaskNode("score").Then(OnSuccess("route")),
            Decision("route", When("score.value", ConditionOperator.GreaterOrEqual, "0.5", "pass"), Default("fail")),
            TaskNode("pass"),
            TaskNode("fail"));
        var d = new Driver(def);
        d.Advance();
        AssertReady(d.Complete("score", """{ "value": 0.9 }"""), "pass");
        Assert.Equal(NodeStatus.Skipped, d.Status("fail"));
    }

    [Fact]
    public void A_branch_not_taken_is_skipped_to_its_end()
    {
        var def = Define("w",
            Decision("route", When("$input.go", ConditionOperator.Equal, "true", "a1"), Default("b")),
            TaskNode("a1").Then(OnSuccess("a2")),
            TaskNode("a2"),
            TaskNode("a3", "a2"),
            TaskNode("b"));
        var d = new Driver(def, """{ "go": false }""");
        var result = d.Advance();
        AssertReady(result, "b");
        foreach (var id in new[] { "a1", "a2", "a3" })
            Assert.Equal(NodeStatus.Skipped, d.Status(id));
        Assert.Equal(3, d.Run.Events.Count(e => e.Type == RunEventType.NodeSkipped));
        Assert.Equal(RunOutcome.Completed, d.Complete("b").Outcome);
    }

    [Fact]
    public void Decision_with_no_match_and_no_default_skips_every_branch_and_completes()
    {
        var def = Define("w",
            Decision("route", When("$input.x", ConditionOperator.Exists, null, "a"), When("$input.y", ConditionOperator.Exists, null, "b")),
            TaskNode("a"),
            TaskNode("b"));
        var d = new Driver(def, "{}");
        var result = d.Advance();
        Assert.Equal(RunOutcome.Completed, result.Outcome);
        Assert.Empty(result.Ready);
        Assert.Empty(d.Run.Nodes["route"].FiredTransitions!);
    }

    [Fact]
    public void Fired_transitions_are_recorded_once_so_later_data_changes_do_not_re_route()
    {
        var d = new Driver(DecisionFlow(), """{ "amount": 500 }""");
        d.Advance();
        d.Complete("check");
        Assert.Equal([0], d.Run.Nodes["route"].FiredTransitions!);
        d.Run.Input = Json("""{ "amount": 1 }""");
        AssertReady(d.Advance());
        Assert.Equal([0], d.Run.Nodes["route"].FiredTransitions!);
        Assert.Equal(NodeStatus.Queued, d.Status("big"));
    }

    [Fact]
    public void A_failure_transition_handles_the_failure()
    {
        var def = Define("w",
            TaskNode("charge").Then(OnSuccess("ship"), OnFailure("refund")),
            TaskNode("ship"),
            TaskNode("refund"));
        var d = new Driver(def);
        d.Advance();
        var afterFail = d.Fail("charge");
        Assert.Equal(RunOutcome.InProgress, afterFail.Outcome);
        Assert.Null(afterFail.FailedNodeId);
        AssertReady(afterFail, "refund");
        Assert.Equal(NodeStatus.Skipped, d.Status("ship"));
        Assert.Equal(RunOutcome.Completed, d.Complete("refund").Outcome);
    }

    [Fact]
    public void Success_transition_does_not_fire_the_failure_branch()
    {
        var def = Define("w", TaskNode("charge").Then(OnSuccess("ship"), OnFailure("refund")), TaskNode("ship"), TaskNode("refund"));
        var d = new Driver(def);
        d.Advance();
        AssertReady(d.Complete("charge"), "ship");
        Assert.Equal(NodeStatus.Skipped, d.Status("refund"));
    }

    [Fact]
    public void A_critical_failure_fails_the_run()
    {
        var d = new Driver(FanOutJoin());
        d.Advance();
        d.Complete("a");
        var result = d.Fail("b");
        Assert.Equal(RunOutcome.Failed, result.Outcome);
        Assert.Equal("b", result.FailedNodeId);
    }

    [Fact]
    public void A_non_critical_failure_skips_dependents_and_the_run_completes()
    {
        var def = FanOutJoin();
        def.Nodes.Single(n => n.Id == "b").Critical = false;
        def.Nodes.Add(TaskNode("e", "c"));
        var d = new Driver(def);
        d.Advance();
        d.Complete("a");
        var afterFail = d.Fail("b");
        Assert.Equal(RunOutcome.InProgress, afterFail.Outcome);
        Assert.Null(afterFail.FailedNodeId);
        // d is decided once all its sources are terminal: then the failed dependency skips it.
        Assert.Equal(NodeStatus.Pending, d.Status("d"));
        AssertReady(d.Complete("c"), "e");
        Assert.Equal(NodeStatus.Skipped, d.Status("d"));
        Assert.Equal(RunOutcome.Completed, d.Complete("e").Outcome);
        Assert.Equal(NodeStatus.Failed, d.Status("b"));
    }

    [Fact]
    public void Parallel_and_join_control_nodes_complete_on_the_spot()
    {
        var def = Define("w",
            Node("split", NodeType.Parallel).Then(OnSuccess("x"), OnSuccess("y")),
            TaskNode("x"),
            TaskNode("y"),
            Node("merge", NodeType.Join, "x", "y"),
            TaskNode("after", "merge"));
        var d = new Driver(def);
        AssertReady(d.Advance(), "x", "y");
        Assert.Equal(NodeStatus.Completed, d.Status("split"));
        d.Complete("x");
        AssertReady(d.Complete("y"), "after");
        Assert.Equal(NodeStatus.Completed, d.Status("merge"));
    }

    [Fact]
    public void Wait_and_agent_nodes_are_handed_to_the_engine_like_tasks()
    {
        var d = new Driver(Define("w", WaitTimer("pause", 100), AgentNode("ask"), WaitSignal("approval", "ok")));
        AssertReady(d.Advance(), "pause", "ask", "approval");
    }

    [Fact]
    public void Retrying_and_executing_nodes_keep_the_run_in_progress()
    {
        var d = new Driver(RetryingTask());
        AssertReady(d.Advance(), "flaky");
        d.Run.Nodes["flaky"].Status = NodeStatus.Retrying;
        Assert.Equal(RunOutcome.InProgress, d.Advance().Outcome);
        d.Run.Nodes["flaky"].Status = NodeStatus.Executing;
        Assert.Equal(RunOutcome.InProgress, d.Advance().Outcome);
    }

    [Fact]
    public void Stuck_is_reported_when_nothing_is_active_but_nodes_remain()
    {
        var d = new Driver(FanOutJoin());
        d.Advance();
        // A state no engine path should produce: a's status lost, so nothing is running yet b, c, d never decide.
        d.Run.Nodes["a"].Status = NodeStatus.Unspecified;
        var result = d.Advance();
        Assert.Equal(RunOutcome.Stuck, result.Outcome);
        Assert.Empty(result.Ready);
    }

    [Fact]
    public void Run_output_is_built_from_node_and_input_paths()
    {
        var def = Define("w", TaskNode("calc"));
        def.Outputs["total"] = new OutputMapping { Path = "calc.sum" };
        def.Outputs["first"] = new OutputMapping { Path = "calc.items.0.name" };
        def.Outputs["who"] = new OutputMapping { Path = "$input.user" };
        def.Outputs["whole"] = new OutputMapping { Path = "calc" };
        def.Outputs["missing"] = new OutputMapping { Path = "calc.nope" };
        var d = new Driver(def, """{ "user": "ana" }""");
        d.Advance();
        var result = d.Complete("calc", """{ "sum": 42, "items": [ { "name": "pen" } ] }""");
        Assert.Equal(RunOutcome.Completed, result.Outcome);
        var output = d.Run.Output!.Value;
        Assert.Equal(42, output.GetProperty("total").GetInt32());
        Assert.Equal("pen", output.GetProperty("first").GetString());
        Assert.Equal("ana", output.GetProperty("who").GetString());
        Assert.Equal(JsonValueKind.Object, output.GetProperty("whole").ValueKind);
        Assert.False(output.TryGetProperty("missing", out _));
    }
}
