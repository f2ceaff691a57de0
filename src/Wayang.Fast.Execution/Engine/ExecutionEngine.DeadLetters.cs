using System.Text;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.DeadLetters;
using Wayang.Fast.Execution.Runs;

namespace Wayang.Fast.Execution.Engine;

public sealed partial class ExecutionEngine
{
    public IReadOnlyList<DeadLetter> ListDeadLetters(string tenantId, DeadLetterFilter filter)
    {
        ThrowIfDisposed();
        return _deadLetters.List(tenantId, filter ?? new DeadLetterFilter());
    }

    public DeadLetter? GetDeadLetter(string tenantId, string deadLetterId)
    {
        ThrowIfDisposed();
        return _deadLetters.Get(tenantId, deadLetterId);
    }

    // ids or (ids empty) the filter; paced at ratePerSecond (0: the option's default). Each entry either replays
    // (new attempt, recorded in the run, entry removed) or reports why not.
    public async ValueTask<IReadOnlyList<ReplayOutcome>> ReplayDeadLettersAsync(string tenantId, IReadOnlyList<string> ids, DeadLetterFilter? filter,
        int ratePerSecond, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        int rate = ratePerSecond > 0 ? ratePerSecond : Math.Max(1, _options.DeadLetterReplayRatePerSecond);
        var outcomes = new List<ReplayOutcome>();
        var targets = new List<(string Id, DeadLetter? Entry)>();
        if (ids is { Count: > 0 })
        {
            foreach (var id in ids)
                targets.Add((id, _deadLetters.Get(tenantId, id)));
        }
        else
        {
            foreach (var dl in _deadLetters.List(tenantId, filter ?? new DeadLetterFilter()))
                targets.Add((dl.Id, dl));
        }

        long startMs = NowMs;
        int replayed = 0;
        foreach (var (id, dl) in targets)
        {
            if (dl is null)
            {
                outcomes.Add(new ReplayOutcome(id, "", false, new WayangError(ErrorCode.DeadLetterNotFound, $"Dead letter '{id}' does not exist.")));
                continue;
            }
            // Entry n starts no earlier than n / rate seconds after the first.
            long dueMs = startMs + (long)replayed * 1000 / rate;
            long waitMs = dueMs - NowMs;
            if (waitMs > 0)
                await Task.Delay(TimeSpan.FromMilliseconds(waitMs), _time, cancellationToken).ConfigureAwait(false);
            replayed++;
            outcomes.Add(await ReplayOneAsync(dl).ConfigureAwait(false));
        }
        return outcomes;
    }

