using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Wayang.Fast.Client;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Discovery;
using Wayang.Fast.Protocol;
using Wayang.Fast.Server;

namespace Wayang.Fast.Host;

// The `wayang` command. Exit codes: 0 ok, 1 usage (bad flags, missing key, bad configuration),
// 2 server or connection error, printed as `error CODE_NAME: message`.
public static partial class WayangCli
{
    public const int ExitOk = 0;
    public const int ExitUsage = 1;
    public const int ExitServerError = 2;

    public const string ServerVariable = "WAYANG_SERVER";
    public const string ApiKeyVariable = "WAYANG_API_KEY";

    public static Task<int> RunAsync(string[] args, CancellationToken ct = default) =>
        RunAsync(args, CliEnvironment.FromProcess(), ct);

    internal static Task<int> RunAsync(string[] args, CliEnvironment env, CancellationToken ct)
    {
        var root = BuildRootCommand(env);
        var parsed = root.Parse(args);
        // Signals are handled by `serve` itself (PosixSignalRegistration), so the parser installs none.
        var invocation = new InvocationConfiguration { Output = env.Out, Error = env.Error, ProcessTerminationTimeout = null };
        return parsed.InvokeAsync(invocation, ct);
    }

    internal static RootCommand BuildRootCommand(CliEnvironment env)
    {
        var root = new RootCommand("Wayang.Fast: the control, execution and inference server, and its admin CLI.");
        root.Add(BuildServe(env));
        root.Add(BuildPing(env));
        root.Add(BuildKeys(env));
        root.Add(BuildTenants(env));
        root.Add(BuildWorkflows(env));
        root.Add(BuildRuns(env));
        root.Add(BuildDlq(env));
        root.Add(BuildQueues(env));
        root.Add(BuildScheduling(env));
        root.Add(BuildDefinitions(env));
        root.Add(BuildRoles(env));
        root.Add(BuildBindings(env));
        root.Add(BuildAudit(env));
        root.Add(BuildSecrets(env));
        root.Add(BuildPlugins(env));
        root.Add(BuildInference(env));
        return root;
    }

    private static Command BuildServe(CliEnvironment env)
    {
        var dataDir = new Option<string?>("--data-dir") { Description = "Data directory (Wayang:Server:DataDirectory; default ./data)." };
        var listen = new Option<string?>("--listen") { Description = "Address to listen on (default 127.0.0.1)." };
        var port = new Option<int?>("--port") { Description = $"Protocol port (default {WireOptions.DefaultPort}; 0 = ephemeral)." };
        var httpPort = new Option<int?>("--http-port") { Description = $"HTTP port for /healthz, /readyz, /metrics (default {WireOptions.DefaultHttpPort}; 0 = ephemeral; -1 = off)." };
        var durability = new Option<string?>("--durability") { Description = "fsync (default) or relaxed." };
        durability.AcceptOnlyFromAmong("fsync", "relaxed");
        var config = new Option<string?>("--config") { Description = "JSON configuration file (default ./appsettings.json if present)." };
        var logFormat = new Option<string?>("--log-format") { Description = "Log format: text (default) or json." };
        logFormat.AcceptOnlyFromAmong("text", "json");
        var logLevel = new Option<string?>("--log-level") { Description = "Minimum log level: trace, debug, information, warning, error." };
        logLevel.AcceptOnlyFromAmong("trace", "debug", "information", "warning", "error", "critical", "none");

        var serve = new Command("serve", "Run the server on the embedded storage. Stops gracefully on SIGTERM or Ctrl+C.")
        {
            dataDir, listen, port, httpPort, durability, config, logFormat, logLevel,
        };
        serve.SetAction(async (p, ct) =>
        {
            var flags = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
            void Flag(string key, string? value)
            {
                if (value is not null)
                    flags[WayangServerOptions.SectionName + ":" + key] = value;
            }
            Flag(nameof(WayangServerOptions.DataDirectory), p.GetValue(dataDir));
            Flag(nameof(WayangServerOptions.ListenAddress), p.GetValue(listen));
            Flag(nameof(WayangServerOptions.Port), p.GetValue(port)?.ToString(CultureInfo.InvariantCulture));
            Flag(nameof(WayangServerOptions.HttpPort), p.GetValue(httpPort)?.ToString(CultureInfo.InvariantCulture));
            Flag(nameof(WayangServerOptions.Durability), p.GetValue(durability));
            return await Guard(env, () => ServeAsync(env, p.GetValue(config), flags, p.GetValue(logFormat), p.GetValue(logLevel), ct));
        });
        return serve;
    }

