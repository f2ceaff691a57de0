using System.Globalization;
using static Wayang.Fast.Storage.Tests.TestData;

namespace Wayang.Fast.Storage.Tests;

// Store-log compaction: overwritten records are dropped, BeginAddress moves forward, the hlog segment files
// below it are deleted after the next checkpoint, and every key still reads its latest value, also after reopen.
public sealed class CompactionTests
{
    private const int Keys = 8;
    private const int Rounds = 200;

    private static byte[] Key(int k) => Bytes("compact/" + k.ToString(CultureInfo.InvariantCulture));

    // A value longer than the key's previous one cannot be updated in place, so (like every update after a
    // fold-over checkpoint) it appends a new record and leaves the old one dead in the log.
    private static byte[] Value(int k, int round) =>
        Bytes("v" + round.ToString(CultureInfo.InvariantCulture) + ":" + new string((char)('a' + k), 200 + round % 200 * 3));

    // One task per key (so each key's writes are ordered), all keys concurrently (so Fsync commits are shared).
    private static Task OverwriteAsync(FasterStateStore store, int fromRound, int toRound, int skipKey = -1) =>
        Task.WhenAll(Enumerable.Range(0, Keys).Where(k => k != skipKey).Select(k => Task.Run(async () =>
        {
            for (int round = fromRound; round < toRound; round++)
                await store.PutAsync(Key(k), Value(k, round));
        })));

    private static void AssertLatest(FasterStateStore store, int round, int deletedKey = -1)
    {
        for (int k = 0; k < Keys; k++)
        {
            if (k == deletedKey)
            {
                Assert.False(store.TryGet(Key(k), out _), $"deleted key {k} came back");
                continue;
            }
            Assert.True(store.TryGet(Key(k), out var value), $"key {k} is missing");
            Assert.Equal(Text(Value(k, round)), Text(value));
        }
        Assert.Equal(deletedKey >= 0 ? Keys - 1 : Keys, store.ScanPrefix(Bytes("compact/")).Count);
    }

    private static string[] SegmentFiles(string dataDir) =>
        [.. Directory.GetFiles(Path.Combine(dataDir, "state"), "hlog.*").Select(Path.GetFileName).Order()!];

    // FASTER's device may delete truncated segment files asynchronously: poll, with a generous deadline.
    private static async Task SegmentDeletedAsync(string dataDir, string segment)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (SegmentFiles(dataDir).Contains(segment))
        {
            Assert.True(DateTime.UtcNow < deadline, $"{segment} was not deleted: [{string.Join(", ", SegmentFiles(dataDir))}]");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task OverwritesAreCompactedAndOldSegmentFilesDeleted()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = CompactingOptions(dir.Path);
        await using (var store = FasterStateStore.Open(options))
        {
            await OverwriteAsync(store, 0, Rounds);
            await store.DeleteAsync(Key(3));
            // The first checkpoint folds the whole log over (read-only); the second compacts everything below it.
            await store.CheckpointAsync();
            var before = SegmentFiles(dir.Path);
            long tail = store.StoreLogTailAddress;
            Assert.True(tail > 4L << options.StoreSegmentBits, $"test wrote only {tail} log bytes");
            Assert.Contains("hlog.0", before);

            await store.CheckpointAsync();

            Assert.True(store.Metrics.CompactionCount >= 1);
            Assert.True(store.StoreLogBeginAddress >= tail - (1L << options.StorePageBits),
                $"BeginAddress {store.StoreLogBeginAddress} did not move up to the compacted tail {tail}");
            await SegmentDeletedAsync(dir.Path, "hlog.0");
            var after = SegmentFiles(dir.Path);
            Assert.True(after.Length < before.Length, $"segments before [{string.Join(", ", before)}], after [{string.Join(", ", after)}]");
            AssertLatest(store, Rounds - 1, deletedKey: 3);

            // The store keeps working on top of the compacted log.
            await OverwriteAsync(store, Rounds, Rounds + 10, skipKey: 3);
            AssertLatest(store, Rounds + 9, deletedKey: 3);
        }

        await using (var store = FasterStateStore.Open(options))
        {
            Assert.True(store.Recovery.FromCheckpoint);
            AssertLatest(store, Rounds + 9, deletedKey: 3);
            await SegmentDeletedAsync(dir.Path, "hlog.0");
        }
    }

    [Fact]
    public async Task BackgroundCompactionWithConcurrentWritersKeepsLatestValuesThroughReopen()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = CompactingOptions(dir.Path);
        // A background checkpoint (and compaction) every ~64 KiB of journal while the writers run.
        options.CheckpointJournalBytes = 64 * 1024;
        await using (var store = FasterStateStore.Open(options))
        {
            int round = 0;
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
            while (store.Metrics.CompactionCount < 2 || store.StoreLogBeginAddress < 2L << options.StoreSegmentBits)
            {
                Assert.True(DateTime.UtcNow < deadline,
                    $"no compaction seen: {store.Metrics.CompactionCount} compactions, {store.Metrics.CheckpointCount} checkpoints, begin {store.StoreLogBeginAddress}");
                await OverwriteAsync(store, round, round + 50);
                round += 50;
                AssertLatest(store, round - 1);
            }
            await SegmentDeletedAsync(dir.Path, "hlog.0");
            AssertLatest(store, round - 1);
            await OverwriteAsync(store, round, round + 5);
            round += 5;

            // Clean reopen: the dispose checkpoint records everything.
            await store.DisposeAsync();
            await using var reopened = FasterStateStore.Open(options);
            AssertLatest(reopened, round - 1);
        }
    }
}
