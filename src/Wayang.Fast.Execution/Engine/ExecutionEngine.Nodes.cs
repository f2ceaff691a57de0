using System.Globalization;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Agents;
using Wayang.Fast.Execution.DeadLetters;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Dispatch;
using Wayang.Fast.Execution.Planning;
using Wayang.Fast.Execution.Retries;
using Wayang.Fast.Execution.Runs;
using Wayang.Fast.Execution.Tokens;

namespace Wayang.Fast.Execution.Engine;

// Node execution: planning, starting nodes, the dispatcher's assignment hook, results, timers, leases, AGENT calls.
public sealed partial class ExecutionEngine
{
    // The message of the failure the engine records when an attempt's deadline passes. A late result for such an
    // attempt is ATTEMPT_SUPERSEDED, not a duplicate: no result of the executor's was ever accepted for it.
    internal const string AttemptTimedOutMessage = "The attempt exceeded its timeout.";
    private static readonly string TaskTimeoutName = ErrorRegistry.NameOf(ErrorCode.TaskTimeout);
    private static readonly string DeadlineExceededName = ErrorRegistry.NameOf(ErrorCode.DeadlineExceeded);
    private static readonly string TaskFailedName = ErrorRegistry.NameOf(ErrorCode.TaskFailed);
    private static readonly string RunStuckName = ErrorRegistry.NameOf(ErrorCode.RunStuck);

    internal static string TaskIdOf(string runId, string nodeId, int attempt) =>
        string.Concat(runId, ":", nodeId, ":", attempt.ToString(CultureInfo.InvariantCulture));

    // ---- planning and starting ----

    // Moves the run forward and prepares what became ready. While the run is suspended, the outcome (completed,
    // failed) waits for resume: SUSPENDED cannot go to COMPLETED or FAILED directly.
    private void AdvanceLocked(RunEntry entry, long now, ref Effects fx)
    {
        var state = entry.State;
        while (true)
        {
            var plan = Planner.Advance(entry.Workflow, state, now);
            bool again = false;
            var ready = plan.Ready;
            for (int i = 0; i < ready.Count; i++)
                again |= PrepareReadyLocked(entry, ready[i], now, ref fx);
            // A WAIT that consumed an already-arrived signal completed on the spot: its successors may be ready.
            if (again && plan.Outcome == RunOutcome.InProgress)
                continue;
            if (state.Status != RunStatus.Running)
                return;
            switch (plan.Outcome)
            {
                case RunOutcome.Completed:
                    TransitionRunLocked(entry, RunStatus.Completed);
                    state.FinishedAtMs = now;
                    state.AddEvent(RunEventType.RunCompleted, now);
                    fx.Finished = true;
                    break;
                case RunOutcome.Failed:
                    FailRunLocked(entry, TaskFailedName, $"Node '{plan.FailedNodeId}' failed.", now, ref fx);
                    break;
                case RunOutcome.Stuck:
                    FailRunLocked(entry, RunStuckName, "The run can make no further progress.", now, ref fx);
                    break;
            }
            return;
        }
    }

    private void FailRunLocked(RunEntry entry, string code, string message, long now, ref Effects fx)
    {
        var state = entry.State;
        TransitionRunLocked(entry, RunStatus.Failed);
        state.ErrorCode = code;
        state.ErrorMessage = message;
        state.FinishedAtMs = now;
        CancelNodesLocked(entry, now, ref fx);
        state.AddEvent(RunEventType.RunFailed, now, detail: code);
        fx.ClearStarts();
        fx.RemoveRun = true;
        fx.Finished = true;
    }

    private void CancelNodesLocked(RunEntry entry, long now, ref Effects fx)
    {
        var state = entry.State;
        foreach (var node in state.Nodes.Values)
        {
            if (node.IsTerminal)
                continue;
            node.Status = NodeStatus.Cancelled;
            node.DueAtMs = null;
            state.AddEvent(RunEventType.NodeCancelled, now, node.NodeId, node.Attempt);
        }
        RemoveAllDeadlinesLocked(entry);
        if (entry.AgentCalls is { } calls)
        {
            foreach (var cts in calls.Values)
                (fx.CancelAgents ??= []).Add(cts);
            entry.AgentCalls = null;
        }
        entry.Deferred = null;
    }