    internal static async Task<int> ServeAsync(CliEnvironment env, string? configPath, IReadOnlyDictionary<string, string?> flags, string? logFormat, string? logLevel, CancellationToken ct)
    {
        var configuration = ServeConfiguration.Build(configPath, env.Variables, flags, env.WorkingDirectory);
        var options = ServeConfiguration.BindServerOptions(configuration);
        options.DataDirectory = Path.GetFullPath(options.DataDirectory, env.WorkingDirectory);
        ServeConfiguration.BindInference(configuration, options, env.WorkingDirectory);
        // The host prints the one-time key notice itself, in the format documented in the README.
        options.PrintBootstrapKey = false;

        var format = logFormat ?? configuration["Wayang:Log:Format"] ?? "text";
        LogLevel? level = logLevel is null ? null : Enum.Parse<LogLevel>(logLevel, ignoreCase: true);
        using var loggerFactory = HostLogging.Create(format, level, configuration.GetSection("Logging"));
        var log = loggerFactory.CreateLogger("Wayang.Fast.Host");

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var signals = env.InstallSignalHandlers ? new SignalHandlers(stop) : null;

        WayangServer server;
        try
        {
            server = await WayangServer.StartAsync(options, loggerFactory, stop.Token);
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            // Validation (ranges) and ListenAddress parsing: the operator's input, not a server failure.
            throw new UsageException("Invalid server configuration: " + e.Message);
        }
        await using (server)
        {
            var http = server.HttpEndPoint is { } h ? h.ToString() : "off";
            await env.Out.WriteLineAsync($"wayang {ServerVersion()} listening on {server.ProtocolEndPoint} (http {http}), data {options.DataDirectory}, durability {options.Durability.ToString().ToLowerInvariant()}");
            if (server.BootstrapAdminKey is { } key)
            {
                await env.Out.WriteLineAsync("bootstrap admin key (shown once, platform-admin of tenant \"system\"):");
                await env.Out.WriteLineAsync("  " + key);
                await env.Out.WriteLineAsync($"stored at {server.BootstrapKeyFile} (owner-only); create your own admin keys, then revoke it.");
            }
            await env.Out.FlushAsync(CancellationToken.None);
            Log.Started(log, server.ProtocolEndPoint.ToString());

            // Optional: announce this server in Consul (README "Service discovery"). A configured registration that
            // fails stops the start (exit 2), rather than running a server its clients cannot find.
            var registration = await RegisterInConsulAsync(configuration, server, log, stop.Token);
            try
            {
                var stopRequested = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                using (stop.Token.Register(() => stopRequested.TrySetResult()))
                    await Task.WhenAny(server.Completion, stopRequested.Task);
            }
            finally
            {
                // Deregister before draining, so new clients stop being sent here while in-flight work finishes.
                if (registration is not null)
                    await registration.DisposeAsync();
            }

            if (!server.Completion.IsCompleted)
            {
                Log.Stopping(log);
                await server.StopAsync(CancellationToken.None);
            }
            await server.Completion;
            Log.Stopped(log);
        }
        return ExitOk;
    }

