using System.Text;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using static Wayang.Fast.Execution.Tests.Workflows;

namespace Wayang.Fast.Execution.Tests;

public sealed class EngineIdempotencyTests
{
    [Fact]
    public async Task SameKeySameRequestReturnsTheOriginalRun()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        var first = await h.SubmitAsync("one-task", """{"a":1}""", key: "order-1");
        Assert.False(first.Replayed);
        var again = await h.SubmitAsync("one-task", """{"a":1}""", key: "order-1");
        Assert.True(again.Replayed);
        Assert.Equal(first.RunId, again.RunId);
        Assert.Equal(RunStatus.Running, again.Status);
        Assert.Single(h.Engine.ListRuns(EngineHarness.Tenant, null, 10));
        Assert.Equal("order-1", (await h.GetRunAsync(first.RunId)).IdempotencyKey);

        // The key is the tenant's: another tenant's same key is another run.
        await h.RegisterAsync(OneTask(), "other");
        var other = await h.SubmitAsync("one-task", """{"a":1}""", key: "order-1", tenant: "other");
        Assert.False(other.Replayed);
        Assert.NotEqual(first.RunId, other.RunId);

        // A replay after the run finished reports its final status.
        var executor = h.Connect();
        await h.SucceedAsync(executor, await executor.NextAsync());
        await h.WaitStatusAsync(first.RunId, RunStatus.Completed);
        var late = await h.SubmitAsync("one-task", """{"a":1}""", key: "order-1");
        Assert.Equal((first.RunId, RunStatus.Completed, true), (late.RunId, late.Status, late.Replayed));
    }

    [Fact]
    public async Task SameKeyDifferentRequestConflicts()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        await h.RegisterAsync(OneTask("second"));
        await h.SubmitAsync("one-task", """{"a":1}""", key: "k");
        await EngineHarness.ThrowsAsync(ErrorCode.IdempotencyKeyConflict, () => h.SubmitAsync("one-task", """{"a":2}""", key: "k"));
        await EngineHarness.ThrowsAsync(ErrorCode.IdempotencyKeyConflict, () => h.SubmitAsync("one-task", null, key: "k"));
        await EngineHarness.ThrowsAsync(ErrorCode.IdempotencyKeyConflict, () => h.SubmitAsync("one-task", """{"a":1}""", key: "k", version: 1));
        await EngineHarness.ThrowsAsync(ErrorCode.IdempotencyKeyConflict, () => h.SubmitAsync("second", """{"a":1}""", key: "k"));
        Assert.Single(h.Engine.ListRuns(EngineHarness.Tenant, null, 10));
    }

    [Fact]
    public async Task ConcurrentSubmissionsWithOneKeyMakeOneRun()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        var results = await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(() => h.SubmitAsync("one-task", """{"a":1}""", key: "same"))));
        Assert.Single(results.Select(r => r.RunId).Distinct());
        Assert.Single(results, r => !r.Replayed);
        Assert.Single(h.Engine.ListRuns(EngineHarness.Tenant, null, 100));
    }

    [Fact]
    public async Task ExpiredKeysAreForgottenAndSweptHourly()
    {
        var options = EngineHarness.DefaultOptions();
        options.IdempotencyRetention = TimeSpan.FromMinutes(30);
        await using var h = await EngineHarness.StartAsync(options);
        await h.RegisterAsync(OneTask());
        var first = await h.SubmitAsync("one-task", """{"a":1}""", key: "k");
        h.AdvanceMs(29 * 60_000);
        await EngineHarness.ThrowsAsync(ErrorCode.IdempotencyKeyConflict, () => h.SubmitAsync("one-task", """{"a":2}""", key: "k"));
        h.AdvanceMs(60_000);
        // Expired: counts as absent and is overwritten.
        var second = await h.SubmitAsync("one-task", """{"a":2}""", key: "k");
        Assert.False(second.Replayed);
        Assert.NotEqual(first.RunId, second.RunId);

        // Now at +30 min. The hourly sweep runs at +60 and +120 min.
        await h.SubmitAsync("one-task", key: "old");
        h.AdvanceMs(20 * 60_000);
        await h.SubmitAsync("one-task", key: "fresh");
        var oldKey = Encoding.UTF8.GetBytes($"idem/{EngineHarness.Tenant}/old");
        var freshKey = Encoding.UTF8.GetBytes($"idem/{EngineHarness.Tenant}/fresh");
        h.AdvanceMs(10 * 60_000);
        await h.WaitUntilAsync(() => !h.Store.TryGet(oldKey, out _), "the sweep of an expired key");
        Assert.True(h.Store.TryGet(freshKey, out _));
        h.AdvanceMs(60 * 60_000);
        await h.WaitUntilAsync(() => !h.Store.TryGet(freshKey, out _), "the next sweep");
    }

    [Fact]
    public async Task KeyWhoseRunRecordWasLostCreatesTheRunUnderTheRecordedId()
    {
        var store = new InMemoryStateStore();
        await using var h = await EngineHarness.StartAsync(store: store);
        await h.RegisterAsync(OneTask());
        var first = await h.SubmitAsync("one-task", """{"a":1}""", key: "k");
        await h.Engine.DisposeAsync();
        // A crash between the key's write and the run's: the key is durable, the run is not.
        await store.DeleteAsync(Encoding.UTF8.GetBytes("run/" + first.RunId));
        await h.RestartAsync();

        var again = await h.SubmitAsync("one-task", """{"a":1}""", key: "k");
        Assert.True(again.Replayed);
        Assert.Equal(first.RunId, again.RunId);
        var executor = h.Connect();
        var task = await executor.NextAsync();
        Assert.Equal($"{first.RunId}:start:1", task.TaskId);
        await h.SucceedAsync(executor, task);
        await h.WaitStatusAsync(first.RunId, RunStatus.Completed);
    }
}