    // A node the planner just queued: its attempt number goes up by one, then it starts (TASK, AGENT: after the write
    // is durable; deferred while suspended) or arms (WAIT). Returns true when it completed on the spot.
    private bool PrepareReadyLocked(RunEntry entry, string nodeId, long now, ref Effects fx)
    {
        var wf = entry.Workflow;
        var def = wf.Nodes[wf.IndexOf[nodeId]];
        var node = entry.State.Nodes[nodeId];
        node.Attempt++;
        node.DueAtMs = null;
        if (def.Type == NodeType.Wait)
            return ArmWaitLocked(entry, def, node, now);
        StartLocked(entry, def, node, now, ref fx);
        return false;
    }

    private void StartLocked(RunEntry entry, NodeDefinition def, NodeState node, long now, ref Effects fx)
    {
        if (entry.State.Status != RunStatus.Running)
        {
            Defer(entry, node.NodeId);
            return;
        }
        if (def.Type == NodeType.Agent)
            (fx.Agents ??= []).Add((node.NodeId, node.Attempt));
        else
            fx.AddTask(MakeTask(entry, def, node, now));
    }

    private static void Defer(RunEntry entry, string nodeId)
    {
        var deferred = entry.Deferred ??= [];
        if (!deferred.Contains(nodeId))
            deferred.Add(nodeId);
    }

    // readyAtMs: when the node's task became ready, if not now (a node latency budget counts from it); recovery passes
    // the original time so a restart does not move the deadline.
    private static QueuedTask MakeTask(RunEntry entry, NodeDefinition def, NodeState node, long now, long? readyAtMs = null) => new()
    {
        TenantId = entry.State.TenantId,
        ExecutorType = def.ExecutorType ?? "",
        RunId = entry.State.RunId,
        NodeId = node.NodeId,
        Attempt = node.Attempt,
        TaskId = TaskIdOf(entry.State.RunId, node.NodeId, node.Attempt),
        Labels = def.Labels,
        EnqueuedAtMs = now,
        // The node's SLA overrides the run's, field by field; a node latency budget counts from when the task is ready.
        Priority = def.Sla?.Priority ?? entry.State.Priority,
        DeadlineAtMs = def.Sla?.LatencyBudgetMs is { } budget ? (readyAtMs ?? now) + budget : entry.State.DeadlineAtMs,
        OnDeadlineMiss = def.Sla?.OnDeadlineMiss ?? entry.State.OnDeadlineMiss,
    };

    // WAIT: a signal that already arrived is consumed at once (its payload is the output); otherwise the node stays
    // QUEUED with its timer armed (duration: completes; signal + duration: the longest wait, then TASK_TIMEOUT).
    private bool ArmWaitLocked(RunEntry entry, NodeDefinition def, NodeState node, long now)
    {
        var state = entry.State;
        if (def.Signal is { } signal)
        {
            var pending = state.PendingSignals;
            for (int i = 0; i < pending.Count; i++)
            {
                if (pending[i].Name == signal)
                {
                    var payload = pending[i].Payload;
                    pending.RemoveAt(i);
                    CompleteWaitLocked(state, node, payload, now);
                    return true;
                }
            }
            if (def.DurationMs is not long limit)
                return false;
            node.DueAtMs = now + Math.Max(0, limit);
        }
        else
        {
            node.DueAtMs = now + Math.Max(0, def.DurationMs ?? 0);
        }
        _timers.Schedule(new TimerItem(TimerKind.Wait, state.RunId, node.NodeId, node.Attempt), node.DueAtMs.Value);
        return false;
    }

    private static void CompleteWaitLocked(RunState state, NodeState node, JsonElement? output, long now)
    {
        node.Status = NodeStatus.Completed;
        node.Output = output;
        node.DueAtMs = null;
        state.AddEvent(RunEventType.NodeCompleted, now, node.NodeId, node.Attempt);
    }

    // ---- persistence and what follows it ----

    private Task WriteRunLocked(RunEntry entry, long now)
    {
        entry.State.UpdatedAtMs = now;
        var writer = RecordWriter.Rent();
        Task write;
        try
        {
            write = Issue(_store.PutAsync(entry.Key, writer.SerializeRun(entry.State)));
        }
        finally
        {
            RecordWriter.Return(writer);
        }
        entry.PendingWrite = write;
        return write;
    }

    // The dead letter (if any) first, then the run: a crash can keep the entry without the run's FAILED node, never
    // the reverse.
    private Task PersistLocked(RunEntry entry, long now, ref Effects fx)
    {
        Task? deadLetterWrite = null;
        if (fx.DeadLetter is { } dl)
        {
            var writer = RecordWriter.Rent();
            try
            {
                deadLetterWrite = Issue(_store.PutAsync(DeadLetterKey(dl.TenantId, dl.Id), writer.Serialize(dl, ExecutionJsonContext.Default.DeadLetter)));
            }
            finally
            {
                RecordWriter.Return(writer);
            }
        }
        var write = WriteRunLocked(entry, now);
        if (deadLetterWrite is not null && !deadLetterWrite.IsCompletedSuccessfully)
        {
            write = Task.WhenAll(deadLetterWrite, write);
            entry.PendingWrite = write;
        }
        return write;
    }