    // Section Wayang:Discovery:Consul:Registration (ConsulRegistrationOptions). ServicePort defaults to the protocol
    // port and ServiceAddress to the listen address, so `Address` alone is enough on a host with a local agent.
    internal static async Task<ConsulServiceRegistration?> RegisterInConsulAsync(IConfiguration configuration, WayangServer server, ILogger log, CancellationToken ct)
    {
        var section = configuration.GetSection("Wayang:Discovery:Consul:Registration");
        if (!section.Exists())
            return null;
        var options = ServeConfiguration.BindSection<ConsulRegistrationOptions>(section, "Consul registration");
        if (options.ServicePort == 0)
            options.ServicePort = server.ProtocolEndPoint.Port;
        options.ServiceAddress ??= server.ProtocolEndPoint.Address.ToString();
        ConsulServiceRegistration registration;
        try
        {
            registration = await ConsulServiceRegistration.RegisterAsync(options, ct: ct);
        }
        catch (ArgumentException e)
        {
            // Option validation (TTL, heartbeat interval, names): the operator's input.
            throw new UsageException("Invalid Consul registration configuration: " + e.Message);
        }
        Log.ConsulRegistered(log, registration.ServiceId, options.ServiceName, options.Address.ToString(), options.Ttl);
        return registration;
    }

