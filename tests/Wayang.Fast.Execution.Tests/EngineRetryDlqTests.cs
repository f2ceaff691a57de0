using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Engine;
using static Wayang.Fast.Execution.Tests.Workflows;

namespace Wayang.Fast.Execution.Tests;

public sealed class EngineRetryDlqTests
{
    // Fails every attempt of the RetryingTask workflow (3 attempts, 100 ms then 200 ms) and returns the run id.
    private static async Task<(string RunId, FakeExecutorChannel Executor)> ExhaustAsync(EngineHarness h, string id = "retrying")
    {
        await h.RegisterAsync(RetryingTask(id));
        var executor = h.Connect();
        var run = await h.SubmitAsync(id, """{"order":7}""");

        var first = await executor.NextAsync();
        await h.FailAsync(executor, first, "E1");
        var retrying = await h.GetRunAsync(run.RunId);
        Assert.Equal(NodeStatus.Retrying, retrying.Nodes["flaky"].Status);
        Assert.Equal(h.NowMs + 100, retrying.Nodes["flaky"].DueAtMs);

        h.AdvanceMs(99);
        Assert.Equal(NodeStatus.Retrying, (await h.GetRunAsync(run.RunId)).Nodes["flaky"].Status);
        h.AdvanceMs(1);
        var second = await executor.NextAsync("attempt 2");
        Assert.Equal(2, second.Attempt);
        Assert.Equal($"{run.RunId}:flaky:2", second.TaskId);
        await h.FailAsync(executor, second, "E2");
        Assert.Equal(h.NowMs + 200, (await h.GetRunAsync(run.RunId)).Nodes["flaky"].DueAtMs);

        h.AdvanceMs(200);
        var third = await executor.NextAsync("attempt 3");
        Assert.Equal(3, third.Attempt);
        await h.FailAsync(executor, third, "E3");
        return (run.RunId, executor);
    }

