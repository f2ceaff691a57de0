using System.Text;
using Wayang.Fast.Common.Errors;
using static Wayang.Fast.Storage.Tests.TestData;

namespace Wayang.Fast.Storage.Tests;

public sealed class FasterStateStoreTests
{
    [Fact]
    public async Task PutGetDeleteAndScan()
    {
        using var dir = new TempDirectory("storage-tests");
        await using var store = FasterStateStore.Open(SmallOptions(dir.Path));

        Assert.False(store.TryGet(Bytes("tenant/a"), out _));
        await store.PutAsync(Bytes("tenant/a"), Bytes("alpha"));
        await store.PutAsync(Bytes("tenant/b"), Bytes("beta"));
        await store.PutAsync(Bytes("key/1"), Bytes("one"));
        await store.PutAsync(Bytes("tenant/a"), Bytes("alpha-2"));
        await store.PutAsync(Bytes("tenant/empty"), ReadOnlyMemory<byte>.Empty);

        Assert.True(store.TryGet(Bytes("tenant/a"), out var a));
        Assert.Equal("alpha-2", Text(a));
        Assert.True(store.TryGet(Bytes("tenant/empty"), out var empty));
        Assert.Empty(empty);

        await store.DeleteAsync(Bytes("tenant/b"));
        Assert.False(store.TryGet(Bytes("tenant/b"), out _));
        await store.DeleteAsync(Bytes("never-existed"));

        var tenants = store.ScanPrefix(Bytes("tenant/")).Select(kv => (Text(kv.Key), Text(kv.Value))).OrderBy(x => x.Item1).ToList();
        Assert.Equal([("tenant/a", "alpha-2"), ("tenant/empty", "")], tenants);
        Assert.Equal(3, store.ScanPrefix(ReadOnlySpan<byte>.Empty).Count);
        Assert.Empty(store.ScanPrefix(Bytes("nothing/")));
    }

