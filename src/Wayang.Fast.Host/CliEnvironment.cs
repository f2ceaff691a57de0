namespace Wayang.Fast.Host;

// What the CLI reads from and writes to, so tests can run it in-process with their own writers and variables.
internal sealed record CliEnvironment(
    TextWriter Out,
    TextWriter Error,
    IReadOnlyDictionary<string, string?> Variables,
    string WorkingDirectory,
    bool InstallSignalHandlers)
{
    public static CliEnvironment FromProcess() => new(
        Console.Out,
        Console.Error,
        ServeConfiguration.ProcessEnvironment().ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal),
        Directory.GetCurrentDirectory(),
        InstallSignalHandlers: true);

    public string? Get(string name) => Variables.TryGetValue(name, out var value) && !string.IsNullOrEmpty(value) ? value : null;
}
