using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Engine;
using static Wayang.Fast.Execution.Tests.Workflows;

namespace Wayang.Fast.Execution.Tests;

public sealed class EngineRunTests
{
    [Fact]
    public async Task OneNodeRunCompletesWithTheExecutorsOutput()
    {
        await using var h = await EngineHarness.StartAsync();
        var def = OneTask();
        def.Nodes[0].Config = Json("""{"x":1}""");
        def.Outputs["answer"] = new OutputMapping { Path = "start.answer" };
        var summary = await h.RegisterAsync(def);
        Assert.Equal(1, summary.LatestVersion);
        var executor = h.Connect();

        var submitted = await h.SubmitAsync("one-task", """{"n":5}""");
        Assert.Equal(RunStatus.Running, submitted.Status);
        Assert.Equal(1, submitted.WorkflowVersion);
        Assert.False(submitted.Replayed);
        Assert.StartsWith("run_", submitted.RunId, StringComparison.Ordinal);

        var task = await executor.NextAsync();
        Assert.Equal($"{submitted.RunId}:start:1", task.TaskId);
        Assert.Equal(1, task.Attempt);
        Assert.Equal("start", task.NodeId);
        Assert.Equal(EngineHarness.Tenant, task.TenantId);
        Assert.Equal("one-task", task.WorkflowId);
        Assert.Equal("""{"n":5}""", JsonText.Of(task.Input));
        Assert.Equal("""{"x":1}""", JsonText.Of(task.Config));
        Assert.Null(task.Upstream);
        Assert.Equal(h.NowMs + (long)h.Options.DefaultTaskTimeout.TotalMilliseconds, task.DeadlineAtMs);
        Assert.Equal(h.NowMs + (long)h.Options.LeaseDuration.TotalMilliseconds, task.LeaseExpiresAtMs);

        var running = await h.GetRunAsync(submitted.RunId);
        Assert.Equal(NodeStatus.Executing, running.Nodes["start"].Status);
        Assert.Equal(executor.Handle.ExecutorId, running.Nodes["start"].ExecutorId);

        var ack = await h.SucceedAsync(executor, task, """{"answer":42}""");
        Assert.False(ack.Duplicate);
        Assert.Equal(submitted.RunId, ack.RunId);

        var run = await h.WaitStatusAsync(submitted.RunId, RunStatus.Completed);
        Assert.Equal(NodeStatus.Completed, run.Nodes["start"].Status);
        Assert.Equal("""{"answer":42}""", JsonText.Of(run.Nodes["start"].Output));
        Assert.Equal("""{"answer":42}""", JsonText.Of(run.Output));
        Assert.NotNull(run.FinishedAtMs);
        var attempt = Assert.Single(run.Nodes["start"].Attempts);
        Assert.True(attempt.Succeeded);
        Assert.Equal(executor.Handle.ExecutorId, attempt.ExecutorId);
        Assert.Equal(
            [RunEventType.RunCreated, RunEventType.RunStarted, RunEventType.NodeQueued, RunEventType.NodeDispatched, RunEventType.NodeCompleted, RunEventType.RunCompleted],
            run.Events.Select(e => e.Type));
        Assert.Equal(Enumerable.Range(1, run.Events.Count).Select(i => (long)i), run.Events.Select(e => e.Seq));

        var stats = h.Engine.GetStats(EngineHarness.Tenant);
        Assert.Equal(1, stats.TasksCompleted);
        Assert.Equal(1, stats.TasksDispatched);
        Assert.Equal(0, stats.RunsActive);
        Assert.Contains(h.Engine.ListRuns(EngineHarness.Tenant, RunStatus.Completed, 10), r => r.RunId == submitted.RunId);
    }

    [Fact]
    public async Task FanOutAndJoinPassUpstreamOutputs()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(FanOutJoin());
        var executor = h.Connect();
        var run = await h.SubmitAsync("fan-out");

        var a = await executor.NextAsync();
        Assert.Equal("a", a.NodeId);
        await h.SucceedAsync(executor, a, """{"v":"a"}""");