    private static byte[] DeadLetterKey(string tenantId, string id) => Encoding.UTF8.GetBytes(string.Concat(DeadLetterKeyPrefix, tenantId, "/", id));

    private static Task Issue(ValueTask write)
    {
        if (write.IsCompletedSuccessfully)
        {
            write.GetAwaiter().GetResult();
            return Task.CompletedTask;
        }
        return write.AsTask();
    }

    // Right after the lock: what needs no durability (free slots, drop a finished run's queued work and leases, stop
    // AGENT calls).
    private void AfterLock(RunEntry entry, ref Effects fx)
    {
        bool kick = false;
        if (fx.Release is { } taskId)
        {
            _dispatcher.PostRelease(taskId);
            if (fx.MoreReleases is { } more)
            {
                foreach (var id in more)
                    _dispatcher.PostRelease(id);
            }
            fx.Release = null;
            fx.MoreReleases = null;
            kick = true;
        }
        if (fx.RemoveRun)
        {
            _dispatcher.RemoveRun(entry.State.RunId);
            fx.RemoveRun = false;
            kick = true;
        }
        if (kick)
            _timers.Kick();
        if (fx.CancelAgents is { } cancels)
        {
            foreach (var cts in cancels)
            {
                try
                {
                    cts.Cancel();
                }
                catch (ObjectDisposedException)
                {
                    // The call finished and disposed its source meanwhile.
                }
            }
            fx.CancelAgents = null;
        }
    }

    // After the write is durable: record the dead letter, start what became ready, retire a finished run.
    private void AfterDurable(RunEntry entry, ref Effects fx)
    {
        if (fx.DeadLetter is { } dl)
        {
            _deadLetters.Add(dl);
            Interlocked.Increment(ref _deadLettered);
        }
        if (Volatile.Read(ref _disposed) == 0)
        {
            if (fx.Task0 is { } first)
            {
                _dispatcher.Enqueue(first);
                if (fx.MoreTasks is { } more)
                {
                    foreach (var task in more)
                        _dispatcher.Enqueue(task);
                }
                _timers.Kick();
            }
            if (fx.Agents is { } agents)
            {
                foreach (var (nodeId, attempt) in agents)
                    StartAgent(entry, nodeId, attempt);
            }
        }
        if (fx.Finished)
            RetireIfFinished(entry);
    }

    private void ContinueAfter(RunEntry entry, Task write, Effects fx)
    {
        if (write.IsCompletedSuccessfully)
        {
            AfterDurable(entry, ref fx);
            return;
        }
        _ = AfterDurableAsync(entry, write, fx);
    }

    private async Task AfterDurableAsync(RunEntry entry, Task write, Effects fx)
    {
        try
        {
            await write.ConfigureAwait(false);
            AfterDurable(entry, ref fx);
        }
        catch (Exception ex)
        {
            EngineLog.BackgroundFailed(_logger, entry.State.RunId, ex);
        }
    }

    // A finished run leaves the active map once its final write is durable; reads then come from the store.
    private void RetireIfFinished(RunEntry entry)
    {
        lock (entry.Gate)
        {
            if (!entry.State.IsTerminal || entry.Removed)
                return;
            entry.Removed = true;
            _runs.TryRemove(new KeyValuePair<string, RunEntry>(entry.State.RunId, entry));
        }
    }

    // ---- the dispatcher's hook ----

