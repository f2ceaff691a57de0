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

// A real in-process server with tenant "shop" and one API key per role asked for, for CLI tests: As(role) is the
// environment (WAYANG_SERVER, WAYANG_API_KEY) a CLI run uses to act as that key.
internal sealed class CliTenantServer : IAsyncDisposable
{
    public const string Tenant = "shop";

    private readonly TempDirectory _data = new();
    private readonly Dictionary<string, Dictionary<string, string?>> _environments = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _keyIds = new(StringComparer.Ordinal);
    private Server.WayangServer _server = null!;

    public string DataPath => _data.Path;

    public Dictionary<string, string?> As(string role) => _environments[role];

    public string KeyId(string role) => _keyIds[role];

    public static Task<CliTenantServer> StartAsync(params (string Role, string KeyName)[] keys) => StartAsync(null, keys);

    // configure: server options beyond the defaults (inference providers, say).
    public static async Task<CliTenantServer> StartAsync(Action<Server.WayangServerOptions>? configure, params (string Role, string KeyName)[] keys)
    {
        var harness = new CliTenantServer();
        var options = new Server.WayangServerOptions
        {
            DataDirectory = Path.Combine(harness._data.Path, "data"),
            Port = 0,
            HttpPort = -1,
            PrintBootstrapKey = false,
            Durability = Storage.DurabilityMode.Relaxed,
        };
        configure?.Invoke(options);
        harness._server = await Server.WayangServer.StartAsync(options);
        int port = harness._server.ProtocolEndPoint.Port;
        await using var platform = await Client.WayangClient.ConnectAsync(new Client.WayangClientOptions
        {
            Host = "127.0.0.1",
            Port = port,
            ApiKey = harness._server.BootstrapAdminKey!,
            KeepAliveInterval = TimeSpan.Zero,
        });
        await platform.CreateTenantAsync(Tenant);
        foreach (var (role, name) in keys)
        {
            var created = await platform.CreateKeyAsync(Tenant, name, [role]);
            harness._keyIds[role] = created.Key.KeyId;
            harness._environments[role] = new()
            {
                ["WAYANG_SERVER"] = "127.0.0.1:" + port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["WAYANG_API_KEY"] = created.Secret,
            };
        }
        return harness;
    }

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        _data.Dispose();
    }
}
