using System.Globalization;
using System.Text;
using Wayang.Fast.Storage;

// Crash-test child: opens a store and writes keys until it is killed. Prints "ack <i>" only after PutAsync(i)
// has completed, so every printed index is an acknowledged write that must survive kill -9.
// Usage: CrashHost <dataDir> <fsync|relaxed> <checkpointJournalBytes> <writers> [compactionMinLogBytes]
if (args.Length < 4)
{
    await Console.Error.WriteLineAsync("usage: CrashHost <dataDir> <fsync|relaxed> <checkpointJournalBytes> <writers> [compactionMinLogBytes]");
    return 2;
}

var options = new StorageOptions
{
    DataDirectory = args[0],
    Durability = args[1] == "relaxed" ? DurabilityMode.Relaxed : DurabilityMode.Fsync,
    CheckpointJournalBytes = long.Parse(args[2], CultureInfo.InvariantCulture),
    CheckpointInterval = TimeSpan.FromHours(1),
    // Small geometry so a short run crosses pages and segments.
    JournalPageBits = 16,
    JournalMemoryBits = 18,
    JournalSegmentBits = 18,
    StorePageBits = 16,
    StoreMemoryBits = 20,
    MaxKeyBytes = 256,
    MaxValueBytes = 4096,
};
int writers = int.Parse(args[3], CultureInfo.InvariantCulture);
if (args.Length > 4)
{
    // Compaction before each checkpoint, with small store segments so it deletes segment files mid-run.
    options.CompactionMinLogBytes = long.Parse(args[4], CultureInfo.InvariantCulture);
    options.StoreSegmentBits = 17;
}

var output = Console.Out;
var outputLock = new Lock();
void Say(string line)
{
    lock (outputLock)
    {
        output.WriteLine(line);
        output.Flush();
    }
}

await using var store = FasterStateStore.Open(options);
store.Metrics.CheckpointObserved = _ => Say("checkpoint " + store.Metrics.LastCheckpointAddress.ToString(CultureInfo.InvariantCulture)
    + " compactions " + store.Metrics.CompactionCount.ToString(CultureInfo.InvariantCulture));
Say("ready");

var tasks = new Task[writers];
for (int w = 0; w < writers; w++)
{
    int writer = w;
    tasks[w] = Task.Run(async () =>
    {
        for (long i = writer; ; i += writers)
        {
            await store.PutAsync(CrashHostData.Key(i), CrashHostData.Value(i));
            Say("ack " + i.ToString(CultureInfo.InvariantCulture));
        }
    });
}
await Task.WhenAll(tasks);
return 0;

// Shared with the test by convention (same formulas): key "crash/<i>", value "v<i>:" plus i%97 filler bytes.
internal static class CrashHostData
{
    public static byte[] Key(long i) => Encoding.UTF8.GetBytes("crash/" + i.ToString(CultureInfo.InvariantCulture));

    public static byte[] Value(long i)
    {
        var head = "v" + i.ToString(CultureInfo.InvariantCulture) + ":";
        return Encoding.UTF8.GetBytes(head + new string((char)('a' + (int)(i % 26)), (int)(i % 97)));
    }
}