    [Fact]
    public async Task RetriesWithBackoffThenDeadLettersWithFullContext()
    {
        await using var h = await EngineHarness.StartAsync();
        var (runId, executor) = await ExhaustAsync(h);

        var run = await h.WaitStatusAsync(runId, RunStatus.Failed);
        Assert.Equal("TASK_FAILED", run.ErrorCode);
        var node = run.Nodes["flaky"];
        Assert.Equal(NodeStatus.Failed, node.Status);
        Assert.Equal(3, node.Attempt);
        Assert.Equal(["E1", "E2", "E3"], node.Attempts.Select(a => a.ErrorCode));
        Assert.Equal(2, run.Events.Count(e => e.Type == RunEventType.NodeRetryScheduled));

        // The dead letter is recorded once the failure is durable, a moment after the run reads as failed.
        await h.WaitUntilAsync(() => h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()).Count > 0, "dead letter recorded");
        var dl = Assert.Single(h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()));
        Assert.StartsWith("dlq_", dl.Id, StringComparison.Ordinal);
        Assert.Equal(runId, dl.RunId);
        Assert.Equal("retrying", dl.WorkflowId);
        Assert.Equal(1, dl.WorkflowVersion);
        Assert.Equal("flaky", dl.NodeId);
        Assert.Equal(Worker, dl.ExecutorType);
        Assert.Equal("""{"order":7}""", JsonText.Of(dl.Input));
        Assert.Equal("E3", dl.LastErrorCode);
        Assert.Equal("it broke", dl.LastErrorMessage);
        Assert.Equal(executor.Handle.ExecutorId, dl.ExecutorId);
        Assert.Equal([1, 2, 3], dl.Attempts.Select(a => a.Attempt));
        Assert.All(dl.Attempts, a => Assert.NotNull(a.EndedAtMs));
        Assert.Contains(run.Events, e => e.Type == RunEventType.NodeDeadLettered && e.Detail == dl.Id);
        Assert.Same(dl, h.Engine.GetDeadLetter(EngineHarness.Tenant, dl.Id));
        Assert.Null(h.Engine.GetDeadLetter("other", dl.Id));

        var stats = h.Engine.GetStats(EngineHarness.Tenant);
        Assert.Equal(2, stats.TasksRetried);
        Assert.Equal(1, stats.TasksFailed);
        Assert.Equal(1, stats.DeadLettered);
    }

    [Fact]
    public async Task NonRetryableFailuresFailAtOnce()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(RetryingTask());
        var executor = h.Connect();
        var byCode = await h.SubmitAsync("retrying");
        await h.FailAsync(executor, await executor.NextAsync(), "BAD_INPUT");
        Assert.Equal(1, (await h.WaitStatusAsync(byCode.RunId, RunStatus.Failed)).Nodes["flaky"].Attempt);

        var byFlag = await h.SubmitAsync("retrying");
        await h.FailAsync(executor, await executor.NextAsync(), "E", retryable: false);
        await h.WaitStatusAsync(byFlag.RunId, RunStatus.Failed);
        await h.WaitUntilAsync(() => h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()).Count == 2, "both dead letters recorded");
    }

    [Fact]
    public async Task ReplayReopensTheFailedRunWithANewAttempt()
    {
        await using var h = await EngineHarness.StartAsync();
        var (runId, executor) = await ExhaustAsync(h);
        await h.WaitStatusAsync(runId, RunStatus.Failed);
        // The dead letter is recorded once the failure is durable, a moment after the run reads as failed.
        await h.WaitUntilAsync(() => h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()).Count > 0, "dead letter recorded");
        var dl = Assert.Single(h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()));

        var outcome = Assert.Single(await h.Engine.ReplayDeadLettersAsync(EngineHarness.Tenant, [dl.Id], null, 0));
        Assert.True(outcome.Replayed, outcome.Error?.ToString());
        Assert.Equal(runId, outcome.RunId);
        Assert.Empty(h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()));
        var reopened = await h.GetRunAsync(runId);
        Assert.Equal(RunStatus.Running, reopened.Status);
        Assert.Null(reopened.ErrorCode);

        var fourth = await executor.NextAsync("the replayed attempt");
        Assert.Equal(4, fourth.Attempt);
        Assert.Equal($"{runId}:flaky:4", fourth.TaskId);
        await h.SucceedAsync(executor, fourth, """{"ok":true}""");
        var done = await h.WaitStatusAsync(runId, RunStatus.Completed);
        Assert.Equal(4, done.Nodes["flaky"].Attempt);
        Assert.Contains(done.Events, e => e.Type == RunEventType.NodeReplayed && e.Detail == dl.Id);
        Assert.Null(h.Engine.GetDeadLetter(EngineHarness.Tenant, dl.Id));

        var again = Assert.Single(await h.Engine.ReplayDeadLettersAsync(EngineHarness.Tenant, [dl.Id], null, 0));
        Assert.False(again.Replayed);
        Assert.Equal(ErrorCode.DeadLetterNotFound, again.Error!.Code);
    }

    [Fact]
    public async Task ReplayOfACompletedRunsEntryConflictsAndKeepsItThenDiscardRemovesIt()
    {
        await using var h = await EngineHarness.StartAsync();
        var optional = TaskNode("optional");
        optional.Critical = false;
        await h.RegisterAsync(Define("soft", optional, TaskNode("main")));
        var executor = h.Connect();
        var run = await h.SubmitAsync("soft");
        var tasks = new[] { await executor.NextAsync(), await executor.NextAsync() };
        await h.FailAsync(executor, tasks.Single(t => t.NodeId == "optional"));
        await h.SucceedAsync(executor, tasks.Single(t => t.NodeId == "main"));
        var done = await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        Assert.Equal(NodeStatus.Failed, done.Nodes["optional"].Status);

        // The dead letter is recorded once the failure is durable, a moment after the run reads as failed.
        await h.WaitUntilAsync(() => h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()).Count > 0, "dead letter recorded");
        var dl = Assert.Single(h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()));
        var outcome = Assert.Single(await h.Engine.ReplayDeadLettersAsync(EngineHarness.Tenant, [], new DeadLetterFilter(), 0));
        Assert.False(outcome.Replayed);
        Assert.Equal(ErrorCode.RunStateConflict, outcome.Error!.Code);
        Assert.NotNull(h.Engine.GetDeadLetter(EngineHarness.Tenant, dl.Id));

        Assert.Equal(0, await h.Engine.DiscardDeadLettersAsync("other", [dl.Id], null));
        Assert.Equal(1, await h.Engine.DiscardDeadLettersAsync(EngineHarness.Tenant, [dl.Id], null));
        Assert.Null(h.Engine.GetDeadLetter(EngineHarness.Tenant, dl.Id));
        Assert.Equal(0, await h.Engine.DiscardDeadLettersAsync(EngineHarness.Tenant, [dl.Id], null));
    }

    [Fact]
    public async Task ListFiltersAndReplayByFilterIsPaced()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask("w1"));
        await h.RegisterAsync(OneTask("w2"));
        var executor = h.Connect();
        var runs = new List<string>();
        foreach (var (wf, code) in new[] { ("w1", "A"), ("w1", "B"), ("w2", "A") })
        {
            runs.Add((await h.SubmitAsync(wf)).RunId);
            await h.FailAsync(executor, await executor.NextAsync(), code);
            h.AdvanceMs(10);
        }
        var all = h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter());
        Assert.Equal(3, all.Count);
        Assert.Equal(runs.AsEnumerable().Reverse(), all.Select(d => d.RunId));
        Assert.Equal(2, h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter(WorkflowId: "w1")).Count);
        Assert.Equal(2, h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter(ErrorCode: "A")).Count);
        Assert.Single(h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter(WorkflowId: "w1", ErrorCode: "A")));
        Assert.Single(h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter(Limit: 1)));
        Assert.Single(h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter(FromMs: all[0].DeadLetteredAtMs)));
        Assert.Equal(2, h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter(ToMs: all[1].DeadLetteredAtMs)).Count);
        Assert.Empty(h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter(NodeId: "nope")));
        Assert.Empty(h.Engine.ListDeadLetters("other", new DeadLetterFilter()));

        // Two entries at one per second: the second waits for a second of (fake) time.
        var replay = h.Engine.ReplayDeadLettersAsync(EngineHarness.Tenant, [], new DeadLetterFilter(WorkflowId: "w1"), 1).AsTask();
        await h.WaitUntilAsync(() => h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter(WorkflowId: "w1")).Count == 1, "the first replay");
        Assert.False(replay.IsCompleted);
        // The pacing delay may be created just after an advance; keep time moving until the replay is done.
        var limit = DateTime.UtcNow.AddSeconds(30);
        while (!replay.IsCompleted && DateTime.UtcNow < limit)
        {
            h.AdvanceMs(1000);
            await Task.WhenAny(replay, Task.Delay(5));
        }
        var outcomes = await replay;
        Assert.Equal(2, outcomes.Count);
        Assert.All(outcomes, o => Assert.True(o.Replayed));
        Assert.Single(h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()));
        var replayed = new[] { await executor.NextAsync(), await executor.NextAsync() };
        Assert.All(replayed, t => Assert.Equal(2, t.Attempt));
    }

    [Fact]
    public async Task AttemptTimeoutIsRetried()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(RetryingTask());
        var executor = h.Connect();
        var run = await h.SubmitAsync("retrying");
        var first = await executor.NextAsync();
        Assert.Equal(h.NowMs + 5000, first.DeadlineAtMs);

        h.AdvanceMs(4999);
        Assert.Equal(NodeStatus.Executing, (await h.GetRunAsync(run.RunId)).Nodes["flaky"].Status);
        h.AdvanceMs(1);
        await h.WaitNodeAsync(run.RunId, "flaky", NodeStatus.Retrying);
        h.AdvanceMs(100);
        var second = await executor.NextAsync("attempt 2 after the timeout");
        Assert.Equal(2, second.Attempt);
        await h.SucceedAsync(executor, second);
        var done = await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        Assert.Equal("TASK_TIMEOUT", done.Nodes["flaky"].Attempts[0].ErrorCode);
    }

    [Fact]
    public async Task FailureTransitionHandlesAFailedNodeWithoutDeadLettering()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(Define("handled", TaskNode("risky").Then(OnFailure("cleanup")), TaskNode("cleanup")));
        var executor = h.Connect();
        var run = await h.SubmitAsync("handled");
        await h.FailAsync(executor, await executor.NextAsync());
        var cleanup = await executor.NextAsync();
        Assert.Equal("cleanup", cleanup.NodeId);
        await h.SucceedAsync(executor, cleanup);
        await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        Assert.Empty(h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()));
    }

    [Fact]
    public async Task CriticalFailureCancelsTheRestOfTheRun()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(FanOutJoin());
        var executor = h.Connect();
        var run = await h.SubmitAsync("fan-out");
        await h.SucceedAsync(executor, await executor.NextAsync());
        var b = await executor.NextAsync();
        var c = await executor.NextAsync();
        await h.FailAsync(executor, b);
        var failed = await h.WaitStatusAsync(run.RunId, RunStatus.Failed);
        Assert.Equal(NodeStatus.Cancelled, failed.Nodes[c.NodeId].Status);
        Assert.Equal(NodeStatus.Cancelled, failed.Nodes["d"].Status);
        await EngineHarness.ThrowsAsync(ErrorCode.AttemptSuperseded, () => h.SucceedAsync(executor, c));
    }
}