    // Called by the dispatcher (under its lock) when a task goes to an executor. Marks the node EXECUTING in memory
    // (dispatch is not persisted: leases are not durable and a restart requeues), arms the attempt deadline and
    // issues the token. Null: the run or node no longer waits for this attempt.
    private TaskAssignment? AssignTask(QueuedTask task, string executorId, long leaseExpiresAtMs)
    {
        if (!TryGetActive(task.RunId, out var entry))
            return null;
        lock (entry.Gate)
        {
            var state = entry.State;
            if (entry.Removed || state.IsTerminal
                || !state.Nodes.TryGetValue(task.NodeId, out var node)
                || node.Attempt != task.Attempt
                || node.Status is not (NodeStatus.Queued or NodeStatus.Executing))
            {
                return null;
            }
            if (state.Status != RunStatus.Running)
            {
                // Suspended: nothing new starts; resume enqueues it again.
                node.Status = NodeStatus.Queued;
                RemoveDeadlineLocked(entry, node.NodeId);
                Defer(entry, node.NodeId);
                return null;
            }
            long now = NowMs;
            int index = entry.Workflow.IndexOf[task.NodeId];
            var def = entry.Workflow.Nodes[index];
            node.Status = NodeStatus.Executing;
            node.ExecutorId = executorId;
            node.AttemptStartedAtMs = now;
            var record = FindAttempt(node, task.Attempt);
            if (record is null)
            {
                record = new AttemptRecord { Attempt = task.Attempt, StartedAtMs = now };
                node.Attempts.Add(record);
            }
            record.ExecutorId = executorId;
            state.AddEvent(RunEventType.NodeDispatched, now, task.NodeId, task.Attempt, executorId);
            long timeout = entry.Info.TimeoutMs[index];
            long deadline = now + timeout;
            ArmDeadlineLocked(entry, task.NodeId, task.Attempt, deadline, timeout);
            return new TaskAssignment
            {
                Token = _tokens.Issue(state.RunId, task.NodeId, task.Attempt, deadline + _tokenGraceMs),
                TaskId = task.TaskId,
                TenantId = state.TenantId,
                RunId = state.RunId,
                WorkflowId = state.WorkflowId,
                NodeId = task.NodeId,
                Attempt = task.Attempt,
                ExecutorType = task.ExecutorType,
                Input = state.Input,
                Config = def.Config,
                Upstream = BuildUpstream(entry, index),
                LeaseExpiresAtMs = leaseExpiresAtMs,
                DeadlineAtMs = deadline,
            };
        }
    }

    private static AttemptRecord? FindAttempt(NodeState node, int attempt)
    {
        var attempts = node.Attempts;
        for (int i = attempts.Count - 1; i >= 0; i--)
        {
            if (attempts[i].Attempt == attempt)
                return attempts[i];
        }
        return null;
    }