    private async ValueTask<ReplayOutcome> ReplayOneAsync(DeadLetter dl)
    {
        while (true)
        {
            var entry = Activate(dl.TenantId, dl.RunId);
            if (entry is null)
                return new ReplayOutcome(dl.Id, dl.RunId, false, new WayangError(ErrorCode.RunNotFound, $"Run '{dl.RunId}' does not exist."));
            Effects fx = default;
            Task write;
            lock (entry.Gate)
            {
                if (entry.Removed)
                    continue;
                var state = entry.State;
                if (state.Status is RunStatus.Completed or RunStatus.Cancelled)
                {
                    return new ReplayOutcome(dl.Id, dl.RunId, false,
                        new WayangError(ErrorCode.RunStateConflict, $"Run '{dl.RunId}' is {RunStateMachine.Name(state.Status)}; its dead letters cannot be replayed."));
                }
                if (!state.Nodes.TryGetValue(dl.NodeId, out var node) || node.Status != NodeStatus.Failed)
                {
                    return new ReplayOutcome(dl.Id, dl.RunId, false,
                        new WayangError(ErrorCode.RunStateConflict, $"Node '{dl.NodeId}' of run '{dl.RunId}' is not FAILED."));
                }
                long now = NowMs;
                if (state.Status == RunStatus.Failed)
                {
                    TransitionRunLocked(entry, RunStatus.Running);
                    state.FinishedAtMs = null;
                }
                state.ErrorCode = null;
                state.ErrorMessage = null;
                // The node runs again as attempt + 1 (the planner queues it fresh); what its failure skipped or the
                // run's failure cancelled is decided again.
                node.Status = NodeStatus.Pending;
                node.FiredTransitions = null;
                node.DueAtMs = null;
                foreach (var other in state.Nodes.Values)
                {
                    if (other.Status is NodeStatus.Skipped or NodeStatus.Cancelled)
                    {
                        other.Status = NodeStatus.Pending;
                        other.FiredTransitions = null;
                        other.DueAtMs = null;
                    }
                }
                state.AddEvent(RunEventType.NodeReplayed, now, dl.NodeId, node.Attempt, dl.Id);
                AdvanceLocked(entry, now, ref fx);
                // The run first, then the entry's removal: a crash between them leaves an entry whose node is no longer
                // FAILED, which a later replay reports and a discard removes.
                write = WriteRunLocked(entry, now);
                var delete = Issue(_store.DeleteAsync(DeadLetterKey(dl.TenantId, dl.Id)));
                if (!delete.IsCompletedSuccessfully)
                {
                    write = Task.WhenAll(write, delete);
                    entry.PendingWrite = write;
                }
            }
            AfterLock(entry, ref fx);
            await write.ConfigureAwait(false);
            _deadLetters.Remove(dl.TenantId, dl.Id);
            AfterDurable(entry, ref fx);
            return new ReplayOutcome(dl.Id, dl.RunId, true, null);
        }
    }

    // The run's active entry, loading a finished run back into the active map (replay reopens it).
    private RunEntry? Activate(string tenantId, string runId)
    {
        if (TryGetActive(runId, out var active))
            return active.State.TenantId == tenantId ? active : null;
        var state = LoadRun(runId);
        if (state is null || state.TenantId != tenantId)
            return null;
        var workflow = _registry.Get(state.TenantId, state.WorkflowId, state.WorkflowVersion);
        if (workflow is null)
        {
            EngineLog.WorkflowMissing(_logger, state.RunId, state.WorkflowId, state.WorkflowVersion);
            return null;
        }
        var mine = new RunEntry(state, workflow, InfoOf(workflow));
        var entry = _runs.GetOrAdd(runId, mine);
        // Normally a finished run (counted when a replay reopens it); an unfinished one counts from here.
        if (ReferenceEquals(entry, mine) && !state.IsTerminal)
            Interlocked.Increment(ref mine.Info.ActiveRuns);
        return entry;
    }

    public async ValueTask<int> DiscardDeadLettersAsync(string tenantId, IReadOnlyList<string> ids, DeadLetterFilter? filter, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        var targets = new List<DeadLetter>();
        if (ids is { Count: > 0 })
        {
            foreach (var id in ids)
            {
                if (_deadLetters.Get(tenantId, id) is { } dl)
                    targets.Add(dl);
            }
        }
        else
        {
            targets.AddRange(_deadLetters.List(tenantId, filter ?? new DeadLetterFilter()));
        }
        var deletes = new List<Task>(targets.Count);
        foreach (var dl in targets)
            deletes.Add(Issue(_store.DeleteAsync(DeadLetterKey(dl.TenantId, dl.Id), cancellationToken)));
        await Task.WhenAll(deletes).ConfigureAwait(false);
        int count = 0;
        foreach (var dl in targets)
        {
            if (_deadLetters.Remove(dl.TenantId, dl.Id))
                count++;
        }
        return count;
    }

    private void LoadDeadLetters()
    {
        foreach (var (key, value) in _store.ScanPrefix(Encoding.UTF8.GetBytes(DeadLetterKeyPrefix)))
        {
            try
            {
                if (JsonSerializer.Deserialize(value, ExecutionJsonContext.Default.DeadLetter) is { } dl)
                    _deadLetters.Add(dl);
            }
            catch (JsonException ex)
            {
                EngineLog.BadRecord(_logger, Encoding.UTF8.GetString(key), ex);
            }
        }
    }
}
