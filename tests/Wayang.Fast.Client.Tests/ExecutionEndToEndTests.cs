using System.Collections.Concurrent;
using System.Text.Json;
using Wayang.Fast.Client.Execution;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;
using static Wayang.Fast.Client.Tests.ExecutionTestSupport;

namespace Wayang.Fast.Client.Tests;

// The execution plane through the SDK: real server, real executors over loopback sockets.
public sealed class ExecutionEndToEndTests(ExecutionServerFixture fixture) : IClassFixture<ExecutionServerFixture>
{
    [Fact]
    public async Task Workflows_register_get_and_list_with_versions()
    {
        await using var user = await fixture.UserAsync();
        var id = Unique("wf");

        var first = await user.RegisterWorkflowAsync(OneTask(id, "t"));
        var second = await user.RegisterWorkflowAsync(System.Text.Encoding.UTF8.GetBytes(OneTask(id, "t2")));

        Assert.Equal((id, 1), (first.WorkflowId, first.Version));
        Assert.Equal(2, second.Version);
        using (var latest = JsonDocument.Parse(await user.GetWorkflowAsync(id)))
            Assert.Equal("t2", latest.RootElement.GetProperty("nodes")[0].GetProperty("executorType").GetString());
        using (var v1 = JsonDocument.Parse(await user.GetWorkflowAsync(id, version: 1)))
            Assert.Equal("t", v1.RootElement.GetProperty("nodes")[0].GetProperty("executorType").GetString());
        var listed = Assert.Single(await user.ListWorkflowsAsync(), w => w.WorkflowId == id);
        Assert.Equal(2, listed.LatestVersion);
        Assert.Equal(new[] { 1, 2 }, listed.Versions);

        var invalid = await Assert.ThrowsAsync<WayangException>(() => user.RegisterWorkflowAsync("""{ "id": "bad", "nodes": [] }"""));
        Assert.Equal(ErrorCode.WorkflowInvalid, invalid.Code);
        var missing = await Assert.ThrowsAsync<WayangException>(() => user.GetWorkflowAsync(Unique("none")));
        Assert.Equal(ErrorCode.WorkflowNotFound, missing.Code);
    }

    [Fact]
    public async Task One_node_run_completes_with_the_executors_output()
    {
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync(OneTask(id, type));
        var seen = new ConcurrentQueue<ExecutorTask>();
        await using var executor = await fixture.StartExecutorAsync(type, 2, (task, _) =>
        {
            seen.Enqueue(task);
            int x = task.Input!.Value.GetProperty("x").GetInt32();
            int factor = task.Config!.Value.GetProperty("factor").GetInt32();
            return ValueTask.FromResult(TaskOutcome.Success(new { value = x * factor }));
        });

        var submitted = await user.SubmitRunAsync(id, """{ "x": 21 }""");
        var run = await user.WaitForStatusAsync(submitted.RunId, RunStatus.Completed, includeEvents: true);

        Assert.False(submitted.Replayed);
        Assert.Equal(1, submitted.Version);
        Assert.Equal(42, run.Output!.Value.GetProperty("result").GetInt32());
        Assert.Equal(21, run.Input!.Value.GetProperty("x").GetInt32());
        var node = run.Node("start")!;
        Assert.Equal(NodeStatus.Completed, node.Status);
        Assert.Equal(1, node.Attempt);
        Assert.Equal(42, node.Output!.Value.GetProperty("value").GetInt32());
        var attempt = Assert.Single(node.Attempts);
        Assert.True(attempt.Succeeded);
        Assert.Equal(executor.Host.ExecutorId, attempt.ExecutorId);
        Assert.Contains(run.Events, e => e.Type == RunEventType.RunCompleted);
        Assert.Equal(run.Events.OrderBy(e => e.Seq).Select(e => e.Seq), run.Events.Select(e => e.Seq));

        var task = Assert.Single(seen);
        Assert.Equal($"{submitted.RunId}:start:1", task.TaskId);
        Assert.Equal((submitted.RunId, "start", 1, type, id), (task.RunId, task.NodeId, task.Attempt, task.ExecutorType, task.WorkflowId));
        Assert.Equal(fixture.TenantId, task.TenantId);
        await UntilAsync(() => executor.Host.ResultsAccepted == 1, "the result was acknowledged");

        // A resent result (an executor after a reconnect) is acknowledged as a duplicate and changes nothing.
        var again = await executor.Client.CallAsync<TaskResultRequest, TaskResultResponse>(Opcode.TaskResult,
            new TaskResultRequest { Token = task.Token, Success = true, OutputJson = """{"value":1}"""u8.ToArray() });
        Assert.True(again.Duplicate);
        Assert.Equal(42, (await user.GetRunAsync(submitted.RunId)).Output!.Value.GetProperty("result").GetInt32());

        Assert.Contains(await user.ListRunsAsync(RunStatus.Completed), r => r.RunId == submitted.RunId);
        Assert.DoesNotContain(await user.ListRunsAsync(RunStatus.Running), r => r.RunId == submitted.RunId);
    }

