using FASTER.core;
using static Wayang.Fast.Storage.Tests.TestData;

namespace Wayang.Fast.Storage.Tests;

// The store's FasterKV checkpoints go through InlineCheckpointManager: FASTER's own files and reader, with the
// metadata written on the calling thread instead of through a pool-completed device write.
public sealed class CheckpointManagerTests
{
    private static DeviceLogCommitCheckpointManager FastersManager(string dir) =>
        new(new LocalStorageNamedDeviceFactory(), new DefaultCheckpointNamingScheme(dir), removeOutdated: false);

    private static string[] Tokens(string dir, string kind) =>
        Directory.Exists(Path.Combine(dir, kind))
            ? Directory.GetDirectories(Path.Combine(dir, kind)).Select(d => Path.GetFileName(d)).Order().ToArray()
            : [];

    private static string Sorted(params Guid[] tokens) => string.Join(",", tokens.Select(t => t.ToString()).Order());

    // Directories written before the store used this manager must open unchanged, and FASTER's reader must read
    // ours: the metadata files are the same bytes at the same paths.
    [Fact]
    public void MetadataFilesAreByteForByteWhatFastersManagerWrites()
    {
        using var ours = new TempDirectory("storage-tests");
        using var theirs = new TempDirectory("storage-tests");
        var token = Guid.NewGuid();
        byte[] logMetadata = Bytes("log checkpoint metadata " + new string('x', 700));
        byte[] indexMetadata = Bytes("index checkpoint metadata");

        using (var manager = new InlineCheckpointManager(ours.Path))
        {
            manager.CommitLogCheckpoint(token, logMetadata);
            manager.CommitIndexCheckpoint(token, indexMetadata);
        }
        using (var manager = FastersManager(theirs.Path))
        {
            manager.CommitLogCheckpoint(token, logMetadata);
            manager.CommitIndexCheckpoint(token, indexMetadata);
        }

        var ourFiles = Directory.GetFiles(ours.Path, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(ours.Path, f)).Order().ToArray();
        var theirFiles = Directory.GetFiles(theirs.Path, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(theirs.Path, f)).Order().ToArray();
        Assert.Equal(theirFiles, ourFiles);
        Assert.Equal(2, ourFiles.Length);
        foreach (var file in ourFiles)
            Assert.Equal(File.ReadAllBytes(Path.Combine(theirs.Path, file)), File.ReadAllBytes(Path.Combine(ours.Path, file)));

        using var reader = FastersManager(ours.Path);
        using var theirReader = FastersManager(theirs.Path);
        Assert.Equal(logMetadata, reader.GetLogCheckpointMetadata(token, null, false, -1));
        // FASTER's index reader returns the sector's zero padding after the metadata (its parser stops at the end).
        Assert.Equal(theirReader.GetIndexCheckpointMetadata(token), reader.GetIndexCheckpointMetadata(token));
        Assert.Equal(indexMetadata, reader.GetIndexCheckpointMetadata(token).AsSpan(0, indexMetadata.Length).ToArray());
    }

    [Fact]
    public void KeepsTheLatestLogCheckpointAndTheTwoLatestIndexCheckpoints()
    {
        using var dir = new TempDirectory("storage-tests");
        using var manager = new InlineCheckpointManager(dir.Path);
        var tokens = Enumerable.Range(0, 4).Select(_ => Guid.NewGuid()).ToArray();
        foreach (var token in tokens)
        {
            manager.CommitIndexCheckpoint(token, Bytes("index"));
            manager.CommitLogCheckpoint(token, Bytes("log"));
        }

        Assert.Equal(Sorted(tokens[3]), string.Join(",", Tokens(dir.Path, "cpr-checkpoints")));
        Assert.Equal(Sorted(tokens[2], tokens[3]), string.Join(",", Tokens(dir.Path, "index-checkpoints")));
        Assert.Equal(Sorted(tokens[2], tokens[3]), Sorted(manager.GetIndexCheckpointTokens().ToArray()));
    }

