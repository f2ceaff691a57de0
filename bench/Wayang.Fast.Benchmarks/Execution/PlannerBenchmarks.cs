using BenchmarkDotNet.Attributes;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Planning;
using Wayang.Fast.Execution.Runs;

namespace Wayang.Fast.Benchmarks.Execution;

// The planner's cost per run step: what the engine pays on every submission (entry nodes become ready) and on every
// accepted result (transitions fire, dependents are decided, completion detected). Each invocation resets the run so
// the same step is measured every time (the reset is a few field writes per node).
[MemoryDiagnoser]
public class PlannerBenchmarks
{
    private CompiledWorkflow _one = null!;
    private RunState _oneRun = null!;
    private CompiledWorkflow _fan = null!;
    private RunState _fanRun = null!;

    // Nodes in the fan-out: a PARALLEL start, N tasks, a JOIN.
    [Params(16)]
    public int Width { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var one = new WorkflowDefinition { Id = "one", Version = 1, Nodes = [new NodeDefinition { Id = "work", Type = NodeType.Task, ExecutorType = "x" }] };
        _one = CompiledWorkflow.Compile("t", one);
        _oneRun = new RunState { RunId = "r1", TenantId = "t", WorkflowId = "one", Status = RunStatus.Running };
        Planner.Advance(_one, _oneRun, 0);

        var fan = new WorkflowDefinition { Id = "fan", Version = 1 };
        fan.Nodes.Add(new NodeDefinition { Id = "start", Type = NodeType.Parallel });
        var join = new NodeDefinition { Id = "join", Type = NodeType.Join };
        for (int i = 0; i < Width; i++)
        {
            var id = "t" + i;
            fan.Nodes.Add(new NodeDefinition { Id = id, Type = NodeType.Task, ExecutorType = "x", DependsOn = ["start"] });
            join.DependsOn.Add(id);
        }
        fan.Nodes.Add(join);
        _fan = CompiledWorkflow.Compile("t", fan);
        _fanRun = new RunState { RunId = "r2", TenantId = "t", WorkflowId = "fan", Status = RunStatus.Running };
        Planner.Advance(_fan, _fanRun, 0);
    }

    // Submission of a one-node workflow: the entry node becomes ready.
    [Benchmark]
    public int OneNodeSubmit()
    {
        var node = _oneRun.Nodes["work"];
        node.Status = NodeStatus.Pending;
        node.FiredTransitions = null;
        _oneRun.Events.Clear();
        return Planner.Advance(_one, _oneRun, 1).Ready.Count;
    }

    // The one node's result arrived: the run completes.
    [Benchmark]
    public RunOutcome OneNodeComplete()
    {
        var node = _oneRun.Nodes["work"];
        node.Status = NodeStatus.Completed;
        node.FiredTransitions = null;
        _oneRun.Events.Clear();
        return Planner.Advance(_one, _oneRun, 1).Outcome;
    }

    // One of Width parallel tasks completes while the others still run: the planner walks the graph and decides nothing.
    [Benchmark]
    public RunOutcome FanOutOneResult()
    {
        foreach (var node in _fanRun.Nodes.Values)
        {
            node.Status = node.NodeId == "start" ? NodeStatus.Completed : node.NodeId == "join" ? NodeStatus.Pending : NodeStatus.Executing;
            node.FiredTransitions = null;
        }
        _fanRun.Nodes["t0"].Status = NodeStatus.Completed;
        _fanRun.Events.Clear();
        return Planner.Advance(_fan, _fanRun, 1).Outcome;
    }
}