    [Fact]
    public async Task Sla_tags_from_the_sdk_reach_the_dispatcher()
    {
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync(OneTask(id, type));
        var ran = new ConcurrentQueue<string>();

        // A deadline long past under FAIL: the task never runs and the node fails with DEADLINE_EXCEEDED.
        var late = await user.SubmitRunAsync(id, """{ "x": 1 }""",
            new SubmitSla(SlaPriority.High, Deadline: DateTimeOffset.UnixEpoch.AddMilliseconds(1), OnDeadlineMiss: DeadlineMissPolicy.Fail));
        var onTime = await user.SubmitRunAsync(id, """{ "x": 2 }""", new SubmitSla(SlaPriority.Low, LatencyBudget: TimeSpan.FromHours(1)));
        await using var executor = await fixture.StartExecutorAsync(type, 1, (task, _) =>
        {
            ran.Enqueue(task.RunId);
            return ValueTask.FromResult(TaskOutcome.Success(new { value = 1 }));
        });

        var failed = await user.WaitForStatusAsync(late.RunId, RunStatus.Failed);
        Assert.Equal("DEADLINE_EXCEEDED", Assert.Single(failed.Node("start")!.Attempts).ErrorCode);
        await user.WaitForStatusAsync(onTime.RunId, RunStatus.Completed);
        Assert.Equal([onTime.RunId], ran);

        var both = await Assert.ThrowsAsync<WayangException>(() => user.SubmitRunAsync(id, null,
            new SubmitSla(Deadline: DateTimeOffset.UtcNow.AddMinutes(1), LatencyBudget: TimeSpan.FromMinutes(1))));
        Assert.Equal(ErrorCode.InvalidArgument, both.Code);
    }

    [Fact]
    public async Task Fan_out_and_join_runs_the_join_after_both_branches_with_their_outputs()
    {
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync($$"""
            {
              "id": "{{id}}",
              "nodes": [
                { "id": "a", "type": "TASK", "executorType": "{{type}}" },
                { "id": "b", "type": "TASK", "executorType": "{{type}}", "dependsOn": ["a"] },
                { "id": "c", "type": "TASK", "executorType": "{{type}}", "dependsOn": ["a"] },
                { "id": "d", "type": "TASK", "executorType": "{{type}}", "dependsOn": ["b", "c"] }
              ]
            }
            """);
        var finished = new ConcurrentDictionary<string, bool>();
        JsonElement? joinUpstream = null;
        bool joinSawBoth = false;
        await using var executor = await fixture.StartExecutorAsync(type, 4, (task, _) =>
        {
            if (task.NodeId == "d")
            {
                joinSawBoth = finished.ContainsKey("b") && finished.ContainsKey("c");
                joinUpstream = task.Upstream;
            }
            finished[task.NodeId] = true;
            return ValueTask.FromResult(TaskOutcome.Success(new { node = task.NodeId }));
        });

        var submitted = await user.SubmitRunAsync(id);
        var run = await user.WaitForStatusAsync(submitted.RunId, RunStatus.Completed);

        Assert.All(new[] { "a", "b", "c", "d" }, n => Assert.Equal(NodeStatus.Completed, run.Node(n)!.Status));
        Assert.True(joinSawBoth, "d ran before both b and c had finished");
        Assert.Equal("b", joinUpstream!.Value.GetProperty("b").GetProperty("node").GetString());
        Assert.Equal("c", joinUpstream.Value.GetProperty("c").GetProperty("node").GetString());
    }