    [Fact]
    public void RecoveryDeletesEveryCheckpointItDidNotUseAndCountsTheUsedOnesAsHistory()
    {
        using var dir = new TempDirectory("storage-tests");
        var tokens = Enumerable.Range(0, 3).Select(_ => Guid.NewGuid()).ToArray();
        using (var writer = FastersManager(dir.Path))
        {
            foreach (var token in tokens)
            {
                writer.CommitIndexCheckpoint(token, Bytes("index"));
                writer.CommitLogCheckpoint(token, Bytes("log"));
            }
        }

        using var manager = new InlineCheckpointManager(dir.Path);
        manager.OnRecovery(tokens[1], tokens[2]);
        Assert.Equal(Sorted(tokens[2]), string.Join(",", Tokens(dir.Path, "cpr-checkpoints")));
        Assert.Equal(Sorted(tokens[1]), string.Join(",", Tokens(dir.Path, "index-checkpoints")));

        // The recovered checkpoints are the history: the next log commit replaces the recovered log checkpoint,
        // and the index checkpoint used by recovery stays until two newer ones exist.
        var next = Guid.NewGuid();
        manager.CommitIndexCheckpoint(next, Bytes("index"));
        manager.CommitLogCheckpoint(next, Bytes("log"));
        Assert.Equal(Sorted(next), string.Join(",", Tokens(dir.Path, "cpr-checkpoints")));
        Assert.Equal(Sorted(tokens[1], next), string.Join(",", Tokens(dir.Path, "index-checkpoints")));
    }

    // FASTER calls the commit inside a state transition every writer waits on: a failed write must not throw there.
    // It is reported to the store (which then keeps its journal), and the previous checkpoint stays.
    [Fact]
    public void AFailedMetadataWriteIsReportedNotThrownAndThePreviousCheckpointStays()
    {
        using var dir = new TempDirectory("storage-tests");
        using var manager = new InlineCheckpointManager(dir.Path);
        var good = Guid.NewGuid();
        var failing = Guid.NewGuid();
        manager.CommitIndexCheckpoint(good, Bytes("index"));
        manager.CommitLogCheckpoint(good, Bytes("log"));
        Assert.Null(manager.TakeFailure());

        // A file where the new checkpoint's directory must go: creating the directory fails.
        File.WriteAllText(Path.Combine(dir.Path, "cpr-checkpoints", failing.ToString()), "in the way");
        manager.CommitLogCheckpoint(failing, Bytes("log"));

        Assert.NotNull(manager.TakeFailure());
        Assert.Null(manager.TakeFailure());
        Assert.Contains(good.ToString(), Tokens(dir.Path, "cpr-checkpoints"));
        using var reader = FastersManager(dir.Path);
        Assert.Equal(Bytes("log"), reader.GetLogCheckpointMetadata(good, null, false, -1));

        // The next good commit replaces the last good one, as usual.
        var next = Guid.NewGuid();
        manager.CommitLogCheckpoint(next, Bytes("log"));
        Assert.Null(manager.TakeFailure());
        Assert.DoesNotContain(good.ToString(), Tokens(dir.Path, "cpr-checkpoints"));
        Assert.Contains(next.ToString(), Tokens(dir.Path, "cpr-checkpoints"));
    }

    // End to end through the store: checkpoints taken under concurrent writes complete, old ones are removed, and
    // a reopen recovers from the latest checkpoint (plus the journal after it).
    [Fact]
    public async Task StoreCheckpointsUnderWritesRecoverAndLeaveOnlyTheLatest()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        int keysWritten;
        await using (var store = FasterStateStore.Open(options))
        {
            using var stop = new CancellationTokenSource();
            var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
            {
                int i = 0;
                while (!stop.IsCancellationRequested)
                    await store.PutAsync(Bytes($"ckpt/{w}/{i % 50}"), Bytes($"v{i++}"));
                return i;
            })).ToArray();
            for (int c = 0; c < 4; c++)
                await store.CheckpointAsync();
            await stop.CancelAsync();
            keysWritten = (await Task.WhenAll(writers)).Sum(count => Math.Min(count, 50));
            await store.PutAsync(Bytes("ckpt/last"), Bytes("after the checkpoints"));
            await store.CheckpointAsync();
        }

        string checkpoints = Path.Combine(dir.Path, "state", "checkpoints");
        Assert.Single(Tokens(checkpoints, "cpr-checkpoints"));
        Assert.InRange(Tokens(checkpoints, "index-checkpoints").Length, 1, 2);

        await using (var store = FasterStateStore.Open(options))
        {
            Assert.True(store.Recovery.FromCheckpoint);
            Assert.True(store.TryGet(Bytes("ckpt/last"), out var value));
            Assert.Equal("after the checkpoints", Text(value));
            Assert.Equal(keysWritten, store.ScanPrefix(Bytes("ckpt/")).Count(kv => !Text(kv.Key).EndsWith("last", StringComparison.Ordinal)));
        }
    }
}
