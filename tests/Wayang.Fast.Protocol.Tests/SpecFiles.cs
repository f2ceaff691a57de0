namespace Wayang.Fast.Protocol.Tests;

// The spec documents are copied next to the test assembly by the csproj; regeneration writes to the source tree.
internal static class SpecFiles
{
    public static string Path(params string[] parts) =>
        System.IO.Path.Combine([AppContext.BaseDirectory, "protocol-spec", .. parts]);

    public static string ReadAllText(params string[] parts) => File.ReadAllText(Path(parts));

    public static string SourcePath(params string[] parts) =>
        System.IO.Path.Combine([FindRepoRoot(), "protocol-spec", .. parts]);

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Wayang.Fast.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException("Wayang.Fast.sln not found above " + AppContext.BaseDirectory);
    }
}
