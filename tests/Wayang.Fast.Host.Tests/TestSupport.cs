using System.Text.RegularExpressions;

namespace Wayang.Fast.Host.Tests;

// Runs the CLI entry point in-process with captured output.
internal sealed class CliRun
{
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();

    public CliRun(IReadOnlyDictionary<string, string?>? variables = null, string? workingDirectory = null)
    {
        Out = TextWriter.Synchronized(_out);
        Error = TextWriter.Synchronized(_err);
        Environment = new CliEnvironment(Out, Error, variables ?? new Dictionary<string, string?>(), workingDirectory ?? Directory.GetCurrentDirectory(), InstallSignalHandlers: false);
    }

    public TextWriter Out { get; }
    public TextWriter Error { get; }
    internal CliEnvironment Environment { get; }

    public string StdOut
    {
        get
        {
            lock (Out)
                return _out.ToString();
        }
    }

    public string StdErr
    {
        get
        {
            lock (Error)
                return _err.ToString();
        }
    }

    public Task<int> RunAsync(params string[] args) => WayangCli.RunAsync(args, Environment, CancellationToken.None);

    public static async Task<(int Code, CliRun Run)> ExecAsync(IReadOnlyDictionary<string, string?>? variables, params string[] args)
    {
        var run = new CliRun(variables);
        int code = await run.RunAsync(args);
        return (code, run);
    }
}

internal static class Wait
{
    public static async Task UntilAsync(Func<bool> condition, TimeSpan? timeout = null, string? what = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("Condition not met in time" + (what is null ? "." : ": " + what));
            await Task.Delay(10);
        }
    }
}

// What `wayang serve` prints once it listens: "wayang <version> listening on <host>:<port> (http ...), ...".
internal static partial class ServeOutput
{
    [GeneratedRegex(@"listening on (?<host>[^\s]+):(?<port>\d+) ")]
    public static partial Regex ListeningLine();
}