        var first = await executor.NextAsync();
        var second = await executor.NextAsync();
        Assert.Equal(["b", "c"], new[] { first.NodeId, second.NodeId }.Order());
        Assert.Equal("""{"a":{"v":"a"}}""", JsonText.Of(first.Upstream));
        await h.SucceedAsync(executor, first, $$"""{"v":"{{first.NodeId}}"}""");
        // The join waits for both branches.
        Assert.Equal(0, executor.Untaken);
        Assert.Equal(NodeStatus.Pending, (await h.GetRunAsync(run.RunId)).Nodes["d"].Status);
        await h.SucceedAsync(executor, second, $$"""{"v":"{{second.NodeId}}"}""");

        var d = await executor.NextAsync();
        Assert.Equal("d", d.NodeId);
        Assert.Equal("""{"b":{"v":"b"},"c":{"v":"c"}}""", JsonText.Of(d.Upstream));
        await h.SucceedAsync(executor, d);
        await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
    }

    [Theory]
    [InlineData("""{"amount":500}""", "big")]
    [InlineData("""{"amount":5,"tier":"gold"}""", "gold")]
    [InlineData("""{"amount":5}""", "small")]
    public async Task DecisionRunsTheTakenBranchAndSkipsTheOthers(string input, string taken)
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(DecisionFlow());
        var executor = h.Connect();
        var run = await h.SubmitAsync("decide", input);

        await h.SucceedAsync(executor, await executor.NextAsync());
        var branch = await executor.NextAsync();
        Assert.Equal(taken, branch.NodeId);
        await h.SucceedAsync(executor, branch);
        var done = await executor.NextAsync();
        Assert.Equal("done", done.NodeId);
        await h.SucceedAsync(executor, done, """{"result":"ok"}""");

        var final = await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        foreach (var other in new[] { "big", "gold", "small" }.Where(n => n != taken))
            Assert.Equal(NodeStatus.Skipped, final.Nodes[other].Status);
        Assert.Equal(NodeStatus.Completed, final.Nodes["route"].Status);
        Assert.Equal("\"ok\"", JsonText.Of(final.Output!.Value.GetProperty("result")));
    }

    [Fact]
    public async Task SubmissionsAreValidated()
    {
        await using var h = await EngineHarness.StartAsync(new ExecutionOptions { TokenSigningKey = new byte[32], MaxInputBytes = 64 });
        await h.RegisterAsync(DecisionFlow());
        await EngineHarness.ThrowsAsync(ErrorCode.WorkflowNotFound, () => h.SubmitAsync("nope"));
        await EngineHarness.ThrowsAsync(ErrorCode.WorkflowNotFound, () => h.SubmitAsync("decide", """{"amount":1}""", version: 2));
        await EngineHarness.ThrowsAsync(ErrorCode.WorkflowNotFound, () => h.SubmitAsync("decide", """{"amount":1}""", tenant: "other"));
        await EngineHarness.ThrowsAsync(ErrorCode.RunInputInvalid, () => h.SubmitAsync("decide"));
        await EngineHarness.ThrowsAsync(ErrorCode.RunInputInvalid, () => h.SubmitAsync("decide", """{"tier":"gold"}"""));
        await EngineHarness.ThrowsAsync(ErrorCode.RunInputInvalid, () => h.SubmitAsync("decide", "[1,2]"));
        await EngineHarness.ThrowsAsync(ErrorCode.RunInputInvalid, () => h.SubmitAsync("decide", $$"""{"amount":1,"pad":"{{new string('x', 80)}}"}"""));
        await EngineHarness.ThrowsAsync(ErrorCode.InvalidArgument, () => h.SubmitAsync("decide", """{"amount":1}""", key: new string('k', 257)));
        await EngineHarness.ThrowsAsync(ErrorCode.InvalidArgument, () => h.SubmitAsync("decide", """{"amount":1}""", key: "tab\tkey"));
        Assert.Equal(RunStatus.Running, (await h.SubmitAsync("decide", """{"amount":1}""", version: 1)).Status);
    }

    [Fact]
    public async Task FullQueueRefusesWithRetryAfter()
    {
        await using var h = await EngineHarness.StartAsync(new ExecutionOptions { TokenSigningKey = new byte[32], MaxQueueDepth = 2, QueueFullRetryAfterMs = 750 });
        await h.RegisterAsync(OneTask());
        await h.SubmitAsync("one-task");
        await h.SubmitAsync("one-task");
        var ex = await EngineHarness.ThrowsAsync(ErrorCode.QueueFull, () => h.SubmitAsync("one-task"));
        Assert.Equal(750, ex.Error.RetryAfterMs);
        Assert.True(ex.Retryable);
        // The early, exception-free answer agrees; it says nothing for what SubmitAsync would refuse otherwise.
        var early = h.Engine.QueueFullRefusal(EngineHarness.Tenant, "one-task", 0);
        Assert.Equal((ErrorCode.QueueFull, 750), (early?.Code, early?.RetryAfterMs));
        Assert.Null(h.Engine.QueueFullRefusal(EngineHarness.Tenant, "no-such-workflow", 0));
        Assert.Null(h.Engine.QueueFullRefusal(EngineHarness.Tenant, "one-task", 99));
        Assert.Null(h.Engine.QueueFullRefusal("other", "one-task", 0));
        // Another tenant's queue is separate.
        await h.RegisterAsync(OneTask(), "other");
        await h.SubmitAsync("one-task", tenant: "other");

        // Dispatch drains the queue and makes room.
        var executor = h.Connect(slots: 1);
        await executor.NextAsync();
        await h.SubmitAsync("one-task");
        var queue = Assert.Single(h.Engine.GetStats(EngineHarness.Tenant).Queues, q => q.TenantId == EngineHarness.Tenant);
        Assert.Equal(2, queue.Depth);
    }

    [Fact]
    public async Task CancelStopsTheRunAndRefusesLateResults()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(FanOutJoin());
        var executor = h.Connect();
        var run = await h.SubmitAsync("fan-out");
        var a = await executor.NextAsync();

        var summary = await h.Engine.CancelRunAsync(EngineHarness.Tenant, run.RunId, "operator said so");
        Assert.Equal(RunStatus.Cancelled, summary.Status);
        var state = await h.GetRunAsync(run.RunId);
        Assert.Equal(RunStatus.Cancelled, state.Status);
        Assert.All(state.Nodes.Values, n => Assert.Equal(NodeStatus.Cancelled, n.Status));
        Assert.Equal("operator said so", state.Events.Single(e => e.Type == RunEventType.RunCancelled).Detail);

        await EngineHarness.ThrowsAsync(ErrorCode.AttemptSuperseded, () => h.SucceedAsync(executor, a));
        await EngineHarness.ThrowsAsync(ErrorCode.RunStateConflict, async () => await h.Engine.CancelRunAsync(EngineHarness.Tenant, run.RunId, null));
        await EngineHarness.ThrowsAsync(ErrorCode.RunStateConflict, async () => await h.Engine.ResumeRunAsync(EngineHarness.Tenant, run.RunId));
        await EngineHarness.ThrowsAsync(ErrorCode.RunNotFound, async () => await h.Engine.CancelRunAsync("other", run.RunId, null));
        await EngineHarness.ThrowsAsync(ErrorCode.RunNotFound, async () => await h.Engine.CancelRunAsync(EngineHarness.Tenant, "run_missing", null));
        Assert.Null(await h.Engine.GetRunAsync("other", run.RunId));
        Assert.Equal(0, h.Engine.GetStats(null).RunsActive);
    }

    [Fact]
    public async Task SuspendRecordsRunningResultsButStartsNothingUntilResume()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(Define("chain", TaskNode("a"), TaskNode("b", "a")));
        var executor = h.Connect();
        var run = await h.SubmitAsync("chain");
        var a = await executor.NextAsync();

        Assert.Equal(RunStatus.Suspended, (await h.Engine.SuspendRunAsync(EngineHarness.Tenant, run.RunId)).Status);
        await EngineHarness.ThrowsAsync(ErrorCode.RunStateConflict, async () => await h.Engine.SuspendRunAsync(EngineHarness.Tenant, run.RunId));
        var ack = await h.SucceedAsync(executor, a, """{"a":1}""");
        Assert.False(ack.Duplicate);
        var suspended = await h.GetRunAsync(run.RunId);
        Assert.Equal(RunStatus.Suspended, suspended.Status);
        Assert.Equal(NodeStatus.Completed, suspended.Nodes["a"].Status);
        Assert.Equal(NodeStatus.Queued, suspended.Nodes["b"].Status);
        // The result was applied synchronously: had b been dispatched, the push would be there already.
        Assert.Equal(0, executor.Untaken);

        Assert.Equal(RunStatus.Running, (await h.Engine.ResumeRunAsync(EngineHarness.Tenant, run.RunId)).Status);
        var b = await executor.NextAsync();
        Assert.Equal("b", b.NodeId);
        Assert.Equal(1, b.Attempt);
        await h.SucceedAsync(executor, b);
        var done = await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        Assert.Contains(done.Events, e => e.Type == RunEventType.RunSuspended);
        Assert.Contains(done.Events, e => e.Type == RunEventType.RunResumed);
    }

    [Fact]
    public async Task SuspendedRunsQueuedTasksWaitForResume()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        var run = await h.SubmitAsync("one-task");
        await h.Engine.SuspendRunAsync(EngineHarness.Tenant, run.RunId);
        // The task was queued before the suspension: an executor that connects now does not get it.
        var executor = h.Connect();
        Assert.Equal(0, executor.Untaken);
        await h.Engine.ResumeRunAsync(EngineHarness.Tenant, run.RunId);
        var task = await executor.NextAsync();
        Assert.Equal(1, task.Attempt);
        await h.SucceedAsync(executor, task);
        await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
    }

    [Fact]
    public async Task WaitTimerCompletesWhenItsTimeComes()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(WaitTimerFlow(durationMs: 1000));
        var executor = h.Connect();
        var run = await h.SubmitAsync("timer");
        await h.SucceedAsync(executor, await executor.NextAsync());
        var waiting = await h.WaitNodeAsync(run.RunId, "pause", NodeStatus.Queued);
        Assert.Equal(h.NowMs + 1000, waiting.Nodes["pause"].DueAtMs);

        h.AdvanceMs(999);
        Assert.Equal(NodeStatus.Queued, (await h.GetRunAsync(run.RunId)).Nodes["pause"].Status);
        h.AdvanceMs(1);
        var finish = await executor.NextAsync("finish after the timer");
        Assert.Equal("finish", finish.NodeId);
        await h.SucceedAsync(executor, finish);
        await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
    }

    [Fact]
    public async Task SignalAfterTheWaitArmsReleasesIt()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(WaitSignalFlow());
        var executor = h.Connect();
        var run = await h.SubmitAsync("approval");
        await h.SucceedAsync(executor, await executor.NextAsync());
        await h.WaitNodeAsync(run.RunId, "approval", NodeStatus.Queued);

        await h.Engine.SignalRunAsync(EngineHarness.Tenant, run.RunId, "other-signal", null);
        Assert.Equal(NodeStatus.Queued, (await h.GetRunAsync(run.RunId)).Nodes["approval"].Status);
        await h.Engine.SignalRunAsync(EngineHarness.Tenant, run.RunId, "approved", Json("""{"by":"alice"}"""));
        var finish = await executor.NextAsync();
        Assert.Equal("finish", finish.NodeId);
        Assert.Equal("""{"approval":{"by":"alice"}}""", JsonText.Of(finish.Upstream));
        await h.SucceedAsync(executor, finish);
        var done = await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        Assert.Equal(NodeStatus.Skipped, done.Nodes["expired"].Status);
        Assert.Contains(done.Events, e => e.Type == RunEventType.RunSignalled && e.Detail == "approved");
    }

    [Fact]
    public async Task SignalBeforeTheWaitArmsIsKeptForIt()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(WaitSignalFlow());
        var executor = h.Connect();
        var run = await h.SubmitAsync("approval");
        var start = await executor.NextAsync();
        await h.Engine.SignalRunAsync(EngineHarness.Tenant, run.RunId, "approved", Json("\"yes\""));
        Assert.Single((await h.GetRunAsync(run.RunId)).PendingSignals);

        await h.SucceedAsync(executor, start);
        var finish = await executor.NextAsync();
        Assert.Equal("finish", finish.NodeId);
        var state = await h.GetRunAsync(run.RunId);
        Assert.Empty(state.PendingSignals);
        Assert.Equal("\"yes\"", JsonText.Of(state.Nodes["approval"].Output));
        await EngineHarness.ThrowsAsync(ErrorCode.RunNotFound, async () => await h.Engine.SignalRunAsync("other", run.RunId, "approved", null));
    }

    [Fact]
    public async Task SignalWaitTimesOutIntoItsFailureBranch()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(WaitSignalFlow(timeoutMs: 5000));
        var executor = h.Connect();
        var run = await h.SubmitAsync("approval");
        await h.SucceedAsync(executor, await executor.NextAsync());
        await h.WaitNodeAsync(run.RunId, "approval", NodeStatus.Queued);
        h.AdvanceMs(5000);
        var expired = await executor.NextAsync("the FAILURE branch");
        Assert.Equal("expired", expired.NodeId);
        await h.SucceedAsync(executor, expired);
        var done = await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        Assert.Equal(NodeStatus.Failed, done.Nodes["approval"].Status);
        Assert.Equal("TASK_TIMEOUT", done.Nodes["approval"].ErrorCode);
        Assert.Equal(NodeStatus.Skipped, done.Nodes["finish"].Status);
        Assert.Empty(h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()));
        // A signal to a finished run is a conflict.
        await EngineHarness.ThrowsAsync(ErrorCode.RunStateConflict, async () => await h.Engine.SignalRunAsync(EngineHarness.Tenant, run.RunId, "approved", null));
    }

    [Fact]
    public async Task ListRunsFiltersByTenantAndStatusNewestFirst()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        await h.RegisterAsync(OneTask(), "other");
        var executor = h.Connect();
        var first = await h.SubmitAsync("one-task");
        h.AdvanceMs(10);
        var second = await h.SubmitAsync("one-task");
        await h.SubmitAsync("one-task", tenant: "other");
        await h.SucceedAsync(executor, (await executor.NextAsync()));
        await h.WaitStatusAsync(first.RunId, RunStatus.Completed);

        var all = h.Engine.ListRuns(EngineHarness.Tenant, null, 10);
        Assert.Equal([second.RunId, first.RunId], all.Select(r => r.RunId));
        Assert.Equal([second.RunId], h.Engine.ListRuns(EngineHarness.Tenant, RunStatus.Running, 10).Select(r => r.RunId));
        Assert.Equal([first.RunId], h.Engine.ListRuns(EngineHarness.Tenant, RunStatus.Completed, 10).Select(r => r.RunId));
        Assert.Single(h.Engine.ListRuns(EngineHarness.Tenant, null, 1));
        Assert.Single(h.Engine.ListRuns("other", null, 10));
    }

    [Fact]
    public async Task ControlNodesOnlyWorkflowCompletesAtSubmission()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(Define("control", Node("p", NodeType.Parallel), Node("j", NodeType.Join, "p")));
        var run = await h.SubmitAsync("control");
        Assert.Equal(RunStatus.Completed, run.Status);
        Assert.Equal(RunStatus.Completed, (await h.GetRunAsync(run.RunId)).Status);
    }
}
