using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Runs;

namespace Wayang.Fast.Execution.Engine;

// Cancel, suspend, resume, signal: every status change goes through RunStateMachine (RUN_STATE_CONFLICT when
// illegal); a missing run or another tenant's is RUN_NOT_FOUND.
public sealed partial class ExecutionEngine
{
    public ValueTask<RunSummary> CancelRunAsync(string tenantId, string runId, string? reason, CancellationToken cancellationToken = default) =>
        ChangeRunAsync(tenantId, runId, RunChange.Cancel, reason, null, cancellationToken);

    // Running tasks finish and their results are recorded; nothing new starts until resume.
    public ValueTask<RunSummary> SuspendRunAsync(string tenantId, string runId, CancellationToken cancellationToken = default) =>
        ChangeRunAsync(tenantId, runId, RunChange.Suspend, null, null, cancellationToken);

    public ValueTask<RunSummary> ResumeRunAsync(string tenantId, string runId, CancellationToken cancellationToken = default) =>
        ChangeRunAsync(tenantId, runId, RunChange.Resume, null, null, cancellationToken);

    // Releases the first armed WAIT node (in definition order) waiting for this signal, or keeps the signal for a
    // WAIT that arms later.
    public ValueTask<RunSummary> SignalRunAsync(string tenantId, string runId, string signal, JsonElement? payload, CancellationToken cancellationToken = default)
    {
        if (string.IsNullOrEmpty(signal))
            throw new WayangException(ErrorCode.InvalidArgument, "The signal name is empty.");
        return ChangeRunAsync(tenantId, runId, RunChange.Signal, signal, payload, cancellationToken);
    }

    private enum RunChange
    {
        Cancel,
        Suspend,
        Resume,
        Signal,
    }

    private async ValueTask<RunSummary> ChangeRunAsync(string tenantId, string runId, RunChange change, string? text, JsonElement? payload,
        CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        while (true)
        {
            if (!TryGetActive(runId, out var entry))
            {
                // Finished runs are only in the store; none of these changes applies to them.
                var stored = LoadRun(runId);
                if (stored is null || stored.TenantId != tenantId)
                    throw new WayangException(ErrorCode.RunNotFound, $"Run '{runId}' does not exist.");
                throw new WayangException(ErrorCode.RunStateConflict, $"Run '{runId}' is {RunStateMachine.Name(stored.Status)}.");
            }
            if (entry.State.TenantId != tenantId)
                throw new WayangException(ErrorCode.RunNotFound, $"Run '{runId}' does not exist.");
            Effects fx = default;
            Task write;
            RunSummary summary;
            lock (entry.Gate)
            {
                if (entry.Removed)
                    continue;
                long now = NowMs;
                switch (change)
                {
                    case RunChange.Cancel:
                        CancelLocked(entry, text, now, ref fx);
                        break;
                    case RunChange.Suspend:
                        RunStateMachine.Transition(entry.State, RunStatus.Suspended);
                        entry.State.AddEvent(RunEventType.RunSuspended, now);
                        break;
                    case RunChange.Resume:
                        ResumeLocked(entry, now, ref fx);
                        break;
                    case RunChange.Signal:
                        SignalLocked(entry, text!, payload?.Clone(), now, ref fx);
                        break;
                }
                write = PersistLocked(entry, now, ref fx);
                summary = Summary(entry.State);
            }
            AfterLock(entry, ref fx);
            await write.WaitAsync(cancellationToken).ConfigureAwait(false);
            AfterDurable(entry, ref fx);
            return summary;
        }
    }

    private void CancelLocked(RunEntry entry, string? reason, long now, ref Effects fx)
    {
        var state = entry.State;
        TransitionRunLocked(entry, RunStatus.Cancelled);
        state.FinishedAtMs = now;
        state.ErrorCode = ErrorRegistry.NameOf(ErrorCode.Cancelled);
        state.ErrorMessage = reason;
        CancelNodesLocked(entry, now, ref fx);
        state.AddEvent(RunEventType.RunCancelled, now, detail: reason);
        fx.ClearStarts();
        fx.RemoveRun = true;
        fx.Finished = true;
    }

    private void ResumeLocked(RunEntry entry, long now, ref Effects fx)
    {
        var state = entry.State;
        RunStateMachine.Transition(state, RunStatus.Running);
        state.AddEvent(RunEventType.RunResumed, now);
        var wf = entry.Workflow;
        // What became ready or came back from a lease while suspended.
        if (entry.Deferred is { } deferred)
        {
            entry.Deferred = null;
            foreach (var nodeId in deferred)
            {
                if (state.Nodes.TryGetValue(nodeId, out var node) && node.Status == NodeStatus.Queued)
                    StartLocked(entry, wf.Nodes[wf.IndexOf[nodeId]], node, now, ref fx);
            }
        }
        // Timers that fired while suspended did nothing: arm them again (a past due time fires at once).
        foreach (var node in state.Nodes.Values)
        {
            if (node.DueAtMs is not long due)
                continue;
            if (node.Status == NodeStatus.Retrying)
                _timers.Schedule(new TimerItem(TimerKind.Retry, state.RunId, node.NodeId, node.Attempt), due);
            else if (node.Status == NodeStatus.Queued && wf.Nodes[wf.IndexOf[node.NodeId]].Type == NodeType.Wait)
                _timers.Schedule(new TimerItem(TimerKind.Wait, state.RunId, node.NodeId, node.Attempt), due);
        }
        AdvanceLocked(entry, now, ref fx);
    }

    private void SignalLocked(RunEntry entry, string signal, JsonElement? payload, long now, ref Effects fx)
    {
        var state = entry.State;
        if (state.IsTerminal)
            throw new WayangException(ErrorCode.RunStateConflict, $"Run '{state.RunId}' is {RunStateMachine.Name(state.Status)}.");
        state.AddEvent(RunEventType.RunSignalled, now, detail: signal);
        var wf = entry.Workflow;
        foreach (var def in wf.Nodes)
        {
            if (def.Type != NodeType.Wait || def.Signal != signal)
                continue;
            if (state.Nodes.TryGetValue(def.Id, out var node) && node.Status == NodeStatus.Queued)
            {
                CompleteWaitLocked(state, node, payload, now);
                AdvanceLocked(entry, now, ref fx);
                return;
            }
        }
        state.PendingSignals.Add(new SignalRecord { Name = signal, Payload = payload, AtMs = now });
    }
}