    // { "<predecessor>": output, ... } of the direct predecessors that completed; null when there are none.
    private static JsonElement? BuildUpstream(RunEntry entry, int index)
    {
        var preds = entry.Info.Predecessors[index];
        if (preds.Length == 0)
            return null;
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var id in preds)
            {
                if (entry.State.Nodes.TryGetValue(id, out var p) && p.Status == NodeStatus.Completed)
                {
                    writer.WritePropertyName(id);
                    if (p.Output is { } output)
                        output.WriteTo(writer);
                    else
                        writer.WriteNullValue();
                }
            }
            writer.WriteEndObject();
        }
        using var doc = JsonDocument.Parse(buffer.WrittenMemory);
        return doc.RootElement.Clone();
    }

    // ---- results ----

    // callerTenantId: the tenant of the connection reporting; a result for another tenant's run is TASK_TOKEN_INVALID.
    public ValueTask<TaskResultAck> CompleteTaskAsync(string callerTenantId, bool shared, TaskResult result, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(result);
        long now = NowMs;
        if (!_tokens.TryVerify(result.Token, now, out var claims, out var error))
            throw new WayangException(error == ErrorCode.TaskTokenExpired ? ErrorCode.TaskTokenExpired : ErrorCode.TaskTokenInvalid);
        while (true)
        {
            if (!TryGetActive(claims.RunId, out var entry))
                return new ValueTask<TaskResultAck>(CompleteOnStoredRun(callerTenantId, shared, claims));
            if (!shared && entry.State.TenantId != callerTenantId)
                throw TokenInvalid();
            Effects fx = default;
            Task write;
            TaskResultAck ack;
            lock (entry.Gate)
            {
                if (entry.Removed)
                    continue;
                var state = entry.State;
                if (!entry.Workflow.IndexOf.TryGetValue(claims.NodeId, out int index) || !state.Nodes.TryGetValue(claims.NodeId, out var node))
                    throw TokenInvalid();
                var record = FindAttempt(node, claims.Attempt);
                if (record is { EndedAtMs: not null } && !EndedByEngine(record))
                {
                    // Accepted before: same ack, nothing changes; answered once the state that accepted it is durable.
                    write = entry.PendingWrite;
                    ack = new TaskResultAck(claims.RunId, claims.NodeId, claims.Attempt, true);
                }
                else if (state.IsTerminal || claims.Attempt != node.Attempt || node.Status is not (NodeStatus.Queued or NodeStatus.Executing))
                {
                    throw Superseded(claims);
                }
                else
                {
                    ApplyAttemptLocked(entry, index, node, claims.Attempt, result.Success, result.Success ? result.Output?.Clone() : null,
                        result.ErrorCode, result.ErrorMessage, result.Retryable, timedOut: false, now, ref fx);
                    fx.AddRelease(claims.TaskId);
                    AdvanceLocked(entry, now, ref fx);
                    write = PersistLocked(entry, now, ref fx);
                    ack = new TaskResultAck(claims.RunId, claims.NodeId, claims.Attempt, false);
                }
            }
            AfterLock(entry, ref fx);
            if (write.IsCompletedSuccessfully)
            {
                AfterDurable(entry, ref fx);
                return new ValueTask<TaskResultAck>(ack);
            }
            return CompleteSlowAsync(entry, write, fx, ack);
        }
    }

    private async ValueTask<TaskResultAck> CompleteSlowAsync(RunEntry entry, Task write, Effects fx, TaskResultAck ack)
    {
        await write.ConfigureAwait(false);
        AfterDurable(entry, ref fx);
        return ack;
    }

    // The run is not active (finished, or unknown): only a duplicate can be answered; it is already durable, because
    // a finished run leaves the active map only after its final write is.
    private TaskResultAck CompleteOnStoredRun(string callerTenantId, bool shared, TaskTokenClaims claims)
    {
        var state = LoadRun(claims.RunId);
        if (state is null || (!shared && state.TenantId != callerTenantId) || !state.Nodes.TryGetValue(claims.NodeId, out var node))
            throw TokenInvalid();
        var record = FindAttempt(node, claims.Attempt);
        if (record is { EndedAtMs: not null } && !EndedByEngine(record))
            return new TaskResultAck(claims.RunId, claims.NodeId, claims.Attempt, true);
        throw Superseded(claims);
    }

    private static bool EndedByEngine(AttemptRecord record) =>
        record.ErrorMessage == AttemptTimedOutMessage && record.ErrorCode == TaskTimeoutName;

    private static WayangException TokenInvalid() => new(ErrorCode.TaskTokenInvalid);

    private static WayangException Superseded(TaskTokenClaims claims) =>
        new(ErrorCode.AttemptSuperseded, $"Attempt {claims.Attempt} of node '{claims.NodeId}' in run '{claims.RunId}' has been superseded.");

    // One attempt's outcome: COMPLETED, or RETRYING (with its durable timer), or FAILED (and dead-lettered when no
    // FAILURE transition handles it).
    private void ApplyAttemptLocked(RunEntry entry, int index, NodeState node, int attempt, bool success, JsonElement? output,
        string? errorCode, string? errorMessage, bool retryable, bool timedOut, long now, ref Effects fx)
    {
        var state = entry.State;
        var def = entry.Workflow.Nodes[index];
        RemoveDeadlineLocked(entry, node.NodeId);
        if (entry.AgentCalls is { } calls && calls.Remove(node.NodeId, out var call))
            (fx.CancelAgents ??= []).Add(call);
        var record = FindAttempt(node, attempt);
        if (record is null)
        {
            record = new AttemptRecord { Attempt = attempt, StartedAtMs = node.AttemptStartedAtMs ?? now, ExecutorId = node.ExecutorId };
            node.Attempts.Add(record);
        }
        record.EndedAtMs = now;
        if (success)
        {
            record.Succeeded = true;
            node.Status = NodeStatus.Completed;
            node.Output = output;
            node.ErrorCode = null;
            node.ErrorMessage = null;
            state.AddEvent(RunEventType.NodeCompleted, now, node.NodeId, attempt);
            Interlocked.Increment(ref _tasksCompleted);
            return;
        }

        var code = string.IsNullOrEmpty(errorCode) ? TaskFailedName : errorCode;
        record.ErrorCode = code;
        record.ErrorMessage = errorMessage;
        node.ErrorCode = code;
        node.ErrorMessage = errorMessage;
        node.Output = null;
        if (timedOut)
            state.AddEvent(RunEventType.NodeTimedOut, now, node.NodeId, attempt);
        var policy = entry.Workflow.Retry[index];
        if (def.Type != NodeType.Wait && RetryMath.ShouldRetry(policy, attempt, code, retryable))
        {
            long delay = Math.Max(0, RetryMath.NextDelayMs(policy, attempt, Random.Shared.NextDouble()));
            node.Status = NodeStatus.Retrying;
            node.DueAtMs = now + delay;
            state.AddEvent(RunEventType.NodeRetryScheduled, now, node.NodeId, attempt, code);
            _timers.Schedule(new TimerItem(TimerKind.Retry, state.RunId, node.NodeId, attempt), now + delay);
            Interlocked.Increment(ref _tasksRetried);
            return;
        }

        node.Status = NodeStatus.Failed;
        state.AddEvent(RunEventType.NodeFailed, now, node.NodeId, attempt, code);
        Interlocked.Increment(ref _tasksFailed);
        if (!entry.Info.HandlesFailure[index] && def.Type is NodeType.Task or NodeType.Agent)
        {
            var dl = new DeadLetter
            {
                Id = Ids.NewId("dlq_"),
                TenantId = state.TenantId,
                RunId = state.RunId,
                WorkflowId = state.WorkflowId,
                WorkflowVersion = state.WorkflowVersion,
                NodeId = node.NodeId,
                ExecutorType = def.Type == NodeType.Agent ? def.Agent : def.ExecutorType,
                Input = state.Input,
                Config = def.Config,
                Attempts = [.. node.Attempts],
                LastErrorCode = code,
                LastErrorMessage = errorMessage,
                ExecutorId = record.ExecutorId,
                DeadLetteredAtMs = now,
            };
            fx.DeadLetter = dl;
            state.AddEvent(RunEventType.NodeDeadLettered, now, node.NodeId, attempt, dl.Id);
        }
    }

    // ---- attempt deadlines ----

    private void ArmDeadlineLocked(RunEntry entry, string nodeId, int attempt, long dueAtMs, long timeoutMs)
    {
        RemoveDeadlineLocked(entry, nodeId);
        var deadline = new DeadlineEntry(entry, nodeId, attempt, dueAtMs, timeoutMs) { NextInRun = entry.Deadlines };
        entry.Deadlines = deadline;
        _timers.AddDeadline(deadline);
    }

    private void RemoveDeadlineLocked(RunEntry entry, string nodeId)
    {
        DeadlineEntry? prev = null;
        for (var d = entry.Deadlines; d is not null; prev = d, d = d.NextInRun)
        {
            if (d.NodeId != nodeId)
                continue;
            if (prev is null)
                entry.Deadlines = d.NextInRun;
            else
                prev.NextInRun = d.NextInRun;
            d.NextInRun = null;
            _timers.RemoveDeadline(d);
            return;
        }
    }

    // Whether target is still armed (it is then taken off the run's chain).
    private static bool TakeDeadlineLocked(RunEntry entry, DeadlineEntry target)
    {
        DeadlineEntry? prev = null;
        for (var d = entry.Deadlines; d is not null; prev = d, d = d.NextInRun)
        {
            if (!ReferenceEquals(d, target))
                continue;
            if (prev is null)
                entry.Deadlines = d.NextInRun;
            else
                prev.NextInRun = d.NextInRun;
            d.NextInRun = null;
            return true;
        }
        return false;
    }

    private void RemoveAllDeadlinesLocked(RunEntry entry)
    {
        for (var d = entry.Deadlines; d is not null;)
        {
            var next = d.NextInRun;
            d.NextInRun = null;
            _timers.RemoveDeadline(d);
            d = next;
        }
        entry.Deadlines = null;
    }

    // ---- timers ----

    long ITimerSink.NextLeaseExpiryMs => _dispatcher.NextLeaseExpiryMs;

    void ITimerSink.OnDue(long nowMs, List<TimerItem> items, List<DeadlineEntry> deadlines, bool leasesDue)
    {
        if (Volatile.Read(ref _disposed) != 0)
            return;
        foreach (var item in items)
        {
            try
            {
                OnTimerItem(item, nowMs);
            }
            catch (Exception ex)
            {
                EngineLog.BackgroundFailed(_logger, item.RunId, ex);
            }
        }
        foreach (var deadline in deadlines)
        {
            try
            {
                OnDeadline(deadline, nowMs);
            }
            catch (Exception ex)
            {
                EngineLog.BackgroundFailed(_logger, deadline.Run.State.RunId, ex);
            }
        }
        if (leasesDue)
        {
            var expired = _dispatcher.ExpireLeases(nowMs);
            for (int i = 0; i < expired.Count; i++)
                Requeue(expired[i], "lease expired");
            _timers.Kick();
        }
    }

    private void OnTimerItem(TimerItem item, long now)
    {
        if (!TryGetActive(item.RunId, out var entry))
            return;
        Effects fx = default;
        Task write;
        lock (entry.Gate)
        {
            var state = entry.State;
            // Suspended: resume re-arms every RETRYING and WAIT timer.
            if (entry.Removed || state.Status != RunStatus.Running
                || !state.Nodes.TryGetValue(item.NodeId, out var node)
                || node.Attempt != item.Attempt || node.DueAtMs is not long due || due > now)
            {
                return;
            }
            int index = entry.Workflow.IndexOf[item.NodeId];
            var def = entry.Workflow.Nodes[index];
            if (item.Kind == TimerKind.Retry)
            {
                if (node.Status != NodeStatus.Retrying)
                    return;
                // Not persisted: recovery re-derives it from RETRYING and DueAtMs.
                node.Attempt++;
                node.Status = NodeStatus.Queued;
                node.DueAtMs = null;
                state.AddEvent(RunEventType.NodeQueued, now, node.NodeId, node.Attempt);
                StartLocked(entry, def, node, now, ref fx);
                // Start only once the write that scheduled the retry is durable.
                write = entry.PendingWrite;
            }
            else
            {
                if (def.Type != NodeType.Wait || node.Status != NodeStatus.Queued)
                    return;
                if (def.Signal is not null)
                {
                    ApplyAttemptLocked(entry, index, node, node.Attempt, false, null, TaskTimeoutName,
                        $"Signal '{def.Signal}' did not arrive within {def.DurationMs} ms.", retryable: false, timedOut: true, now, ref fx);
                }
                else
                {
                    CompleteWaitLocked(state, node, null, now);
                }
                AdvanceLocked(entry, now, ref fx);
                write = PersistLocked(entry, now, ref fx);
            }
        }
        FinishChange(entry, write, fx);
    }

    private void OnDeadline(DeadlineEntry deadline, long now)
    {
        var entry = deadline.Run;
        Effects fx = default;
        Task write;
        lock (entry.Gate)
        {
            var state = entry.State;
            if (entry.Removed || !TakeDeadlineLocked(entry, deadline) || state.IsTerminal
                || !state.Nodes.TryGetValue(deadline.NodeId, out var node)
                || node.Attempt != deadline.Attempt || node.Status != NodeStatus.Executing)
            {
                return;
            }
            int index = entry.Workflow.IndexOf[deadline.NodeId];
            ApplyAttemptLocked(entry, index, node, deadline.Attempt, false, null, TaskTimeoutName, AttemptTimedOutMessage, retryable: true, timedOut: true, now, ref fx);
            if (entry.Workflow.Nodes[index].Type == NodeType.Task)
                fx.AddRelease(TaskIdOf(state.RunId, deadline.NodeId, deadline.Attempt));
            AdvanceLocked(entry, now, ref fx);
            write = PersistLocked(entry, now, ref fx);
        }
        FinishChange(entry, write, fx);
    }

    // The dispatcher took a task out whose SLA deadline had passed (FAIL policy): its attempt fails without running.
    private void OnDeadlineMissed(QueuedTask task)
    {
        if (!TryGetActive(task.RunId, out var entry))
            return;
        long now = NowMs;
        Effects fx = default;
        Task write;
        lock (entry.Gate)
        {
            var state = entry.State;
            if (entry.Removed || state.IsTerminal || !state.Nodes.TryGetValue(task.NodeId, out var node)
                || node.Attempt != task.Attempt || node.Status != NodeStatus.Queued)
            {
                return;
            }
            int index = entry.Workflow.IndexOf[task.NodeId];
            ApplyAttemptLocked(entry, index, node, task.Attempt, false, null, DeadlineExceededName,
                $"The task's deadline ({task.DeadlineAtMs}) passed before it was dispatched.", retryable: false, timedOut: false, now, ref fx);
            AdvanceLocked(entry, now, ref fx);
            write = PersistLocked(entry, now, ref fx);
        }
        FinishChange(entry, write, fx);
    }

    // The common tail of a change made under a run's lock by something that is not waiting for an answer.
    private void FinishChange(RunEntry entry, Task write, Effects fx)
    {
        AfterLock(entry, ref fx);
        ContinueAfter(entry, write, fx);
    }

    // ---- leases ----

    // A leased task came back (lease expiry, executor gone): the same attempt goes to the front of its queue.
    private void Requeue(QueuedTask task, string reason)
    {
        if (!TryGetActive(task.RunId, out var entry))
            return;
        bool enqueue = false;
        lock (entry.Gate)
        {
            var state = entry.State;
            if (entry.Removed || state.IsTerminal
                || !state.Nodes.TryGetValue(task.NodeId, out var node)
                || node.Attempt != task.Attempt
                || node.Status is not (NodeStatus.Executing or NodeStatus.Queued))
            {
                return;
            }
            long now = NowMs;
            RemoveDeadlineLocked(entry, node.NodeId);
            node.Status = NodeStatus.Queued;
            node.ExecutorId = null;
            state.AddEvent(RunEventType.NodeLeaseExpired, now, node.NodeId, node.Attempt, reason);
            if (state.Status == RunStatus.Running)
                enqueue = true;
            else
                Defer(entry, node.NodeId);
        }
        if (enqueue && Volatile.Read(ref _disposed) == 0)
            _dispatcher.Enqueue(task, front: true);
    }

    // ---- AGENT nodes ----

    private void StartAgent(RunEntry entry, string nodeId, int attempt)
    {
        AgentCall call;
        CancellationTokenSource cts;
        Effects fx = default;
        Task? write = null;
        lock (entry.Gate)
        {
            var state = entry.State;
            if (entry.Removed || state.IsTerminal || !state.Nodes.TryGetValue(nodeId, out var node)
                || node.Attempt != attempt || node.Status != NodeStatus.Queued)
            {
                return;
            }
            if (state.Status != RunStatus.Running)
            {
                Defer(entry, nodeId);
                return;
            }
            long now = NowMs;
            int index = entry.Workflow.IndexOf[nodeId];
            var def = entry.Workflow.Nodes[index];
            node.Status = NodeStatus.Executing;
            node.AttemptStartedAtMs = now;
            node.ExecutorId = null;
            if (FindAttempt(node, attempt) is null)
                node.Attempts.Add(new AttemptRecord { Attempt = attempt, StartedAtMs = now });
            state.AddEvent(RunEventType.NodeDispatched, now, nodeId, attempt, "agent");
            if (_inference is null)
            {
                // Validation refuses AGENT nodes without an inference plane; a run stored by a server that had one can
                // still meet a server that has none.
                ApplyAttemptLocked(entry, index, node, attempt, false, null, ErrorRegistry.NameOf(ErrorCode.AgentUnavailable),
                    "This server has no inference plane.", retryable: false, timedOut: false, now, ref fx);
                AdvanceLocked(entry, now, ref fx);
                write = PersistLocked(entry, now, ref fx);
                call = null!;
                cts = null!;
            }
            else
            {
                long timeout = entry.Info.TimeoutMs[index];
                ArmDeadlineLocked(entry, nodeId, attempt, now + timeout, timeout);
                cts = CancellationTokenSource.CreateLinkedTokenSource(_shutdown.Token);
                (entry.AgentCalls ??= new Dictionary<string, CancellationTokenSource>(StringComparer.Ordinal))[nodeId] = cts;
                call = new AgentCall(state.TenantId, state.RunId, nodeId, attempt, def.Agent ?? "", def.Config, state.Input, BuildUpstream(entry, index),
                    def.AgentVersion);
            }
        }
        if (write is not null)
        {
            FinishChange(entry, write, fx);
            return;
        }
        _ = CallAgentAsync(entry, call, cts);
    }

    private async Task CallAgentAsync(RunEntry entry, AgentCall call, CancellationTokenSource cts)
    {
        AgentCallResult? result = null;
        try
        {
            result = await _inference!.CallAgentAsync(call, cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            // Timed out, cancelled or shutting down: whoever cancelled it has recorded why.
        }
        catch (Exception ex)
        {
            EngineLog.AgentThrew(_logger, call.RunId, call.NodeId, ex);
            result = new AgentCallResult(false, null, ErrorRegistry.NameOf(ErrorCode.Internal), ex.Message, Retryable: true);
        }
        finally
        {
            lock (entry.Gate)
            {
                if (entry.AgentCalls is { } calls && calls.TryGetValue(call.NodeId, out var current) && ReferenceEquals(current, cts))
                    calls.Remove(call.NodeId);
            }
            cts.Dispose();
        }
        if (result is null || Volatile.Read(ref _disposed) != 0)
            return;
        try
        {
            Effects fx = default;
            Task write;
            lock (entry.Gate)
            {
                var state = entry.State;
                if (entry.Removed || state.IsTerminal || !state.Nodes.TryGetValue(call.NodeId, out var node)
                    || node.Attempt != call.Attempt || node.Status != NodeStatus.Executing)
                {
                    return;
                }
                long now = NowMs;
                int index = entry.Workflow.IndexOf[call.NodeId];
                ApplyAttemptLocked(entry, index, node, call.Attempt, result.Success, result.Success ? result.Output?.Clone() : null,
                    result.ErrorCode, result.ErrorMessage, result.Retryable, timedOut: false, now, ref fx);
                AdvanceLocked(entry, now, ref fx);
                write = PersistLocked(entry, now, ref fx);
            }
            AfterLock(entry, ref fx);
            await write.ConfigureAwait(false);
            AfterDurable(entry, ref fx);
        }
        catch (Exception ex)
        {
            EngineLog.BackgroundFailed(_logger, call.RunId, ex);
        }
    }
}
