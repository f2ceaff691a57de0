using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Engine;
using static Wayang.Fast.Execution.Tests.Workflows;

namespace Wayang.Fast.Execution.Tests;

public sealed class EngineResultTests
{
    [Fact]
    public async Task DuplicateResultGetsTheSameAckAndChangesNothing()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(Define("chain", TaskNode("a"), TaskNode("b", "a")));
        var executor = h.Connect();
        var run = await h.SubmitAsync("chain");
        var a = await executor.NextAsync();

        var ack = await h.SucceedAsync(executor, a, """{"first":true}""");
        Assert.False(ack.Duplicate);
        var b = await executor.NextAsync();
        var before = await h.GetRunAsync(run.RunId);

        // Resent after a reconnect, even with another outcome: the first accepted result stands.
        var again = await h.SucceedAsync(executor, a, """{"first":false}""");
        Assert.Equal(new TaskResultAck(run.RunId, "a", 1, true), again);
        var failedAgain = await h.FailAsync(executor, a);
        Assert.True(failedAgain.Duplicate);

        var after = await h.GetRunAsync(run.RunId);
        Assert.Equal(before.Events.Count, after.Events.Count);
        Assert.Equal("""{"first":true}""", JsonText.Of(after.Nodes["a"].Output));
        Assert.Equal(0, executor.Untaken);

