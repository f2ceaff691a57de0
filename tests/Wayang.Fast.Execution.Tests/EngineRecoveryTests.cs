using Microsoft.Extensions.Time.Testing;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Engine;
using static Wayang.Fast.Execution.Tests.Workflows;

namespace Wayang.Fast.Execution.Tests;

// Restarts over the real FASTER store: the engine and the store are disposed mid-run and opened again on the same
// directory, with the same (fake) clock going on.
public sealed class EngineRecoveryTests
{
    private static ExecutionOptions Options() => new() { TokenSigningKey = null };

    private static Task<EngineHarness> OpenAsync(TempDirectory dir, FakeTimeProvider? time = null, ExecutionOptions? options = null) =>
        EngineHarness.StartOnDiskAsync(dir.Path, time, options ?? Options());

    [Fact]
    public async Task QueuedAndLeasedTasksComeBackAsTheSameAttempt()
    {
        using var dir = new TempDirectory("engine");
        string leasedRun, queuedRun;
        TaskAssignment leased;
        FakeTimeProvider time;
        await using (var h = await OpenAsync(dir))
        {
            time = h.Time;
            await h.RegisterAsync(OneTask());
            var executor = h.Connect(slots: 1);
            leasedRun = (await h.SubmitAsync("one-task", """{"i":1}""")).RunId;
            h.AdvanceMs(1);
            queuedRun = (await h.SubmitAsync("one-task", """{"i":2}""")).RunId;
            leased = await executor.NextAsync();
            Assert.Equal(leasedRun, leased.RunId);
        }

        await using var reopened = await OpenAsync(dir, time);
        var fresh = reopened.Connect();
        var first = await fresh.NextAsync();
        var second = await fresh.NextAsync();
        Assert.Equal([leased.TaskId, $"{queuedRun}:start:1"], new[] { first.TaskId, second.TaskId });
        Assert.Equal("""{"i":2}""", JsonText.Of(second.Input));

        // The executor that held the lease before the restart reports with its old token (the key survived too).
        var late = await reopened.Engine.CompleteTaskAsync(EngineHarness.Tenant, false, new TaskResult(leased.Token, true, null, null, null));
        Assert.False(late.Duplicate);
        Assert.True((await reopened.SucceedAsync(fresh, first)).Duplicate);
        await reopened.SucceedAsync(fresh, second);
        await reopened.WaitStatusAsync(leasedRun, RunStatus.Completed);
        await reopened.WaitStatusAsync(queuedRun, RunStatus.Completed);
    }

    [Fact]
    public async Task RetryAndWaitTimersSurviveARestart()
    {
        using var dir = new TempDirectory("engine");
        string retryRun, waitRun;
        FakeTimeProvider time;
        await using (var h = await OpenAsync(dir))
        {
            time = h.Time;
            await h.RegisterAsync(RetryingTask());
            await h.RegisterAsync(WaitTimerFlow(durationMs: 1000));
            var executor = h.Connect();
            retryRun = (await h.SubmitAsync("retrying")).RunId;
            await h.FailAsync(executor, await executor.NextAsync());
            waitRun = (await h.SubmitAsync("timer")).RunId;
            await h.SucceedAsync(executor, await executor.NextAsync());
            await h.WaitNodeAsync(waitRun, "pause", NodeStatus.Queued);
        }

        await using var reopened = await OpenAsync(dir, time);
        var executor2 = reopened.Connect();
        Assert.Equal(NodeStatus.Retrying, (await reopened.GetRunAsync(retryRun)).Nodes["flaky"].Status);
        reopened.AdvanceMs(100);
        var retry = await executor2.NextAsync("the retry after the restart");
        Assert.Equal((retryRun, 2), (retry.RunId, retry.Attempt));
        reopened.AdvanceMs(900);
        var finish = await executor2.NextAsync("the node after the WAIT timer");
        Assert.Equal((waitRun, "finish"), (finish.RunId, finish.NodeId));
        await reopened.SucceedAsync(executor2, retry);
        await reopened.SucceedAsync(executor2, finish);
        await reopened.WaitStatusAsync(retryRun, RunStatus.Completed);
        await reopened.WaitStatusAsync(waitRun, RunStatus.Completed);
    }

