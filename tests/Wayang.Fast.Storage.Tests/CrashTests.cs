using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Xunit.Abstractions;

namespace Wayang.Fast.Storage.Tests;

// Runs Wayang.Fast.Storage.CrashHost as a child process, waits for N acknowledged writes, kills it with SIGKILL
// (Process.Kill on Linux), reopens the directory here and checks every acknowledged write is present.
public sealed class CrashTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(3);

    [Fact]
    public Task FsyncAcknowledgedWritesSurviveKill() =>
        RunCrashAsync(checkpointJournalBytes: long.MaxValue / 2, acksBeforeKill: 400, requireCheckpoint: false);

    [Fact]
    public Task FsyncAcknowledgedWritesSurviveKillAfterCheckpoints() =>
        // ~100 bytes per entry: a checkpoint every ~150 writes, so recovery is checkpoint + journal tail.
        RunCrashAsync(checkpointJournalBytes: 16 * 1024, acksBeforeKill: 600, requireCheckpoint: true);

    [Fact]
    public Task FsyncAcknowledgedWritesSurviveKillAfterCompactingCheckpoints() =>
        // Every checkpoint compacts the store log first (and deletes its old segment files), so recovery runs from a
        // compacted checkpoint plus the journal tail.
        RunCrashAsync(checkpointJournalBytes: 16 * 1024, acksBeforeKill: 600, requireCheckpoint: true, compactionMinLogBytes: 1);

    private async Task RunCrashAsync(long checkpointJournalBytes, int acksBeforeKill, bool requireCheckpoint, long compactionMinLogBytes = 0)
    {
        using var dir = new TempDirectory("storage-tests");
        var acked = new ConcurrentDictionary<long, bool>();
        int checkpoints = 0;
        long compactions = 0;
        var enough = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var exited = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stderr = new StringBuilder();

        void Check()
        {
            if (acked.Count >= acksBeforeKill && (!requireCheckpoint || Volatile.Read(ref checkpoints) > 0)
                && (compactionMinLogBytes == 0 || Interlocked.Read(ref compactions) > 0))
                enough.TrySetResult();
        }

        using var process = new Process { StartInfo = CrashHostStartInfo(dir.Path, "fsync", checkpointJournalBytes, writers: 8, compactionMinLogBytes), EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
                return;
            if (e.Data.StartsWith("ack ", StringComparison.Ordinal))
                acked.TryAdd(long.Parse(e.Data.AsSpan(4), CultureInfo.InvariantCulture), true);
            else if (e.Data.StartsWith("checkpoint ", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref checkpoints);
                // "checkpoint <address> compactions <count>"
                var parts = e.Data.Split(' ');
                Interlocked.Exchange(ref compactions, long.Parse(parts[^1], CultureInfo.InvariantCulture));
            }
            Check();
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
                lock (stderr)
                    stderr.AppendLine(e.Data);
        };
        process.Exited += (_, _) => exited.TrySetResult();

        Assert.True(process.Start());
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var first = await Task.WhenAny(enough.Task, exited.Task, Task.Delay(Deadline));
            Assert.True(first == enough.Task,
                $"crash host did not reach {acksBeforeKill} acks (saw {acked.Count}, {checkpoints} checkpoints, {compactions} compactions, exited: {process.HasExited}); stderr:\n{stderr}");
        }
        finally
        {
            if (!process.HasExited)
                process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        var acknowledged = acked.Keys.ToArray();
        output.WriteLine($"killed after {acknowledged.Length} acks and {checkpoints} checkpoints");

        var options = TestData.SmallOptions(dir.Path);
        options.MaxValueBytes = 4096;
        await using var store = FasterStateStore.Open(options);
        output.WriteLine($"recovery: {store.Recovery}");
        if (requireCheckpoint)
        {
            Assert.True(store.Recovery.FromCheckpoint);
            Assert.True(store.Recovery.CheckpointAddress > 0);
        }
        var missing = new List<long>();
        foreach (long i in acknowledged)
        {
            if (!store.TryGet(Key(i), out var value) || !value.AsSpan().SequenceEqual(Value(i)))
                missing.Add(i);
        }
        Assert.True(missing.Count == 0, $"{missing.Count} acknowledged writes lost or wrong, e.g. {string.Join(", ", missing.Order().Take(10))}");

        // Unacknowledged writes may or may not be there, but whatever is there must be a value the host wrote.
        foreach (var kv in store.ScanPrefix("crash/"u8))
        {
            long i = long.Parse(Encoding.UTF8.GetString(kv.Key).AsSpan("crash/".Length), CultureInfo.InvariantCulture);
            store.TryGet(kv.Key, out var got);
            Assert.True(Value(i).AsSpan().SequenceEqual(kv.Value),
                $"key {Encoding.UTF8.GetString(kv.Key)} scanned as '{Encoding.UTF8.GetString(kv.Value)}', read as '{Encoding.UTF8.GetString(got)}', acked: {acked.ContainsKey(i)}");
        }
    }

    private static ProcessStartInfo CrashHostStartInfo(string dataDir, string mode, long checkpointJournalBytes, int writers, long compactionMinLogBytes)
    {
        var pathFile = Path.Combine(AppContext.BaseDirectory, "crashhost.path");
        Assert.True(File.Exists(pathFile), $"{pathFile} is missing: the test project's build records the crash host's location there");
        var dll = File.ReadAllText(pathFile).Trim();
        Assert.True(File.Exists(dll), $"crash host not built at {dll}");
        // DOTNET_HOST_PATH is set by the dotnet CLI (dotnet test) to the muxer running us.
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(dotnet) || !File.Exists(dotnet))
            dotnet = "dotnet";
        var info = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        info.ArgumentList.Add(dataDir);
        info.ArgumentList.Add(mode);
        info.ArgumentList.Add(checkpointJournalBytes.ToString(CultureInfo.InvariantCulture));
        info.ArgumentList.Add(writers.ToString(CultureInfo.InvariantCulture));
        if (compactionMinLogBytes > 0)
            info.ArgumentList.Add(compactionMinLogBytes.ToString(CultureInfo.InvariantCulture));
        return info;
    }

    // Same formulas as CrashHost's CrashHostData.
    private static byte[] Key(long i) => Encoding.UTF8.GetBytes("crash/" + i.ToString(CultureInfo.InvariantCulture));

    private static byte[] Value(long i)
    {
        var head = "v" + i.ToString(CultureInfo.InvariantCulture) + ":";
        return Encoding.UTF8.GetBytes(head + new string((char)('a' + (int)(i % 26)), (int)(i % 97)));
    }
}