        await h.SucceedAsync(executor, b);
        await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        // The run has left memory; its record still answers duplicates.
        Assert.True((await h.SucceedAsync(executor, b)).Duplicate);
        Assert.True((await h.SucceedAsync(executor, a)).Duplicate);
        Assert.Equal(2, h.Engine.GetStats(null).TasksCompleted);
    }

    [Fact]
    public async Task ResultForATimedOutAttemptIsSuperseded()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(RetryingTask());
        var executor = h.Connect();
        var run = await h.SubmitAsync("retrying");
        var first = await executor.NextAsync();

        h.AdvanceMs(5000);
        var retrying = await h.WaitNodeAsync(run.RunId, "flaky", NodeStatus.Retrying);
        Assert.Equal("TASK_TIMEOUT", retrying.Nodes["flaky"].ErrorCode);
        Assert.Contains(retrying.Events, e => e.Type == RunEventType.NodeTimedOut && e.Attempt == 1);
        await EngineHarness.ThrowsAsync(ErrorCode.AttemptSuperseded, () => h.SucceedAsync(executor, first));

        h.AdvanceMs(100);
        var second = await executor.NextAsync("attempt 2");
        Assert.Equal(2, second.Attempt);
        Assert.Equal($"{run.RunId}:flaky:2", second.TaskId);
        await EngineHarness.ThrowsAsync(ErrorCode.AttemptSuperseded, () => h.SucceedAsync(executor, first));
        Assert.False((await h.SucceedAsync(executor, second)).Duplicate);
        await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        await EngineHarness.ThrowsAsync(ErrorCode.AttemptSuperseded, () => h.SucceedAsync(executor, first));
    }

    [Fact]
    public async Task MalformedOrForgedTokensAreInvalid()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        var executor = h.Connect();
        await h.SubmitAsync("one-task");
        var task = await executor.NextAsync();

        await EngineHarness.ThrowsAsync(ErrorCode.TaskTokenInvalid, async () =>
            await h.Engine.CompleteTaskAsync(EngineHarness.Tenant, false, new TaskResult("nonsense", true, null, null, null)));
        var last = task.Token[^1] == 'A' ? 'B' : 'A';
        await EngineHarness.ThrowsAsync(ErrorCode.TaskTokenInvalid, async () =>
            await h.Engine.CompleteTaskAsync(EngineHarness.Tenant, false, new TaskResult(task.Token[..^1] + last, true, null, null, null)));

        // A token signed with another key.
        var otherOptions = new ExecutionOptions { TokenSigningKey = Enumerable.Repeat((byte)7, 32).ToArray() };
        await using var other = await EngineHarness.StartAsync(otherOptions);
        await other.RegisterAsync(OneTask());
        var otherExecutor = other.Connect();
        await other.SubmitAsync("one-task");
        var foreign = await otherExecutor.NextAsync();
        await EngineHarness.ThrowsAsync(ErrorCode.TaskTokenInvalid, async () =>
            await h.Engine.CompleteTaskAsync(EngineHarness.Tenant, false, new TaskResult(foreign.Token, true, null, null, null)));
    }

    [Fact]
    public async Task TokenExpiresAfterTheAttemptDeadlinePlusGrace()
    {
        var options = EngineHarness.DefaultOptions();
        options.TokenGrace = TimeSpan.FromSeconds(1);
        await using var h = await EngineHarness.StartAsync(options);
        var def = OneTask("short");
        def.Nodes[0].TimeoutMs = 2000;
        await h.RegisterAsync(def);
        var executor = h.Connect();
        var run = await h.SubmitAsync("short");
        var task = await executor.NextAsync();

        h.AdvanceMs(2000);
        await h.WaitStatusAsync(run.RunId, RunStatus.Failed);
        await EngineHarness.ThrowsAsync(ErrorCode.AttemptSuperseded, () => h.SucceedAsync(executor, task));
        h.AdvanceMs(1001);
        await EngineHarness.ThrowsAsync(ErrorCode.TaskTokenExpired, () => h.SucceedAsync(executor, task));
    }

    [Fact]
    public async Task AnotherTenantsConnectionCannotReportButASharedOneCan()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        var shared = h.Connect(tenant: "system", shared: true);
        var run = await h.SubmitAsync("one-task");
        var task = await shared.NextAsync("a shared executor serves every tenant");
        Assert.Equal(EngineHarness.Tenant, task.TenantId);

        await EngineHarness.ThrowsAsync(ErrorCode.TaskTokenInvalid, async () =>
            await h.Engine.CompleteTaskAsync("other", false, new TaskResult(task.Token, true, null, null, null)));
        var ack = await h.Engine.CompleteTaskAsync("system", true, new TaskResult(task.Token, true, null, null, null));
        Assert.False(ack.Duplicate);
        await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        // Finished runs are checked the same way.
        await EngineHarness.ThrowsAsync(ErrorCode.TaskTokenInvalid, async () =>
            await h.Engine.CompleteTaskAsync("other", false, new TaskResult(task.Token, true, null, null, null)));
    }

    [Fact]
    public async Task LeaseExpiryRedeliversTheSameAttempt()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        var executor = h.Connect(slots: 1);
        var run = await h.SubmitAsync("one-task");
        var first = await executor.NextAsync();
        // The SDK grants credit back only after a result; give it here so the redelivery can come to this executor.
        h.Engine.GrantCredit(executor.Handle, 1);

        h.Advance(h.Options.LeaseDuration);
        var again = await executor.NextAsync("the redelivery");
        Assert.Equal(first.TaskId, again.TaskId);
        Assert.Equal(1, again.Attempt);
        Assert.Equal(1, h.Engine.GetStats(null).LeaseExpirations);
        var state = await h.GetRunAsync(run.RunId);
        Assert.Contains(state.Events, e => e.Type == RunEventType.NodeLeaseExpired && e.Attempt == 1);
        Assert.Single(state.Nodes["start"].Attempts);

        // Either delivery's token may report; the first result wins, the other is a duplicate.
        Assert.False((await h.SucceedAsync(executor, first)).Duplicate);
        Assert.True((await h.SucceedAsync(executor, again)).Duplicate);
        await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
    }

    [Fact]
    public async Task HeartbeatsKeepTheLease()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        var executor = h.Connect(slots: 1);
        var run = await h.SubmitAsync("one-task");
        var task = await executor.NextAsync();
        h.Engine.GrantCredit(executor.Handle, 1);
        for (int i = 0; i < 5; i++)
        {
            h.AdvanceMs(20_000);
            h.Engine.Heartbeat(executor.Handle);
        }
        Assert.Equal(0, h.Engine.GetStats(null).LeaseExpirations);
        await h.SucceedAsync(executor, task);
        await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        Assert.Equal(0, h.Engine.GetStats(null).LeaseExpirations);
        Assert.Equal(0, executor.Untaken);
    }

    [Fact]
    public async Task UnregisteredExecutorsTasksGoToAnother()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        var gone = h.Connect(slots: 1);
        var run = await h.SubmitAsync("one-task");
        var first = await gone.NextAsync();
        h.Engine.UnregisterExecutor(gone.Handle);

        var other = h.Connect();
        var again = await other.NextAsync();
        Assert.Equal(first.TaskId, again.TaskId);
        await h.SucceedAsync(other, again);
        var done = await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        Assert.Equal(other.Handle.ExecutorId, done.Nodes["start"].Attempts.Single().ExecutorId);
    }

    [Fact]
    public async Task BrokenChannelKeepsTheTaskForTheNextExecutor()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        var broken = h.Connect(slots: 1);
        broken.Broken = true;
        var run = await h.SubmitAsync("one-task");
        var other = h.Connect();
        var task = await other.NextAsync();
        Assert.Equal(1, task.Attempt);
        await h.SucceedAsync(other, task);
        await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
    }
}
