using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.DeadLetters;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Storage;
using static Wayang.Fast.Execution.Tests.Workflows;

namespace Wayang.Fast.Execution.Tests;

// FinishedRunRetention over the real FASTER store: a finished run is deleted at the first compaction after its
// retention, never before, never while it has a dead letter, and never while it is unfinished.
public sealed class EngineRetentionTests
{
    private static readonly TimeSpan Retention = TimeSpan.FromHours(2);

    private static async Task<(EngineHarness Harness, FasterStateStore Store)> OpenAsync(TempDirectory dir)
    {
        var storage = EngineHarness.SmallStorage(dir.Path);
        // Small segments and no size threshold: every second checkpoint compacts what the first one folded over.
        storage.StoreSegmentBits = 17;
        storage.CompactionMinLogBytes = 1;
        storage.CheckpointJournalBytes = long.MaxValue / 2;
        var store = await FasterStateStore.OpenAsync(storage);
        // The clock moves hours: the unfinished run's lease and attempt timeout must outlast them.
        var options = new ExecutionOptions
        {
            TokenSigningKey = new byte[32],
            FinishedRunRetention = Retention,
            IdempotencyRetention = TimeSpan.FromHours(1),
            LeaseDuration = TimeSpan.FromDays(1),
            DefaultTaskTimeout = TimeSpan.FromDays(1),
        };
        return (await EngineHarness.StartAsync(options, store: store), store);
    }

    private static async Task<string> CompleteOneAsync(EngineHarness h, FakeExecutorChannel executor)
    {
        var run = await h.SubmitAsync("one-task");
        await h.SucceedAsync(executor, await executor.NextAsync());
        await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        return run.RunId;
    }

    // Compaction waits until the log below the read-only address holds twice the live data it copied last time, and
    // every kept run is live: write batches of finished runs, folding the log over, until a compaction has run.
    private static async Task CompactAsync(EngineHarness h, FasterStateStore store, FakeExecutorChannel executor)
    {
        long compactions = store.Metrics.CompactionCount;
        for (int batch = 0; batch < 10 && store.Metrics.CompactionCount == compactions; batch++)
        {
            await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => CompleteOneAsync(h, executor)));
            await store.CheckpointAsync();
            await store.CheckpointAsync();
        }
        Assert.True(store.Metrics.CompactionCount > compactions, "the test's checkpoints did not compact");
    }

    private static async Task<bool> ExistsAsync(EngineHarness h, string runId) => await h.Engine.GetRunAsync(EngineHarness.Tenant, runId) is not null;

    [Fact]
    public async Task Finished_runs_go_at_the_first_compaction_after_their_retention_unless_dead_lettered_or_unfinished()
    {
        using var dir = new TempDirectory("engine");
        var (h, store) = await OpenAsync(dir);
        await using var _ = h;
        await h.RegisterAsync(OneTask());
        await h.RegisterAsync(RetryingTask());
        var executor = h.Connect(slots: 100);

        string old = await CompleteOneAsync(h, executor);
        var failed = await h.SubmitAsync("retrying");
        await h.FailAsync(executor, await executor.NextAsync(), "E", retryable: false);
        await h.WaitStatusAsync(failed.RunId, RunStatus.Failed);
        await h.WaitUntilAsync(() => h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()).Count == 1, "dead letter recorded");
        h.AdvanceMs((long)TimeSpan.FromMinutes(90).TotalMilliseconds);
        string young = await CompleteOneAsync(h, executor);
        var unfinished = await h.SubmitAsync("one-task");
        var leased = await executor.NextAsync();
        Assert.Equal(unfinished.RunId, leased.RunId);

        // 90 minutes on: nothing has reached its retention.
        await CompactAsync(h, store, executor);
        Assert.Equal(0, store.Metrics.ExpiredRecords);
        Assert.True(await ExistsAsync(h, old));

        // 150 minutes after the first run finished: it goes; the dead-lettered one, the young one and the running one stay.
        h.AdvanceMs((long)TimeSpan.FromMinutes(60).TotalMilliseconds);
        await CompactAsync(h, store, executor);
        Assert.False(await ExistsAsync(h, old));
        Assert.True(await ExistsAsync(h, failed.RunId));
        Assert.True(await ExistsAsync(h, young));
        Assert.Equal(RunStatus.Running, (await h.GetRunAsync(unfinished.RunId)).Status);
        Assert.DoesNotContain(h.Engine.ListRuns(EngineHarness.Tenant, null, 1000), r => r.RunId == old);

        // Once its dead letter is discarded, the failed run goes at the next compaction; the unfinished one still stays.
        var dl = Assert.Single(h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()));
        Assert.Equal(1, await h.Engine.DiscardDeadLettersAsync(EngineHarness.Tenant, [dl.Id], null));
        h.AdvanceMs((long)Retention.TotalMilliseconds);
        await CompactAsync(h, store, executor);
        Assert.False(await ExistsAsync(h, failed.RunId));
        Assert.False(await ExistsAsync(h, young));
        await h.SucceedAsync(executor, leased);
        await h.WaitStatusAsync(unfinished.RunId, RunStatus.Completed);
    }

    // Idempotency keys past their window go at compaction too (reads already ignored them); the run they named stays for
    // its own, longer retention, and the key can be used again for a new run.
    [Fact]
    public async Task Idempotency_keys_past_their_window_go_at_compaction_and_their_run_stays()
    {
        using var dir = new TempDirectory("engine");
        var (h, store) = await OpenAsync(dir);
        await using var _ = h;
        await h.RegisterAsync(OneTask());
        var executor = h.Connect(slots: 100);
        var first = await h.SubmitAsync("one-task", key: "order-1");
        await h.SucceedAsync(executor, await executor.NextAsync());
        await h.WaitStatusAsync(first.RunId, RunStatus.Completed);
        var idempotencyPrefix = System.Text.Encoding.UTF8.GetBytes("idem/");
        Assert.Single(store.ScanPrefix(idempotencyPrefix));

        await CompactAsync(h, store, executor);
        Assert.Single(store.ScanPrefix(idempotencyPrefix));

        h.AdvanceMs((long)TimeSpan.FromMinutes(61).TotalMilliseconds);
        await CompactAsync(h, store, executor);
        Assert.Empty(store.ScanPrefix(idempotencyPrefix));
        Assert.True(await ExistsAsync(h, first.RunId));
        var again = await h.SubmitAsync("one-task", key: "order-1");
        Assert.False(again.Replayed);
        Assert.NotEqual(first.RunId, again.RunId);
    }
}