    [Theory]
    [InlineData("gold", "gold", "standard")]
    [InlineData("silver", "standard", "gold")]
    public async Task Decision_runs_the_matching_branch_and_skips_the_other(string tier, string taken, string skipped)
    {
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync($$"""
            {
              "id": "{{id}}",
              "nodes": [
                { "id": "classify", "type": "TASK", "executorType": "{{type}}" },
                { "id": "route", "type": "DECISION", "dependsOn": ["classify"], "transitions": [
                  { "on": "CONDITION", "to": "gold", "condition": { "path": "classify.tier", "op": "EQ", "value": "gold" } },
                  { "on": "DEFAULT", "to": "standard" } ] },
                { "id": "gold", "type": "TASK", "executorType": "{{type}}" },
                { "id": "standard", "type": "TASK", "executorType": "{{type}}" }
              ]
            }
            """);
        var ran = new ConcurrentQueue<string>();
        await using var executor = await fixture.StartExecutorAsync(type, 2, (task, _) =>
        {
            ran.Enqueue(task.NodeId);
            return ValueTask.FromResult(task.NodeId == "classify" ? TaskOutcome.Success(new { tier = task.Input!.Value.GetProperty("tier").GetString() }) : TaskOutcome.Success());
        });

        var submitted = await user.SubmitRunAsync(id, $$"""{ "tier": "{{tier}}" }""");
        var run = await user.WaitForStatusAsync(submitted.RunId, RunStatus.Completed);

        Assert.Equal(NodeStatus.Completed, run.Node("route")!.Status);
        Assert.Equal(NodeStatus.Completed, run.Node(taken)!.Status);
        Assert.Equal(NodeStatus.Skipped, run.Node(skipped)!.Status);
        Assert.Equal(["classify", taken], ran.ToArray());
    }

    [Fact]
    public async Task A_node_that_times_out_is_retried_and_the_late_result_is_refused()
    {
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync(OneTask(id, type,
            """, "timeoutMs": 300, "retry": { "maxAttempts": 3, "initialDelayMs": 10, "jitter": 0 }"""));
        var releaseFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var executor = await fixture.StartExecutorAsync(type, 2, async (task, _) =>
        {
            if (task.Attempt == 1)
                await releaseFirst.Task; // ignores its token: the server's timeout must end the attempt
            return TaskOutcome.Success(new { value = task.Attempt });
        });

        var submitted = await user.SubmitRunAsync(id, """{ "x": 1 }""");
        var run = await user.WaitForStatusAsync(submitted.RunId, RunStatus.Completed, includeEvents: true);
        releaseFirst.SetResult();

        var node = run.Node("start")!;
        Assert.True(node.Attempt >= 2);
        Assert.Equal(node.Attempt, run.Output!.Value.GetProperty("result").GetInt32());
        Assert.Equal("TASK_TIMEOUT", node.Attempts[0].ErrorCode);
        Assert.Contains(run.Events, e => e.Type == RunEventType.NodeTimedOut && e.Attempt == 1);
        // Attempt 1's result arrives after attempt 2 won: ATTEMPT_SUPERSEDED, counted as refused by the host.
        await UntilAsync(() => executor.Host.ResultsRefused >= 1, "the late result was refused");
        Assert.Equal(node.Attempt, (await user.GetRunAsync(submitted.RunId)).Node("start")!.Attempt);
    }

