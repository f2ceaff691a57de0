using System.Text;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Dispatch;
using Wayang.Fast.Execution.Runs;

namespace Wayang.Fast.Execution.Engine;

// Open after a restart (or a crash): every unfinished run comes back into memory. Leases were never durable, so a
// task that was queued or leased at the crash is queued again as the same attempt (its TaskId is unchanged, and a
// result for it is still accepted once); RETRYING and WAIT timers are re-armed from their durable DueAtMs; AGENT calls
// in flight are made again (same attempt). Suspended runs are loaded but start nothing until resumed.
public sealed partial class ExecutionEngine
{
    private async ValueTask<int> RecoverRunsAsync(CancellationToken cancellationToken)
    {
        var requeue = new List<(long Order, QueuedTask Task)>();
        var writes = new List<Task>();
        var follow = new List<(RunEntry Entry, Effects Effects)>();
        long now = NowMs;
        foreach (var (key, value) in _store.ScanPrefix(Encoding.UTF8.GetBytes(RunKeyPrefix)))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var state = Deserialize(value);
            if (state is null || state.IsTerminal)
                continue;
            var workflow = _registry.Get(state.TenantId, state.WorkflowId, state.WorkflowVersion);
            if (workflow is null)
            {
                EngineLog.WorkflowMissing(_logger, state.RunId, state.WorkflowId, state.WorkflowVersion);
                continue;
            }
            var entry = new RunEntry(state, workflow, InfoOf(workflow));
            _runs[state.RunId] = entry;
            // The per-version count of unfinished runs is rebuilt here (it is never stored); pinned versions may be
            // ARCHIVED by now and still run.
            Interlocked.Increment(ref entry.Info.ActiveRuns);
            Effects fx = default;
            lock (entry.Gate)
            {
                bool running = state.Status == RunStatus.Running;
                foreach (var node in state.Nodes.Values)
                {
                    if (!workflow.IndexOf.TryGetValue(node.NodeId, out int index))
                        continue;
                    var def = workflow.Nodes[index];
                    switch (node.Status)
                    {
                        case NodeStatus.Queued or NodeStatus.Executing when def.Type is NodeType.Task or NodeType.Agent:
                            node.Status = NodeStatus.Queued;
                            node.ExecutorId = null;
                            if (!running)
                                Defer(entry, node.NodeId);
                            else if (def.Type == NodeType.Task)
                            {
                                long queuedAt = QueueOrder(state, node);
                                requeue.Add((queuedAt, MakeTask(entry, def, node, now, readyAtMs: queuedAt)));
                            }
                            else
                                (fx.Agents ??= []).Add((node.NodeId, node.Attempt));
                            break;
                        case NodeStatus.Retrying when node.DueAtMs is long due && running:
                            _timers.Schedule(new TimerItem(TimerKind.Retry, state.RunId, node.NodeId, node.Attempt), due);
                            break;
                        case NodeStatus.Queued when def.Type == NodeType.Wait && node.DueAtMs is long due && running:
                            _timers.Schedule(new TimerItem(TimerKind.Wait, state.RunId, node.NodeId, node.Attempt), due);
                            break;
                    }
                }
                if (running)
                {
                    long seq = state.NextEventSeq;
                    AdvanceLocked(entry, now, ref fx);
                    if (state.NextEventSeq != seq)
                        writes.Add(WriteRunLocked(entry, now));
                }
            }
            follow.Add((entry, fx));
        }
        await Task.WhenAll(writes).ConfigureAwait(false);

        // Oldest first, as they were queued before the restart.
        // Stable: tasks queued in the same millisecond keep the store's order.
        foreach (var (_, task) in requeue.OrderBy(static r => r.Order))
            _dispatcher.Enqueue(task);
        for (int i = 0; i < follow.Count; i++)
        {
            var (entry, fx) = follow[i];
            AfterLock(entry, ref fx);
            AfterDurable(entry, ref fx);
        }
        return requeue.Count;
    }

    // When the node's current attempt was queued (its latest NodeQueued event), else when it started.
    private static long QueueOrder(RunState state, NodeState node)
    {
        var events = state.Events;
        for (int i = events.Count - 1; i >= 0; i--)
        {
            var e = events[i];
            if (e.Type == RunEventType.NodeQueued && e.NodeId == node.NodeId)
                return e.AtMs;
        }
        return node.AttemptStartedAtMs ?? state.UpdatedAtMs;
    }
}
