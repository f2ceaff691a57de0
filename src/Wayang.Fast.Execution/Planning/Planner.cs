using System.Text.Json;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Runs;

namespace Wayang.Fast.Execution.Planning;

public enum RunOutcome
{
    // Still running: something is queued, executing, retrying or waiting.
    InProgress,
    Completed,
    // A critical node failed and no FAILURE transition handles it.
    Failed,
    // Nothing is running or runnable, yet not every node has finished: a bug or an impossible graph state.
    Stuck,
}

public readonly record struct PlanResult(RunOutcome Outcome, List<string> Ready, string? FailedNodeId);

// Moves a run forward after any change: decides which transitions fired, which nodes became ready or must be
// skipped, completes control nodes (DECISION, PARALLEL, JOIN) on the spot, and says whether the run is finished.
// Pure with respect to the outside world: it only mutates the RunState it is given and returns what the engine
// must start (TASK to a queue, AGENT to the gateway, WAIT to a timer or a signal).
//
// The rule, per node N with incoming edges E:
// - A dependsOn edge P -> N is taken when P COMPLETED. Transition edges fire when their source finishes:
//   SUCCESS when it completed; FAILURE when it failed; of its CONDITION transitions only the first that holds
//   (a switch); DEFAULT when it completed and none of its CONDITION transitions held.
// - N is decided once every source of E is terminal. It runs when every dependsOn edge is taken and, if it has
//   incoming transition edges, at least one of them fired (dependsOn is AND, transitions are OR).
//   Otherwise it is SKIPPED, and a skipped node fires nothing, so a branch not taken is skipped to its end.
// - Nodes without incoming edges are entry nodes and run at once.
public static class Planner
{
    public static PlanResult Advance(CompiledWorkflow workflow, RunState run, long nowMs)
    {
        var ready = new List<string>();
        string? failed = null;
        bool active = false;
        bool allTerminal = true;

        foreach (int i in workflow.TopologicalOrder)
        {
            var def = workflow.Nodes[i];
            var node = GetOrAdd(run, def.Id);

            if (node.Status == NodeStatus.Pending)
            {
                var decision = Decide(workflow, run, i);
                if (decision == Decision.Wait)
                {
                    allTerminal = false;
                    continue;
                }
                if (decision == Decision.Skip)
                {
                    node.Status = NodeStatus.Skipped;
                    run.AddEvent(RunEventType.NodeSkipped, nowMs, def.Id);
                }
                else if (def.Type is NodeType.Decision or NodeType.Parallel or NodeType.Join)
                {
                    // Control nodes do their work right here: their effect is which transitions fire.
                    node.Status = NodeStatus.Completed;
                    node.Attempt = 1;
                    run.AddEvent(RunEventType.NodeCompleted, nowMs, def.Id, 1);
                }
                else
                {
                    node.Status = NodeStatus.Queued;
                    run.AddEvent(RunEventType.NodeQueued, nowMs, def.Id, node.Attempt + 1);
                    ready.Add(def.Id);
                }
            }

            if (node.IsTerminal)
            {
                node.FiredTransitions ??= Fire(def, node, run);
                if (node.Status == NodeStatus.Failed && def.Critical && !HandlesFailure(def))
                    failed ??= def.Id;
            }
            else
            {
                allTerminal = false;
                active |= node.Status is NodeStatus.Queued or NodeStatus.Executing or NodeStatus.Retrying;
            }
        }

        if (failed is not null)
            return new PlanResult(RunOutcome.Failed, ready, failed);
        if (allTerminal)
        {
            run.Output = BuildOutput(workflow.Definition, run);
            return new PlanResult(RunOutcome.Completed, ready, null);
        }
        return new PlanResult(active ? RunOutcome.InProgress : RunOutcome.Stuck, ready, null);
    }

    private enum Decision
    {
        Wait,
        Run,
        Skip,
    }

    private static Decision Decide(CompiledWorkflow workflow, RunState run, int index)
    {
        var edges = workflow.Incoming[index];
        bool allDependsTaken = true;
        bool hasTransitionEdge = false;
        bool anyTransitionFired = false;
        foreach (var edge in edges)
        {
            var source = run.Nodes[workflow.Nodes[edge.From].Id];
            if (!source.IsTerminal || source.FiredTransitions is null)
                return Decision.Wait;
            if (edge.IsDependsOn)
            {
                allDependsTaken &= source.Status == NodeStatus.Completed;
            }
            else
            {
                hasTransitionEdge = true;
                anyTransitionFired |= source.FiredTransitions.Contains(edge.TransitionIndex);
            }
        }
        return allDependsTaken && (!hasTransitionEdge || anyTransitionFired) ? Decision.Run : Decision.Skip;
    }

    private static List<int> Fire(NodeDefinition def, NodeState node, RunState run)
    {
        var fired = new List<int>();
        var transitions = def.Transitions;
        if (node.Status == NodeStatus.Completed)
        {
            bool conditionFired = false;
            for (int t = 0; t < transitions.Count; t++)
            {
                var tr = transitions[t];
                if (tr.On == TransitionOn.Success)
                {
                    fired.Add(t);
                }
                else if (tr.On == TransitionOn.Condition && !conditionFired && tr.Condition is not null && ConditionEvaluator.Evaluate(tr.Condition, run))
                {
                    conditionFired = true;
                    fired.Add(t);
                }
            }
            if (!conditionFired)
            {
                for (int t = 0; t < transitions.Count; t++)
                {
                    if (transitions[t].On == TransitionOn.Default)
                        fired.Add(t);
                }
            }
        }
        else if (node.Status == NodeStatus.Failed)
        {
            for (int t = 0; t < transitions.Count; t++)
            {
                if (transitions[t].On == TransitionOn.Failure)
                    fired.Add(t);
            }
        }
        return fired;
    }

    private static bool HandlesFailure(NodeDefinition def) => def.Transitions.Exists(t => t.On == TransitionOn.Failure);

    private static NodeState GetOrAdd(RunState run, string nodeId)
    {
        if (!run.Nodes.TryGetValue(nodeId, out var node))
        {
            node = new NodeState { NodeId = nodeId };
            run.Nodes[nodeId] = node;
        }
        return node;
    }

    // The run's outputs object: every declared output whose path resolves (missing ones are left out).
    private static JsonElement? BuildOutput(WorkflowDefinition definition, RunState run)
    {
        if (definition.Outputs.Count == 0)
            return null;
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (name, mapping) in definition.Outputs)
            {
                if (ConditionEvaluator.TryResolve(mapping.Path, run, out var value))
                {
                    writer.WritePropertyName(name);
                    value.WriteTo(writer);
                }
            }
            writer.WriteEndObject();
        }
        using var doc = JsonDocument.Parse(buffer.WrittenMemory);
        return doc.RootElement.Clone();
    }
}
