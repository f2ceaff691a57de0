namespace Wayang.Fast.Testing;

// Each test gets its own directory under the temp folder, deleted afterwards. Compiled into every test project
// (tests/Directory.Build.props) so the projects share one helper without a shared assembly.
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory(string area = "tests")
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "wayang-" + area, Guid.NewGuid().ToString("N"));
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
            // A child process killed mid-write may still hold a file for a moment; a leftover temp dir is harmless.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