    private static string ServerVersion() =>
        typeof(WayangServer).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    private static Command BuildPing(CliEnvironment env)
    {
        var connection = new ConnectionOptions();
        var count = new Option<int>("--count", "-c") { Description = "Number of pings.", DefaultValueFactory = _ => 4 };
        var ping = new Command("ping", "Measure round trips of opcode Ping to a server.") { count };
        connection.AddTo(ping);
        ping.SetAction((p, ct) => Guard(env, async () =>
        {
            int n = p.GetValue(count);
            if (n < 1)
                throw new UsageException("--count must be at least 1.");
            await using var client = await connection.ConnectAsync(p, env, ct);
            var times = new List<double>(n);
            for (int i = 1; i <= n; i++)
            {
                var rtt = await client.PingAsync(ct: ct);
                times.Add(rtt.TotalMilliseconds);
                await env.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"ping {client.Options.Host}:{client.Options.Port} seq={i} time={rtt.TotalMilliseconds:0.000} ms"));
            }
            await env.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"{n} pings: min/avg/max = {times.Min():0.000}/{times.Average():0.000}/{times.Max():0.000} ms"));
            return ExitOk;
        }));
        return ping;
    }

    private static Command BuildKeys(CliEnvironment env)
    {
        var keys = new Command("keys", "Create, list and revoke API keys.");

        var createConnection = new ConnectionOptions();
        var tenant = new Option<string>("--tenant", "-t") { Description = "Tenant the key belongs to.", Required = true };
        var name = new Option<string>("--name", "-n") { Description = "Key name (1..64 of a-z 0-9 - _).", Required = true };
        var roles = new Option<string[]>("--role", "-r")
        {
            Description = "Role (repeatable): platform-admin, tenant-admin, developer, operator, executor, viewer, auditor.",
            Required = true,
            Arity = ArgumentArity.OneOrMore,
        };
        var create = new Command("create", "Create an API key; its secret is printed once.") { tenant, name, roles };
        createConnection.AddTo(create);
        create.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await createConnection.ConnectAsync(p, env, ct);
            var created = await client.CreateKeyAsync(p.GetValue(tenant)!, p.GetValue(name)!, p.GetValue(roles) ?? [], ct: ct);
            await env.Out.WriteLineAsync($"key id: {created.Key.KeyId}");
            await env.Out.WriteLineAsync($"tenant: {created.Key.TenantId}");
            await env.Out.WriteLineAsync($"name:   {created.Key.Name}");
            await env.Out.WriteLineAsync($"roles:  {string.Join(',', created.Key.Roles)}");
            await env.Out.WriteLineAsync($"secret: {created.Secret}");
            await env.Out.WriteLineAsync("The secret is shown once; the server stores only its hash.");
            return ExitOk;
        }));
        keys.Add(create);

        var listConnection = new ConnectionOptions();
        var listTenant = new Option<string?>("--tenant", "-t") { Description = "Tenant whose keys to list (default: the caller's own)." };
        var list = new Command("list", "List API keys of a tenant.") { listTenant };
        listConnection.AddTo(list);
        list.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await listConnection.ConnectAsync(p, env, ct);
            var all = await client.ListKeysAsync(p.GetValue(listTenant), ct: ct);
            await WriteTableAsync(env.Out, ["KEY ID", "TENANT", "NAME", "ROLES", "CREATED", "STATUS"],
                all.Select(k => new[]
                {
                    k.KeyId, k.TenantId, k.Name, string.Join(',', k.Roles), FormatTime(k.CreatedAt),
                    k.Revoked ? "revoked " + (k.RevokedAt is { } at ? FormatTime(at) : "") : "active",
                }));
            return ExitOk;
        }));
        keys.Add(list);

        var revokeConnection = new ConnectionOptions();
        var keyId = new Argument<string>("keyId") { Description = "Id of the key to revoke." };
        var revoke = new Command("revoke", "Revoke an API key; connections using it are closed.") { keyId };
        revokeConnection.AddTo(revoke);
        revoke.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await revokeConnection.ConnectAsync(p, env, ct);
            var revoked = await client.RevokeKeyAsync(p.GetValue(keyId)!, ct: ct);
            await env.Out.WriteLineAsync($"revoked {revoked.KeyId} (tenant {revoked.TenantId}, name {revoked.Name})");
            return ExitOk;
        }));
        keys.Add(revoke);
        return keys;
    }

    private static Command BuildTenants(CliEnvironment env)
    {
        var tenants = new Command("tenants", "Create and list tenants (platform-admin).");

        var createConnection = new ConnectionOptions();
        var id = new Argument<string>("id") { Description = "Tenant id (1..64 of a-z 0-9 - _)." };
        var displayName = new Option<string?>("--name", "-n") { Description = "Display name." };
        var create = new Command("create", "Create a tenant.") { id, displayName };
        createConnection.AddTo(create);
        create.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await createConnection.ConnectAsync(p, env, ct);
            var tenant = await client.CreateTenantAsync(p.GetValue(id)!, p.GetValue(displayName), ct: ct);
            await env.Out.WriteLineAsync($"created tenant {tenant.TenantId} ({tenant.DisplayName})");
            return ExitOk;
        }));
        tenants.Add(create);

        var listConnection = new ConnectionOptions();
        var list = new Command("list", "List tenants.");
        listConnection.AddTo(list);
        list.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await listConnection.ConnectAsync(p, env, ct);
            var all = await client.ListTenantsAsync(ct: ct);
            await WriteTableAsync(env.Out, ["TENANT", "NAME", "CREATED"], all.Select(t => new[] { t.TenantId, t.DisplayName, FormatTime(t.CreatedAt) }));
            return ExitOk;
        }));
        tenants.Add(list);
        return tenants;
    }

    private static string FormatTime(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    private static async Task WriteTableAsync(TextWriter output, string[] header, IEnumerable<string[]> rows)
    {
        var all = new List<string[]> { header };
        all.AddRange(rows);
        var widths = new int[header.Length];
        foreach (var row in all)
        {
            for (int i = 0; i < row.Length; i++)
                widths[i] = Math.Max(widths[i], row[i].Length);
        }
        foreach (var row in all)
            await output.WriteLineAsync(string.Join("  ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd());
    }

    private static async Task<int> Guard(CliEnvironment env, Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (UsageException e)
        {
            await env.Error.WriteLineAsync("usage: " + e.Message);
            return ExitUsage;
        }
        catch (WayangException e)
        {
            await env.Error.WriteLineAsync($"error {e.Error.Name}: {e.Error.Message}");
            return ExitServerError;
        }
    }

    // --server and --key for the client commands; each command gets its own instances.
    private sealed class ConnectionOptions
    {
        private readonly Option<string?> _server = new("--server", "-s") { Description = $"Server as host:port (default ${ServerVariable} or 127.0.0.1:{WireOptions.DefaultPort})." };
        private readonly Option<string?> _key = new("--key", "-k") { Description = $"API key (default ${ApiKeyVariable})." };
        private readonly Option<double?> _timeout = new("--timeout") { Description = "Per-call timeout in seconds (default 30)." };

        public void AddTo(Command command)
        {
            command.Add(_server);
            command.Add(_key);
            command.Add(_timeout);
        }

        public async Task<WayangClient> ConnectAsync(ParseResult p, CliEnvironment env, CancellationToken ct)
        {
            var (host, port) = ParseServer(p.GetValue(_server) ?? env.Get(ServerVariable) ?? $"127.0.0.1:{WireOptions.DefaultPort}");
            var key = p.GetValue(_key) ?? env.Get(ApiKeyVariable)
                ?? throw new UsageException($"An API key is required: --key or the environment variable {ApiKeyVariable}.");
            var options = new WayangClientOptions
            {
                Host = host,
                Port = port,
                ApiKey = key,
                ClientName = "wayang-cli",
                KeepAliveInterval = TimeSpan.Zero,
                ConnectTimeout = TimeSpan.FromSeconds(10),
            };
            if (p.GetValue(_timeout) is { } seconds)
            {
                if (seconds <= 0)
                    throw new UsageException("--timeout must be positive.");
                options.DefaultTimeout = TimeSpan.FromSeconds(seconds);
            }
            // A CLI fails fast: one connection attempt, the error printed, exit code 2.
            options.Reconnect.MaxAttempts = 1;
            return await WayangClient.ConnectAsync(options, ct);
        }
    }

    internal static (string Host, int Port) ParseServer(string value)
    {
        string host = value;
        int port = WireOptions.DefaultPort;
        if (value.StartsWith('['))
        {
            int close = value.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
                throw new UsageException($"Bad --server '{value}': expected host:port.");
            host = value[1..close];
            var rest = value[(close + 1)..];
            if (rest.Length > 0)
            {
                if (!rest.StartsWith(':') || !int.TryParse(rest[1..], NumberStyles.None, CultureInfo.InvariantCulture, out port))
                    throw new UsageException($"Bad --server '{value}': expected [host]:port.");
            }
        }
        else
        {
            int colon = value.LastIndexOf(':');
            if (colon >= 0 && value.IndexOf(':', StringComparison.Ordinal) == colon)
            {
                host = value[..colon];
                if (!int.TryParse(value[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out port))
                    throw new UsageException($"Bad --server '{value}': expected host:port.");
            }
        }
        if (host.Length == 0 || port is < 1 or > 65535)
            throw new UsageException($"Bad --server '{value}': expected host:port with port 1..65535.");
        return (host, port);
    }

    // SIGTERM, SIGINT (Ctrl+C) and SIGQUIT request a graceful stop instead of killing the process.
    private sealed class SignalHandlers : IDisposable
    {
        private readonly PosixSignalRegistration[] _registrations;

        public SignalHandlers(CancellationTokenSource stop)
        {
            void Handler(PosixSignalContext context)
            {
                context.Cancel = true;
                stop.Cancel();
            }
            _registrations =
            [
                PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handler),
                PosixSignalRegistration.Create(PosixSignal.SIGINT, Handler),
                PosixSignalRegistration.Create(PosixSignal.SIGQUIT, Handler),
            ];
        }

        public void Dispose()
        {
            foreach (var r in _registrations)
                r.Dispose();
        }
    }
}

internal static partial class Log
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Serving on {EndPoint}; send SIGTERM or press Ctrl+C to stop")]
    public static partial void Started(ILogger logger, string endPoint);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Stop requested: draining in-flight requests")]
    public static partial void Stopping(ILogger logger);

    [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "Stopped")]
    public static partial void Stopped(ILogger logger);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "Registered as {ServiceId} of service {ServiceName} with Consul at {Address} (TTL check {Ttl})")]
    public static partial void ConsulRegistered(ILogger logger, string serviceId, string serviceName, string address, TimeSpan ttl);
}