    [Fact]
    public async Task InvalidKeysAndValuesAreRejected()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        await using var store = FasterStateStore.Open(options);
        await ThrowsWayangAsync(ErrorCode.InvalidArgument, () => store.PutAsync(ReadOnlyMemory<byte>.Empty, Bytes("v")).AsTask());
        await ThrowsWayangAsync(ErrorCode.InvalidArgument, () => store.PutAsync(new byte[options.MaxKeyBytes + 1], Bytes("v")).AsTask());
        await ThrowsWayangAsync(ErrorCode.InvalidArgument, () => store.PutAsync(Bytes("k"), new byte[options.MaxValueBytes + 1]).AsTask());
        Assert.Equal(0, store.Journal.Metrics.AppendCount);
    }

    [Fact]
    public async Task LargeKeysAndValuesRoundTripThroughRecovery()
    {
        using var dir = new TempDirectory("storage-tests");
        // Default geometry: 4 MiB pages, 1 MiB values, 1 KiB keys.
        var options = new StorageOptions { DataDirectory = dir.Path, CheckpointOnDispose = false };
        var key = Enumerable.Range(0, 1024).Select(i => (byte)('a' + i % 26)).ToArray();
        var value = Enumerable.Range(0, 1024 * 1024).Select(i => (byte)(i * 31)).ToArray();
        await using (var store = FasterStateStore.Open(options))
        {
            await store.PutAsync(key, value);
            await store.PutAsync(Bytes("small"), Bytes("s"));
            Assert.True(store.TryGet(key, out var read));
            Assert.Equal(value, read);
        }
        await using (var store = FasterStateStore.Open(options))
        {
            Assert.Equal(2, store.Recovery.ReplayedEntries);
            Assert.True(store.TryGet(key, out var read));
            Assert.Equal(value, read);
        }
    }

    [Fact]
    public async Task ConcurrentPutsFromManyTasksAreAllDurable()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        options.CheckpointOnDispose = false;
        const int Tasks = 32;
        const int PerTask = 50;
        await using (var store = FasterStateStore.Open(options))
        {
            await Task.WhenAll(Enumerable.Range(0, Tasks).Select(t => Task.Run(async () =>
            {
                for (int i = 0; i < PerTask; i++)
                {
                    await store.PutAsync(Bytes($"c/{t}/{i}"), Bytes($"v{t}.{i}"));
                    // Every acknowledged write is committed: the journal's durable prefix already covers it.
                    Assert.True(store.TryGet(Bytes($"c/{t}/{i}"), out var v));
                    Assert.Equal($"v{t}.{i}", Text(v));
                }
            })));
            Assert.True(store.Journal.Metrics.CommitCount < store.Journal.Metrics.AppendCount);
        }

        // Reopen without a checkpoint: everything comes back from the journal alone.
        await using (var store = FasterStateStore.Open(options))
        {
            Assert.False(store.Recovery.FromCheckpoint);
            Assert.Equal(Tasks * PerTask, store.Recovery.ReplayedEntries);
            for (int t = 0; t < Tasks; t++)
            {
                for (int i = 0; i < PerTask; i++)
                {
                    Assert.True(store.TryGet(Bytes($"c/{t}/{i}"), out var v), $"c/{t}/{i} missing");
                    Assert.Equal($"v{t}.{i}", Text(v));
                }
            }
        }
    }

    [Fact]
    public async Task ConcurrentWritersToOneKeyRecoverToTheValueReadersSaw()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        options.CheckpointOnDispose = false;
        string last;
        await using (var store = FasterStateStore.Open(options))
        {
            await Task.WhenAll(Enumerable.Range(0, 8).Select(t => Task.Run(async () =>
            {
                for (int i = 0; i < 100; i++)
                    await store.PutAsync(Bytes("hot"), Bytes($"{t}:{i}"));
            })));
            Assert.True(store.TryGet(Bytes("hot"), out var v));
            last = Text(v);
        }
        await using (var store = FasterStateStore.Open(options))
        {
            Assert.True(store.TryGet(Bytes("hot"), out var v));
            Assert.Equal(last, Text(v));
        }
    }

    [Fact]
    public async Task ReopenAfterCleanDisposeNeedsNoReplay()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        await using (var store = FasterStateStore.Open(options))
        {
            for (int i = 0; i < 100; i++)
                await store.PutAsync(Bytes("k" + i), Bytes("v" + i));
            await store.DeleteAsync(Bytes("k7"));
        }
        await using (var store = FasterStateStore.Open(options))
        {
            Assert.True(store.Recovery.FromCheckpoint);
            Assert.Equal(0, store.Recovery.ReplayedEntries);
            Assert.False(store.TryGet(Bytes("k7"), out _));
            Assert.True(store.TryGet(Bytes("k99"), out var v));
            Assert.Equal("v99", Text(v));
            Assert.Equal(99, store.ScanPrefix(Bytes("k")).Count);
        }
        Assert.True(File.Exists(Path.Combine(dir.Path, "MANIFEST.json")));
        Assert.True(Directory.Exists(Path.Combine(dir.Path, "journal")));
        Assert.True(Directory.Exists(Path.Combine(dir.Path, "state")));
    }

    [Fact]
    public async Task RecoveryIsCheckpointPlusJournalTail()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        options.CheckpointOnDispose = false;
        long covered;
        await using (var store = FasterStateStore.Open(options))
        {
            for (int i = 0; i < 20; i++)
                await store.PutAsync(Bytes("a/" + i), Bytes("A" + i));
            await store.PutAsync(Bytes("doomed"), Bytes("x"));
            covered = await store.CheckpointAsync();
            Assert.Equal(covered, store.CheckpointAddress);
            Assert.Equal(1, store.Metrics.CheckpointCount);

            for (int i = 0; i < 10; i++)
                await store.PutAsync(Bytes("b/" + i), Bytes("B" + i));
            await store.PutAsync(Bytes("a/0"), Bytes("A0-updated"));
            await store.DeleteAsync(Bytes("doomed"));
        }
        await using (var store = FasterStateStore.Open(options))
        {
            Assert.True(store.Recovery.FromCheckpoint);
            Assert.Equal(covered, store.Recovery.CheckpointAddress);
            Assert.Equal(12, store.Recovery.ReplayedEntries);
            var scanned = store.ScanPrefix(Bytes("a/")).ToDictionary(kv => Text(kv.Key), kv => Text(kv.Value));
            Assert.Equal(20, scanned.Count);
            // a/0 has a version in the checkpoint and a newer one replayed from the journal: scans see the newer.
            Assert.Equal("A0-updated", scanned["a/0"]);
            Assert.Equal("A5", scanned["a/5"]);
            Assert.Equal(10, store.ScanPrefix(Bytes("b/")).Count);
            Assert.True(store.TryGet(Bytes("a/0"), out var a0));
            Assert.Equal("A0-updated", Text(a0));
            Assert.True(store.TryGet(Bytes("a/19"), out var a19));
            Assert.Equal("A19", Text(a19));
            Assert.True(store.TryGet(Bytes("b/9"), out var b9));
            Assert.Equal("B9", Text(b9));
            Assert.False(store.TryGet(Bytes("doomed"), out _));
        }
    }

    [Fact]
    public async Task CheckpointTruncatesTheJournal()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        options.CheckpointOnDispose = false;
        var journalDir = Path.Combine(dir.Path, "journal");
        long covered;
        await using (var store = FasterStateStore.Open(options))
        {
            // ~1 MiB of journal across 256 KiB segments.
            var value = new byte[4000];
            for (int i = 0; i < 260; i++)
                await store.PutAsync(Bytes("t/" + i), value);
            Assert.True(File.Exists(Path.Combine(journalDir, "log.0")));
            long beginBefore = store.Journal.BeginAddress;

            covered = await store.CheckpointAsync();
            Assert.True(covered > beginBefore);
            Assert.Equal(covered, store.Journal.BeginAddress);
            // Whole segments below the covered address are deleted from disk (after the truncation's commit;
            // FASTER removes the files asynchronously, so poll with a deadline).
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (File.Exists(Path.Combine(journalDir, "log.0")) && DateTime.UtcNow < deadline)
                await Task.Delay(10);
            Assert.False(File.Exists(Path.Combine(journalDir, "log.0")), string.Join(", ", Directory.GetFiles(journalDir)));
            await store.PutAsync(Bytes("after"), Bytes("checkpoint"));
        }
        await using (var store = FasterStateStore.Open(options))
        {
            // The truncation was committed: the reopened journal starts where the checkpoint left off.
            Assert.Equal(covered, store.Journal.BeginAddress);
            Assert.Equal(1, store.Recovery.ReplayedEntries);
            Assert.Equal(260, store.ScanPrefix(Bytes("t/")).Count);
            Assert.True(store.TryGet(Bytes("after"), out _));
        }
    }

    [Fact]
    public async Task JournalBytesTriggerBackgroundCheckpoints()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        options.CheckpointJournalBytes = 32 * 1024;
        await using var store = FasterStateStore.Open(options);
        var value = new byte[1000];
        var deadline = DateTime.UtcNow.AddSeconds(60);
        int i = 0;
        while (store.Metrics.CheckpointCount == 0 && DateTime.UtcNow < deadline)
            await store.PutAsync(Bytes("bg/" + i++), value);
        Assert.True(store.Metrics.CheckpointCount > 0);
        Assert.True(store.Metrics.LastCheckpointAddress > 0);
    }

    [Fact]
    public async Task ReadsOfRecordsEvictedToDiskComplete()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        // 2 pages of 64 KiB in memory: most of 2 MiB of records live only on disk.
        options.StoreMemoryBits = 17;
        await using var store = FasterStateStore.Open(options);
        var value = new byte[2000];
        for (int i = 0; i < 1000; i++)
        {
            BitConverter.TryWriteBytes(value, i);
            await store.PutAsync(Bytes("d/" + i), value);
        }
        for (int i = 0; i < 1000; i += 37)
        {
            Assert.True(store.TryGet(Bytes("d/" + i), out var v), "d/" + i);
            Assert.Equal(i, BitConverter.ToInt32(v));
        }
        Assert.Equal(1000, store.ScanPrefix(Bytes("d/")).Count);
    }

    [Fact]
    public async Task RelaxedStoreKeepsAcknowledgedWritesAcrossCleanDispose()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        options.Durability = DurabilityMode.Relaxed;
        options.CheckpointOnDispose = false;
        await using (var store = FasterStateStore.Open(options))
        {
            for (int i = 0; i < 100; i++)
                await store.PutAsync(Bytes("r" + i), Bytes("v" + i));
        }
        await using (var store = FasterStateStore.Open(options))
        {
            Assert.Equal(100, store.Recovery.ReplayedEntries);
            Assert.Equal(100, store.ScanPrefix(Bytes("r")).Count);
        }
    }

    [Fact]
    public async Task SecondOpenOfTheSameDirectoryIsRefused()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        await using (var store = FasterStateStore.Open(options))
        {
            var ex = ThrowsWayang(ErrorCode.StorageLocked, () => FasterStateStore.Open(options));
            Assert.Contains(dir.Path, ex.Message, StringComparison.Ordinal);
            await store.PutAsync(Bytes("still"), Bytes("works"));
        }
        await using (var store = FasterStateStore.Open(options))
            Assert.True(store.TryGet(Bytes("still"), out _));
    }

    [Fact]
    public async Task ManifestFromANewerFormatIsRefused()
    {
        using var dir = new TempDirectory("storage-tests");
        File.WriteAllText(Path.Combine(dir.Path, "MANIFEST.json"),
            """{"formatVersion": 7, "createdAt": "2030-01-01T00:00:00Z", "journalPageBits": 16, "journalSegmentBits": 18, "storePageBits": 16, "storeSegmentBits": 30}""");
        var ex = ThrowsWayang(ErrorCode.StorageFormatTooNew, () => FasterStateStore.Open(SmallOptions(dir.Path)));
        Assert.Contains("7", ex.Message, StringComparison.Ordinal);
        Assert.Contains("format version " + FasterStateStore.FormatVersion, ex.Message, StringComparison.Ordinal);
        // Nothing was created or overwritten.
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "journal")));
        Assert.Contains("\"formatVersion\": 7", File.ReadAllText(Path.Combine(dir.Path, "MANIFEST.json")), StringComparison.Ordinal);
        await Task.CompletedTask;
    }

    [Fact]
    public async Task ManifestRecordsFormatAndGeometryWhichWinOnReopen()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        await using (var store = FasterStateStore.Open(options))
            await store.PutAsync(Bytes("g"), Bytes("1"));

        using (var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir.Path, "MANIFEST.json"))))
        {
            Assert.Equal(FasterStateStore.FormatVersion, doc.RootElement.GetProperty("formatVersion").GetInt32());
            Assert.Equal(16, doc.RootElement.GetProperty("journalPageBits").GetInt32());
        }

        // Asking for other page sizes on reopen must not reinterpret the existing files.
        var other = SmallOptions(dir.Path);
        other.JournalPageBits = 20;
        other.JournalMemoryBits = 22;
        other.StorePageBits = 20;
        other.StoreMemoryBits = 22;
        await using (var store = FasterStateStore.Open(other))
        {
            Assert.True(store.TryGet(Bytes("g"), out var v));
            Assert.Equal("1", Text(v));
        }
    }

    [Fact]
    public async Task CorruptCommittedJournalEntryIsReported()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        options.CheckpointOnDispose = false;
        var marker = Bytes("MARKER-0123456789-MARKER");
        await using (var store = FasterStateStore.Open(options))
        {
            await store.PutAsync(Bytes("before"), Bytes("fine"));
            await store.PutAsync(Bytes("victim"), marker);
            await store.PutAsync(Bytes("after"), Bytes("fine"));
        }

        var segment = Path.Combine(dir.Path, "journal", "log.0");
        var bytes = File.ReadAllBytes(segment);
        int at = bytes.AsSpan().IndexOf(marker);
        Assert.True(at >= 0, "marker not found in the journal segment");
        bytes[at + 7] ^= 0x5A;
        File.WriteAllBytes(segment, bytes);

        var ex = ThrowsWayang(ErrorCode.StorageCorrupt, () => FasterStateStore.Open(options));
        Assert.Contains("checksum", ex.Message, StringComparison.OrdinalIgnoreCase);

        // The failed open released the directory lock.
        File.WriteAllBytes(segment, bytes);
        ThrowsWayang(ErrorCode.StorageCorrupt, () => FasterStateStore.Open(options));
    }

    [Fact]
    public async Task CorruptManifestIsReported()
    {
        using var dir = new TempDirectory("storage-tests");
        File.WriteAllText(Path.Combine(dir.Path, "MANIFEST.json"), "{ not json");
        ThrowsWayang(ErrorCode.StorageCorrupt, () => FasterStateStore.Open(SmallOptions(dir.Path)));
        await Task.CompletedTask;
    }

    [Fact]
    public async Task DeleteOnCloseRemovesTheDirectory()
    {
        using var dir = new TempDirectory("storage-tests");
        var path = Path.Combine(dir.Path, "store");
        var options = SmallOptions(path);
        options.DeleteOnClose = true;
        await using (var store = FasterStateStore.Open(options))
            await store.PutAsync(Bytes("x"), Bytes("y"));
        Assert.False(Directory.Exists(path));
    }

    [Fact]
    public async Task CancelledBeforeWritingWritesNothing()
    {
        using var dir = new TempDirectory("storage-tests");
        await using var store = FasterStateStore.Open(SmallOptions(dir.Path));
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => store.PutAsync(Bytes("c"), Bytes("v"), cts.Token).AsTask());
        Assert.False(store.TryGet(Bytes("c"), out _));
        _ = Encoding.UTF8;
    }
}