    [Fact]
    public async Task AcceptedResultsStayDuplicatesAndFinishedRunsStayReadable()
    {
        using var dir = new TempDirectory("engine");
        string doneRun, chainRun, key;
        TaskAssignment doneTask, aTask;
        FakeTimeProvider time;
        await using (var h = await OpenAsync(dir))
        {
            time = h.Time;
            await h.RegisterAsync(OneTask());
            await h.RegisterAsync(Define("chain", TaskNode("a"), TaskNode("b", "a")));
            await h.RegisterAsync(RetryingTask("doomed", maxAttempts: 1));
            var executor = h.Connect();
            key = "submit-1";
            doneRun = (await h.SubmitAsync("one-task", key: key)).RunId;
            doneTask = await executor.NextAsync();
            await h.SucceedAsync(executor, doneTask, """{"r":1}""");
            chainRun = (await h.SubmitAsync("chain")).RunId;
            aTask = await executor.NextAsync();
            await h.SucceedAsync(executor, aTask);
            await executor.NextAsync();
            await h.SubmitAsync("doomed");
            await h.FailAsync(executor, await executor.NextAsync());
            await h.WaitStatusAsync(doneRun, RunStatus.Completed);
        }

        await using var reopened = await OpenAsync(dir, time);
        var done = await reopened.GetRunAsync(doneRun);
        Assert.Equal(RunStatus.Completed, done.Status);
        Assert.Equal("""{"r":1}""", JsonText.Of(done.Nodes["start"].Output));
        var dup = await reopened.Engine.CompleteTaskAsync(EngineHarness.Tenant, false, new TaskResult(doneTask.Token, true, null, null, null));
        Assert.True(dup.Duplicate);
        var dupA = await reopened.Engine.CompleteTaskAsync(EngineHarness.Tenant, false, new TaskResult(aTask.Token, false, null, "X", null));
        Assert.True(dupA.Duplicate);
        var replayed = await reopened.SubmitAsync("one-task", key: key);
        Assert.Equal((doneRun, true, RunStatus.Completed), (replayed.RunId, replayed.Replayed, replayed.Status));
        Assert.Single(reopened.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()));
        Assert.Equal(RunStatus.Failed, reopened.Engine.ListRuns(EngineHarness.Tenant, RunStatus.Failed, 10).Single().Status);

        // The chain's b was leased at the restart: it comes back, and the run finishes.
        var executor2 = reopened.Connect();
        var b = await executor2.NextAsync();
        Assert.Equal((chainRun, "b", 1), (b.RunId, b.NodeId, b.Attempt));
        await reopened.SucceedAsync(executor2, b);
        await reopened.WaitStatusAsync(chainRun, RunStatus.Completed);
    }

    [Fact]
    public async Task SuspendedRunsStaySuspendedAcrossARestart()
    {
        using var dir = new TempDirectory("engine");
        string runId;
        FakeTimeProvider time;
        await using (var h = await OpenAsync(dir))
        {
            time = h.Time;
            await h.RegisterAsync(OneTask());
            runId = (await h.SubmitAsync("one-task")).RunId;
            await h.Engine.SuspendRunAsync(EngineHarness.Tenant, runId);
        }

        await using var reopened = await OpenAsync(dir, time);
        var executor = reopened.Connect();
        Assert.Equal(RunStatus.Suspended, (await reopened.GetRunAsync(runId)).Status);
        Assert.Equal(0, executor.Untaken);
        await reopened.Engine.ResumeRunAsync(EngineHarness.Tenant, runId);
        await reopened.SucceedAsync(executor, await executor.NextAsync());
        await reopened.WaitStatusAsync(runId, RunStatus.Completed);
    }
}
