using System.Text;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Storage.Tests;

// Each test gets its own data directory under the temp folder, deleted afterwards.
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "wayang-storage-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

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
