namespace Wayang.Fast.Benchmarks.Storage;

// A per-benchmark data directory under the temp folder, removed in GlobalCleanup.
internal static class StorageBenchDirectory
{
    public static string Create(string name)
    {
        var path = Path.Combine(Path.GetTempPath(), "wayang-bench", name + "-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }

    public static void Delete(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
