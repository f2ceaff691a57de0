using System.Text;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Storage.Tests;

internal static class TestData
{
    public static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    public static string Text(byte[] b) => Encoding.UTF8.GetString(b);

    // Small pages and segments so tests cross page and segment boundaries with little data.
    public static StorageOptions SmallOptions(string dir) => new()
    {
        DataDirectory = dir,
        JournalPageBits = 16,
        JournalMemoryBits = 18,
        JournalSegmentBits = 18,
        StorePageBits = 16,
        StoreMemoryBits = 20,
        MaxKeyBytes = 256,
        MaxValueBytes = 8192,
        CheckpointInterval = TimeSpan.FromHours(1),
    };

    // 128 KiB segments, no size threshold for compaction and no journal-bytes checkpoints: a test's own
    // CheckpointAsync calls decide when the store compacts (the first folds the log over, the second compacts it).
    public static StorageOptions CompactingOptions(string dir)
    {
        var options = SmallOptions(dir);
        options.StoreSegmentBits = 17;
        options.CompactionMinLogBytes = 1;
        options.CheckpointJournalBytes = long.MaxValue / 2;
        return options;
    }

    public static async Task<WayangException> ThrowsWayangAsync(ErrorCode code, Func<Task> action)
    {
        var ex = await Assert.ThrowsAsync<WayangException>(action);
        Assert.Equal(code, ex.Code);
        return ex;
    }

    public static WayangException ThrowsWayang(ErrorCode code, Action action)
    {
        var ex = Assert.Throws<WayangException>(action);
        Assert.Equal(code, ex.Code);
        return ex;
    }
}