    [Fact]
    public async Task A_handler_is_cancelled_at_its_deadline_and_frees_its_only_slot_for_the_retry()
    {
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync(OneTask(id, type,
            """, "timeoutMs": 300, "retry": { "maxAttempts": 3, "initialDelayMs": 10, "jitter": 0 }"""));
        int cancelled = 0;
        await using var executor = await fixture.StartExecutorAsync(type, 1, async (task, ct) =>
        {
            if (task.Attempt == 1)
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                    Interlocked.Increment(ref cancelled);
                    throw;
                }
            }
            return TaskOutcome.Success(new { value = task.Attempt });
        });

        var submitted = await user.SubmitRunAsync(id);
        var run = await user.WaitForStatusAsync(submitted.RunId, RunStatus.Completed);

        Assert.Equal(1, Volatile.Read(ref cancelled));
        Assert.Equal("TASK_TIMEOUT", run.Node("start")!.Attempts[0].ErrorCode);
        Assert.Equal(run.Node("start")!.Attempt, run.Output!.Value.GetProperty("result").GetInt32());
        Assert.Equal(0, executor.Host.ResultsRefused); // the cancelled attempt sent nothing
    }

    [Fact]
    public async Task Exhausted_retries_go_to_the_DLQ_with_context_and_a_replay_completes_the_run()
    {
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync(OneTask(id, type, """, "retry": { "maxAttempts": 2, "initialDelayMs": 10, "jitter": 0 }"""));
        bool fail = true;
        await using var executor = await fixture.StartExecutorAsync(type, 1, (task, _) =>
        {
            if (Volatile.Read(ref fail))
                throw new InvalidOperationException("boom " + task.Attempt);
            return ValueTask.FromResult(TaskOutcome.Success(new { value = 7 }));
        });

        var submitted = await user.SubmitRunAsync(id, """{ "x": 5 }""");
        var failed = await user.WaitForStatusAsync(submitted.RunId, RunStatus.Failed);
        Assert.Equal(2, failed.Node("start")!.Attempt);

        var listed = await user.ListDeadLettersAsync(new DeadLetterFilter { WorkflowId = id });
        var entry = Assert.Single(listed);
        Assert.Equal((submitted.RunId, "start", id, type), (entry.RunId, entry.NodeId, entry.WorkflowId, entry.ExecutorType));
        Assert.Empty(await user.ListDeadLettersAsync(new DeadLetterFilter { WorkflowId = id, ErrorCode = "NOT-THIS-ONE" }));
        Assert.Single(await user.ListDeadLettersAsync(new DeadLetterFilter { WorkflowId = id, NodeId = "start", ErrorCode = "EXCEPTION" }));

        var shown = await user.GetDeadLetterAsync(entry.Id);
        Assert.Equal(2, shown.Attempts.Count);
        Assert.All(shown.Attempts, a => Assert.Equal("EXCEPTION", a.ErrorCode));
        Assert.Equal("boom 2", shown.LastErrorMessage);
        Assert.Equal("EXCEPTION", shown.LastErrorCode);
        Assert.Equal(executor.Host.ExecutorId, shown.ExecutorId);
        Assert.Equal(5, shown.Input!.Value.GetProperty("x").GetInt32());
        Assert.Equal(2, shown.Config!.Value.GetProperty("factor").GetInt32());
        Assert.Equal(fixture.TenantId, shown.TenantId);

        Volatile.Write(ref fail, false);
        var outcome = Assert.Single(await user.ReplayDeadLettersAsync([entry.Id]));
        Assert.True(outcome.Replayed, outcome.Error?.ToString());
        Assert.Null(outcome.Error);

        var run = await user.WaitForStatusAsync(submitted.RunId, RunStatus.Completed, includeEvents: true);
        Assert.Equal(3, run.Node("start")!.Attempt);
        Assert.Equal(7, run.Output!.Value.GetProperty("result").GetInt32());
        Assert.Contains(run.Events, e => e.Type == RunEventType.NodeReplayed);
        Assert.Empty(await user.ListDeadLettersAsync(new DeadLetterFilter { WorkflowId = id }));
        var gone = await Assert.ThrowsAsync<WayangException>(() => user.GetDeadLetterAsync(entry.Id));
        Assert.Equal(ErrorCode.DeadLetterNotFound, gone.Code);
    }

    [Fact]
    public async Task Dead_letters_are_discarded_by_id_and_by_filter()
    {
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync(OneTask(id, type));
        await using var executor = await fixture.StartExecutorAsync(type, 2,
            (_, _) => ValueTask.FromResult(TaskOutcome.Failure("NOPE", "refused", retryable: false)));

        var runs = new List<string>();
        for (int i = 0; i < 3; i++)
            runs.Add((await user.SubmitRunAsync(id)).RunId);
        foreach (var runId in runs)
            await user.WaitForStatusAsync(runId, RunStatus.Failed);
        var entries = await user.ListDeadLettersAsync(new DeadLetterFilter { WorkflowId = id });
        Assert.Equal(3, entries.Count);
        Assert.All(entries, e => Assert.Equal("NOPE", e.LastErrorCode));

        Assert.Equal(1, await user.DiscardDeadLettersAsync([entries[0].Id]));
        var missing = await Assert.ThrowsAsync<WayangException>(() => user.GetDeadLetterAsync(entries[0].Id));
        Assert.Equal(ErrorCode.DeadLetterNotFound, missing.Code);
        Assert.Equal(2, await user.DiscardDeadLettersAsync(new DeadLetterFilter { WorkflowId = id }, all: true));
        Assert.Empty(await user.ListDeadLettersAsync(new DeadLetterFilter { WorkflowId = id }));
        // The runs stay failed: discarding gives up on them.
        foreach (var runId in runs)
            Assert.Equal(RunStatus.Failed, (await user.GetRunAsync(runId)).Status);
    }

    [Fact]
    public async Task An_executor_that_disconnects_mid_task_loses_it_to_another_and_the_run_completes_once()
    {
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync(OneTask(id, type));
        var startedOnA = new TaskCompletionSource<ExecutorTask>(TaskCreationOptions.RunContinuationsAsynchronously);
        var a = await fixture.StartExecutorAsync(type, 1, async (task, ct) =>
        {
            startedOnA.TrySetResult(task);
            await Task.Delay(Timeout.Infinite, ct);
            return TaskOutcome.Success(new { value = -1 });
        });
        try
        {
            var submitted = await user.SubmitRunAsync(id);
            var taskOnA = await startedOnA.Task.WaitAsync(Deadline);

            await a.Client.DisposeAsync(); // the connection drops while the handler blocks
            await a.Host.Completion.WaitAsync(Deadline); // the host notices and stops (its handler is cancelled)

            var onB = new ConcurrentQueue<string>();
            await using var b = await fixture.StartExecutorAsync(type, 1, (task, _) =>
            {
                onB.Enqueue(task.TaskId);
                return ValueTask.FromResult(TaskOutcome.Success(new { value = 1 }));
            });
            var run = await user.WaitForStatusAsync(submitted.RunId, RunStatus.Completed, includeEvents: true);

            Assert.Equal([taskOnA.TaskId], onB.ToArray());
            Assert.Equal(1, run.Node("start")!.Attempt); // a redelivery, not a retry
            Assert.Equal(1, run.Output!.Value.GetProperty("result").GetInt32());
            Assert.Single(run.Events, e => e.Type == RunEventType.NodeCompleted && e.NodeId == "start");
            Assert.Equal(0, a.Host.ResultsAccepted);
        }
        finally
        {
            await a.DisposeAsync();
        }
    }

    [Fact]
    public async Task Slots_are_never_exceeded_with_more_tasks_than_slots()
    {
        const int slots = 3;
        const int runs = 20;
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync(OneTask(id, type));
        int current = 0, max = 0;
        var full = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var executor = await fixture.StartExecutorAsync(type, slots, async (task, _) =>
        {
            int now = Interlocked.Increment(ref current);
            UpdateMax(ref max, now);
            if (now == slots)
                full.TrySetResult();
            // The first tasks hold their slots until all slots are busy, so the limit is actually reached.
            await full.Task;
            await Task.Yield();
            Interlocked.Decrement(ref current);
            return TaskOutcome.Success(new { value = 1 });
        });

        var submitted = new List<string>();
        for (int i = 0; i < runs; i++)
            submitted.Add((await user.SubmitRunAsync(id)).RunId);
        foreach (var runId in submitted)
            await user.WaitForStatusAsync(runId, RunStatus.Completed);

        Assert.Equal(slots, Volatile.Read(ref max));
        await UntilAsync(() => executor.Host.ResultsAccepted == runs, "every result was acknowledged");
        Assert.Equal(runs, executor.Host.TasksReceived);
    }

    [Fact]
    public async Task Raising_slots_raises_concurrency_and_lowering_them_lowers_it()
    {
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync(OneTask(id, type));
        int current = 0, max = 0;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var executor = await fixture.StartExecutorAsync(type, 1, async (task, _) =>
        {
            UpdateMax(ref max, Interlocked.Increment(ref current));
            await Volatile.Read(ref gate).Task;
            Interlocked.Decrement(ref current);
            return TaskOutcome.Success(new { value = 1 });
        });

        var first = new List<string>();
        for (int i = 0; i < 3; i++)
            first.Add((await user.SubmitRunAsync(id)).RunId);
        await UntilAsync(() => Volatile.Read(ref current) == 1, "one task runs");
        await UntilAsync(async () =>
        {
            var stats = await user.GetQueueStatsAsync();
            return stats.Queues.Any(q => q.ExecutorType == type && q.Depth == 2 && q.Leased == 1);
        }, "two tasks wait in the queue while the only slot is busy");
        var executorStat = Assert.Single((await user.GetQueueStatsAsync()).Executors, e => e.ExecutorId == executor.Host.ExecutorId);
        Assert.Equal((1, 1), (executorStat.Slots, executorStat.InFlight));
        Assert.Equal(1, Volatile.Read(ref max));

        await executor.Host.SetSlotsAsync(3);
        await UntilAsync(() => Volatile.Read(ref current) == 3, "three tasks run after raising the slots to 3");
        Assert.Equal(3, executor.Host.Slots);

        // Lower to 1 while three run: nothing new starts until they finish, then one at a time.
        await executor.Host.SetSlotsAsync(1);
        var second = new List<string>();
        for (int i = 0; i < 3; i++)
            second.Add((await user.SubmitRunAsync(id)).RunId);
        var firstGate = gate;
        Volatile.Write(ref gate, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        firstGate.SetResult();
        foreach (var runId in first)
            await user.WaitForStatusAsync(runId, RunStatus.Completed);
        await UntilAsync(() => Volatile.Read(ref current) == 1, "one task of the second batch runs");
        Volatile.Write(ref max, 1);
        var secondGate = gate;
        var open = new TaskCompletionSource();
        open.SetResult();
        Volatile.Write(ref gate, open); // tasks that start from now on pass straight through
        secondGate.SetResult();
        foreach (var runId in second)
            await user.WaitForStatusAsync(runId, RunStatus.Completed);
        Assert.Equal(1, Volatile.Read(ref max));
    }

    [Fact]
    public async Task Submissions_with_an_idempotency_key_replay_the_run_and_conflict_on_different_parameters()
    {
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync(OneTask(id, Unique("t")));
        var key = Unique("key");

        // The three overloads send the same bytes: the server hashes the input as sent, so whitespace would count.
        var first = await user.SubmitRunAsync(id, """{"x":1}""", idempotencyKey: key);
        var again = await user.SubmitRunAsync(id, JsonDocument.Parse("""{ "x": 1 }""").RootElement, idempotencyKey: key);
        var typed = await user.SubmitRunAsync(id, new { x = 1 }, jsonOptions: null, idempotencyKey: key);

        Assert.False(first.Replayed);
        Assert.True(again.Replayed);
        Assert.True(typed.Replayed);
        Assert.Equal(first.RunId, again.RunId);
        Assert.Equal(first.RunId, typed.RunId);
        Assert.Equal(key, (await user.GetRunAsync(first.RunId)).IdempotencyKey);

        var conflict = await Assert.ThrowsAsync<WayangException>(() => user.SubmitRunAsync(id, """{ "x": 2 }""", idempotencyKey: key));
        Assert.Equal(ErrorCode.IdempotencyKeyConflict, conflict.Code);
        var other = await user.SubmitRunAsync(id, """{ "x": 2 }""", idempotencyKey: Unique("key"));
        Assert.NotEqual(first.RunId, other.RunId);
        await user.CancelRunAsync(first.RunId);
        await user.CancelRunAsync(other.RunId);
    }

    [Fact]
    public async Task Cancel_ends_a_run_whose_task_waits_for_an_executor()
    {
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync(OneTask(id, Unique("t")));
        var submitted = await user.SubmitRunAsync(id);

        var cancelled = await user.CancelRunAsync(submitted.RunId, "not needed");
        Assert.Equal(RunStatus.Cancelled, cancelled.Status);
        var run = await user.GetRunAsync(submitted.RunId, includeEvents: true);
        Assert.Equal(RunStatus.Cancelled, run.Status);
        Assert.NotEqual(NodeStatus.Completed, run.Node("start")!.Status);
        Assert.Contains(run.Events, e => e.Type == RunEventType.RunCancelled);

        var conflict = await Assert.ThrowsAsync<WayangException>(() => user.ResumeRunAsync(submitted.RunId));
        Assert.Equal(ErrorCode.RunStateConflict, conflict.Code);
        var missing = await Assert.ThrowsAsync<WayangException>(() => user.GetRunAsync("run-does-not-exist"));
        Assert.Equal(ErrorCode.RunNotFound, missing.Code);
    }

    [Fact]
    public async Task Suspend_holds_new_work_until_resume()
    {
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync($$"""
            {
              "id": "{{id}}",
              "nodes": [
                { "id": "a", "type": "TASK", "executorType": "{{type}}" },
                { "id": "b", "type": "TASK", "executorType": "{{type}}", "dependsOn": ["a"] }
              ]
            }
            """);
        var aStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var releaseA = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ran = new ConcurrentQueue<string>();
        await using var executor = await fixture.StartExecutorAsync(type, 2, async (task, _) =>
        {
            ran.Enqueue(task.NodeId);
            if (task.NodeId == "a")
            {
                aStarted.TrySetResult();
                await releaseA.Task;
            }
            return TaskOutcome.Success();
        });

        var submitted = await user.SubmitRunAsync(id);
        await aStarted.Task.WaitAsync(Deadline);
        var suspended = await user.SuspendRunAsync(submitted.RunId);
        Assert.Equal(RunStatus.Suspended, suspended.Status);
        releaseA.SetResult();
        // a's result is still accepted while suspended; b must wait for resume.
        var held = await user.WaitUntilAsync(submitted.RunId, r => r.Node("a")?.Status == NodeStatus.Completed);
        Assert.Equal(RunStatus.Suspended, held.Status);
        Assert.Equal(["a"], ran.ToArray());

        var resumed = await user.ResumeRunAsync(submitted.RunId);
        Assert.NotEqual(RunStatus.Suspended, resumed.Status);
        var run = await user.WaitForStatusAsync(submitted.RunId, RunStatus.Completed, includeEvents: true);
        Assert.Equal(["a", "b"], ran.ToArray());
        Assert.Contains(run.Events, e => e.Type == RunEventType.RunSuspended);
        Assert.Contains(run.Events, e => e.Type == RunEventType.RunResumed);
    }

    [Fact]
    public async Task A_signal_releases_a_waiting_node_with_its_payload()
    {
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync($$"""
            {
              "id": "{{id}}",
              "nodes": [
                { "id": "approval", "type": "WAIT", "signal": "approve" },
                { "id": "ship", "type": "TASK", "executorType": "{{type}}", "dependsOn": ["approval"] }
              ],
              "outputs": { "by": { "path": "approval.by" } }
            }
            """);
        JsonElement? upstream = null;
        await using var executor = await fixture.StartExecutorAsync(type, 1, (task, _) =>
        {
            upstream = task.Upstream;
            return ValueTask.FromResult(TaskOutcome.Success());
        });

        var submitted = await user.SubmitRunAsync(id);
        await user.WaitUntilAsync(submitted.RunId, r => r.Status == RunStatus.Running && r.Node("approval") is { Status: NodeStatus.Queued or NodeStatus.Executing });
        var signalled = await user.SignalRunAsync(submitted.RunId, "approve", """{ "by": "alice" }""");
        Assert.Equal(submitted.RunId, signalled.RunId);

        var run = await user.WaitForStatusAsync(submitted.RunId, RunStatus.Completed, includeEvents: true);
        Assert.Equal("alice", run.Node("approval")!.Output!.Value.GetProperty("by").GetString());
        Assert.Equal("alice", run.Output!.Value.GetProperty("by").GetString());
        Assert.Equal("alice", upstream!.Value.GetProperty("approval").GetProperty("by").GetString());
        Assert.Contains(run.Events, e => e.Type == RunEventType.RunSignalled);
    }

    [Fact]
    public async Task Queue_stats_show_depth_and_the_connected_executor()
    {
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync(OneTask(id, type));
        var submitted = await user.SubmitRunAsync(id);

        await UntilAsync(async () => (await user.GetQueueStatsAsync()).Queues.Any(q => q.ExecutorType == type && q.Depth == 1),
            "the task waits in its queue");
        var queue = Assert.Single((await user.GetQueueStatsAsync()).Queues, q => q.ExecutorType == type);
        Assert.Equal(fixture.TenantId, queue.TenantId);
        Assert.True(queue.MaxDepth > 0);

        await using var executor = await fixture.StartExecutorAsync(type, 2, (_, _) => ValueTask.FromResult(TaskOutcome.Success()));
        await UntilAsync(() => executor.Host.IsRegistered, "the executor registered");
        var stat = Assert.Single((await user.GetQueueStatsAsync()).Executors, e => e.ExecutorId == executor.Host.ExecutorId);
        Assert.Equal([type], stat.ExecutorTypes);
        Assert.Equal(2, stat.Slots);
        Assert.False(stat.Shared);
        await user.WaitForStatusAsync(submitted.RunId, RunStatus.Completed);

        // Another tenant's view never shows this tenant's queues; the all-tenants view is for platform admins.
        await using var admin = await WayangClient.ConnectAsync(fixture.Options(fixture.AdminKey));
        Assert.Contains((await admin.GetQueueStatsAsync(allTenants: true)).Queues, q => q.TenantId == fixture.TenantId && q.ExecutorType == type);
        Assert.DoesNotContain((await admin.GetQueueStatsAsync()).Queues, q => q.TenantId == fixture.TenantId);
        var denied = await Assert.ThrowsAsync<WayangException>(() => user.GetQueueStatsAsync(allTenants: true));
        Assert.Equal(ErrorCode.PermissionDenied, denied.Code);
    }

    [Fact]
    public async Task A_handler_exception_is_a_retryable_EXCEPTION_failure_and_a_retry_gets_a_new_TaskId()
    {
        var type = Unique("t");
        var id = Unique("wf");
        await using var user = await fixture.UserAsync();
        await user.RegisterWorkflowAsync(OneTask(id, type, """, "retry": { "maxAttempts": 3, "initialDelayMs": 10, "jitter": 0 }"""));
        var taskIds = new ConcurrentQueue<string>();
        await using var executor = await fixture.StartExecutorAsync(type, 1, (task, _) =>
        {
            taskIds.Enqueue(task.TaskId);
            if (task.Attempt == 1)
                throw new InvalidOperationException("first attempt fails");
            return ValueTask.FromResult(TaskOutcome.Success(new { value = task.Attempt }));
        });

        var submitted = await user.SubmitRunAsync(id);
        var run = await user.WaitForStatusAsync(submitted.RunId, RunStatus.Completed);

        var node = run.Node("start")!;
        Assert.Equal(2, node.Attempt);
        Assert.Equal("EXCEPTION", node.Attempts[0].ErrorCode);
        Assert.Equal("first attempt fails", node.Attempts[0].ErrorMessage);
        Assert.Equal([$"{submitted.RunId}:start:1", $"{submitted.RunId}:start:2"], taskIds.ToArray());
    }

    [Fact]
    public async Task Executor_options_are_checked_and_a_duplicate_executor_id_is_refused()
    {
        await using var client = await WayangClient.ConnectAsync(fixture.Options(fixture.ExecutorKey));
        static ValueTask<TaskOutcome> Handler(ExecutorTask task, CancellationToken ct) => ValueTask.FromResult(TaskOutcome.Success());
        Assert.Throws<ArgumentException>(() => client.StartExecutor(new ExecutorOptions { Types = [], Slots = 1 }, Handler));
        Assert.Throws<ArgumentException>(() => client.StartExecutor(new ExecutorOptions { Types = ["t"], Slots = 0 }, Handler));

        var type = Unique("t");
        var executorId = Unique("dup");
        await using var first = await fixture.StartExecutorAsync(type, 1, Handler, executorId);
        await UntilAsync(() => first.Host.IsRegistered, "the first executor registered");
        await using var host = client.StartExecutor(new ExecutorOptions { ExecutorId = executorId, Types = [type], Slots = 1 }, Handler);
        var refused = await Assert.ThrowsAsync<WayangException>(() => host.Completion.WaitAsync(Deadline));
        Assert.Equal(ErrorCode.ExecutorExists, refused.Code);

        // A user key without the executor role cannot register.
        await using var user = await fixture.UserAsync();
        await using var denied = user.StartExecutor(new ExecutorOptions { Types = [type], Slots = 1 }, Handler);
        var e = await Assert.ThrowsAsync<WayangException>(() => denied.Completion.WaitAsync(Deadline));
        Assert.Equal(ErrorCode.PermissionDenied, e.Code);
    }
}
