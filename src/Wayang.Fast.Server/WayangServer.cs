using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Wayang.Fast.Control.Audit;
using Wayang.Fast.Control.Definitions;
using Wayang.Fast.Control.Plugins;
using Wayang.Fast.Control.Secrets;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Server.Http;
using Wayang.Fast.Server.Planes;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Server;

// The server as a library: storage, tenancy, the execution engine, and one Kestrel host with two listeners, the protocol endpoint
// (a ConnectionHandler, no HTTP) and the HTTP side port (/healthz, /readyz, /metrics, and the OpenAI-compatible /v1 face).
public sealed class WayangServer : IAsyncDisposable
{
    public const string BootstrapKeyFileName = "bootstrap-admin.key";

    private readonly WayangServerOptions _options;
    private readonly ILogger _logger;
    private readonly FasterStateStore _store;
    private readonly ServerCore _core;
    private readonly OpenAiCompatibleEndpoint _openAi;
    private readonly ExecutionEngine _execution;
    private readonly AuditLog _audit;
    private readonly SecretsPlane _secrets;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _stopLock = new();
    private IHost? _host;
    private Task? _stopTask;

    private WayangServer(WayangServerOptions options, ILogger logger, FasterStateStore store, ExecutionEngine execution, AuditLog audit, SecretsPlane secrets,
        ServerCore core, string keyFile, string? bootstrapKey)
    {
        _audit = audit;
        _secrets = secrets;
        Credentials = new CredentialResolver(secrets.Store);
        _options = options;
        _logger = logger;
        _store = store;
        _execution = execution;
        _core = core;
        _openAi = new OpenAiCompatibleEndpoint(core);
        BootstrapKeyFile = keyFile;
        BootstrapAdminKey = bootstrapKey;
    }

    public IPEndPoint ProtocolEndPoint { get; private set; } = new(IPAddress.Loopback, 0);
    public IPEndPoint? HttpEndPoint { get; private set; }
    // Only on the start that created it; later starts get null (the key exists only as a hash).
    public string? BootstrapAdminKey { get; }

    // In-process rotation hooks for an embedding service: every secret change and rotation event, after it is durable
    // (the same events SecretWatch streams). Subscribe returns the IDisposable that unsubscribes.
    public SecretEvents SecretEvents => _secrets.Store.Events;

    // Resolves `secret://` credential references for a principal with its tenant and permissions.
    public CredentialResolver Credentials { get; }
    public string BootstrapKeyFile { get; }
    public Task Completion => _completion.Task;

    internal ServerCore Core => _core;

    public static async Task<WayangServer> StartAsync(WayangServerOptions options, ILoggerFactory? loggerFactory = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        loggerFactory ??= NullLoggerFactory.Instance;
        var logger = loggerFactory.CreateLogger("Wayang.Fast.Server");
        var address = IPAddress.Parse(options.ListenAddress);
        RaiseThreadPoolMinimum(options.EffectiveMinThreadPoolThreads);

        var storageOptions = new StorageOptions { DataDirectory = options.DataDirectory, Durability = options.Durability };
        options.Storage.ApplyTo(storageOptions);
        options.ConfigureStorage?.Invoke(storageOptions);
        storageOptions.DataDirectory = options.DataDirectory;
        var store = await FasterStateStore.OpenAsync(storageOptions, loggerFactory.CreateLogger("Wayang.Fast.Storage"), ct).ConfigureAwait(false);
        WayangServer? server = null;
        ExecutionEngine? execution = null;
        AuditLog? audit = null;
        SecretsPlane? secrets = null;
        var metrics = new Metrics.ServerMetrics();
        // Hooked before the first write, so the bootstrap commit is measured too.
        store.Metrics.CommitObserved = metrics.JournalCommit;
        metrics.Storage = store.Metrics;
        try
        {
            var tenants = new TenantDirectory(store);
            var keyFile = Path.Combine(Path.GetFullPath(options.DataDirectory), BootstrapKeyFileName);
            // The file is written and fsynced before the key's record commits (see EnsureBootstrapAdminAsync).
            var created = await tenants.EnsureBootstrapAdminAsync(key =>
            {
                WriteBootstrapKeyFile(keyFile, key);
                return ValueTask.CompletedTask;
            }, ct).ConfigureAwait(false);
            if (created is not null)
                AnnounceBootstrapKey(keyFile, created, options, logger);

            // Before anything can be denied or changed: the audit log records from the first request on.
            audit = AuditLog.Open(Path.Combine(store.DataDirectory, AuditDirectoryName), AuditStorageOptions(options.Durability), logger: loggerFactory.CreateLogger("Wayang.Fast.Audit"));
            var agents = new AgentCatalog(new AgentRegistry(store));
            // This server's agent definitions answer the engine's AGENT-node checks (replacing a catalog of an
            // earlier server built from the same options object).
            options.Execution.AgentCatalog = agents;

            // Before the engine: it signs task tokens with a key the secrets plane keeps encrypted.
            secrets = SecretsPlane.Open(store, options.Secrets, store.DataDirectory, loggerFactory.CreateLogger("Wayang.Fast.Secrets"));
            var tokenKey = options.Execution.TokenSigningKey is null ? await secrets.TokenSigningKeyAsync(store, ct).ConfigureAwait(false) : null;

            // The inference plane, when providers are configured; AGENT nodes call it unless the embedding code put
            // its own IInferenceGateway in the options.
            var inference = BuildInferenceGateway(options, store, loggerFactory);
            var agentInvoker = options.Inference ?? (inference is null ? null : new GatewayAgentInvoker(inference, agents, secrets.Store));

            // Recovery (requeueing what was queued or leased at the last stop) happens here, before any executor can
            // connect, so the first registrations see the whole backlog.
            execution = await ExecutionEngine.OpenAsync(store, options.Execution, agentInvoker,
                logger: loggerFactory.CreateLogger("Wayang.Fast.Execution"), tokenSigningKey: tokenKey, cancellationToken: ct).ConfigureAwait(false);
            agents.Attach(execution);
            var plugins = new PluginRegistry(store, new PluginRegistryOptions { ServerVersion = ServerCore.ServerVersion });
            // Warm at start before the first request can arrive (a model that fails to load is logged, not fatal).
            if (inference?.Usage is Wayang.Fast.Inference.Models.ModelWarmer warmer)
                await warmer.StartAsync(ct).ConfigureAwait(false);
            var core = new ServerCore(options, tenants, logger, metrics, execution, audit, agents, secrets, plugins, inference);
            server = new WayangServer(options, logger, store, execution, audit, secrets, core, keyFile, created?.Secret);
            await server.StartHostAsync(address, loggerFactory, ct).ConfigureAwait(false);
            Log.Started(logger, server.ProtocolEndPoint.ToString(), server.HttpEndPoint?.ToString() ?? "disabled", store.DataDirectory, options.Durability.ToString());
            return server;
        }
        catch
        {
            if (server is not null)
            {
                await server.StopAsync(CancellationToken.None).ConfigureAwait(false);
            }
            else
            {
                if (secrets is not null)
                    await secrets.DisposeAsync().ConfigureAwait(false);
                if (execution is not null)
                    await execution.DisposeAsync().ConfigureAwait(false);
                if (audit is not null)
                    await audit.DisposeAsync().ConfigureAwait(false);
                await store.DisposeAsync().ConfigureAwait(false);
            }
            throw;
        }
    }

    private static Wayang.Fast.Inference.Gateway.InferenceGateway? BuildInferenceGateway(WayangServerOptions options, FasterStateStore store, ILoggerFactory loggerFactory)
    {
        if (options.InferenceProviders.Count == 0)
            return null;
        var models = new Wayang.Fast.Inference.Models.ModelRegistry();
        foreach (var model in options.InferenceModels)
            models.Register(model);
        var gateway = new Wayang.Fast.Inference.Gateway.InferenceGateway(options.InferenceProviders, models, Wayang.Fast.Inference.Routing.FallbackPolicyStore.Load(store),
            options.InferenceGateway, logger: loggerFactory.CreateLogger("Wayang.Fast.Inference"));
        // Local runtimes that can load ahead of use get a warmer; it learns use and popularity from the gateway.
        if (options.InferenceProviders.Any(p => p is Wayang.Fast.Inference.Models.IWarmableProvider && p.Capabilities.HasFlag(Wayang.Fast.Inference.Providers.ProviderCapabilities.Local)))
        {
            gateway.Usage = new Wayang.Fast.Inference.Models.ModelWarmer(options.InferenceProviders, models, options.InferenceWarming,
                logger: loggerFactory.CreateLogger("Wayang.Fast.Inference.Warming"));
        }
        return gateway;
    }

    // The audit log's own journal inside the data directory. Its geometry is fixed here, not taken from the store's
    // options: FASTER's on-disk addresses depend on it, so it must be the same at every start.
    public const string AuditDirectoryName = "audit";

    private static StorageOptions AuditStorageOptions(DurabilityMode durability) => new()
    {
        Durability = durability,
        JournalPageBits = 20,
        JournalMemoryBits = 22,
        JournalSegmentBits = 28,
    };

    private static void RaiseThreadPoolMinimum(int minWorkers)
    {
        ThreadPool.GetMinThreads(out int workers, out int io);
        if (minWorkers > workers)
            ThreadPool.SetMinThreads(minWorkers, io);
    }

    private async Task StartHostAsync(IPAddress address, ILoggerFactory loggerFactory, CancellationToken ct)
    {
        ListenOptions? protocolListen = null;
        ListenOptions? httpListen = null;
        var options = _options;
        var core = _core;
        var host = new HostBuilder()
            .ConfigureServices(services =>
            {
                services.AddLogging();
                services.AddSingleton(loggerFactory);
                // The embedding process (the Host CLI) owns SIGTERM/Ctrl+C and calls StopAsync itself.
                services.AddSingleton<IHostLifetime, EmbeddedLifetime>();
                services.AddSingleton(core);
                services.AddSingleton<WayangConnectionHandler>();
            })
            .ConfigureWebHost(web => web
                .UseKestrel(kestrel =>
                {
                    kestrel.AddServerHeader = false;
                    // Connection limits are ours (TOO_MANY_CONNECTIONS is a protocol answer, not a silent drop).
                    kestrel.Limits.MaxConcurrentConnections = null;
                    kestrel.Listen(address, options.Port, listen =>
                    {
                        protocolListen = listen;
                        listen.UseConnectionHandler<WayangConnectionHandler>();
                    });
                    if (options.HttpPort >= 0)
                    {
                        kestrel.Listen(address, options.HttpPort, listen =>
                        {
                            httpListen = listen;
                            listen.Protocols = HttpProtocols.Http1;
                        });
                    }
                })
                .UseSockets(sockets =>
                {
                    // The input buffer must hold one whole maximum frame, or a full-size frame could never complete.
                    sockets.MaxReadBufferSize = Math.Max(options.MaxReadBufferBytes, options.MaxFrameBytes + FrameHeader.Size + 4096);
                    // Run the read loop on the socket's I/O thread instead of hopping to the thread pool for every
                    // read: safe because the loop never blocks (sync opcodes are short, async ones leave the loop).
                    sockets.UnsafePreferInlineScheduling = options.InlineSocketScheduling;
                })
                .Configure(app => app.Run(HandleHttpAsync)))
            .Build();
        _host = host;
        await host.StartAsync(ct).ConfigureAwait(false);
        ProtocolEndPoint = protocolListen!.IPEndPoint!;
        HttpEndPoint = httpListen?.IPEndPoint;
    }

    private Task HandleHttpAsync(HttpContext context)
    {
        if (OpenAiCompatibleEndpoint.Handles(context.Request.Path))
            return _openAi.HandleAsync(context);
        var response = context.Response;
        switch (context.Request.Path.Value)
        {
            case "/healthz":
                response.ContentType = "text/plain; charset=utf-8";
                return response.WriteAsync("ok\n");
            case "/readyz":
                bool ready = _core.StorageOpen && !_core.ShuttingDown;
                response.StatusCode = ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
                response.ContentType = "text/plain; charset=utf-8";
                return response.WriteAsync(ready ? "ready\n" : _core.ShuttingDown ? "shutting down\n" : "storage not open\n");
            case "/metrics":
                response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                return response.WriteAsync(_core.RenderMetrics());
            default:
                response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
        }
    }

    private static void WriteBootstrapKeyFile(string path, CreatedApiKey created)
    {
        // Created with 0600 from the first byte: there is no window in which another user can open it.
        if (File.Exists(path))
            File.Delete(path);
        var fileOptions = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
            fileOptions.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(path, fileOptions))
        {
            using var writer = new StreamWriter(stream, leaveOpen: true);
            writer.WriteLine(created.Secret);
            writer.Flush();
            stream.Flush(flushToDisk: true);
        }
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    private static void AnnounceBootstrapKey(string path, CreatedApiKey created, WayangServerOptions options, ILogger logger)
    {

        // The log sink gets where the key is, never the key.
        Log.BootstrapKeyCreated(logger, path);
        if (options.PrintBootstrapKey)
        {
            Console.WriteLine("Wayang.Fast: created the bootstrap platform-admin API key (shown once):");
            Console.WriteLine($"  {created.Secret}");
            Console.WriteLine($"  It is also in {path} (owner-only). Store it safely, then delete that file.");
        }
    }

    // Graceful: refuse new connections, stop dispatching tasks to executors, GOAWAY on every session (new REQUESTs get
    // SHUTTING_DOWN; executor streams END), wait for in-flight requests (bounded by ShutdownDrainTimeout), close
    // connections, stop the execution engine, final commit and checkpoint.
    public Task StopAsync(CancellationToken ct = default)
    {
        lock (_stopLock)
            return _stopTask ??= StopCoreAsync(ct);
    }

    private async Task StopCoreAsync(CancellationToken ct)
    {
        try
        {
            _core.BeginShutdown();
            // No executor takes a new task from here on; each executor stream ends (END) once its session sends GOAWAY.
            _core.DetachExecutors();
            var sessions = _core.Sessions.ToArray();
            Log.Stopping(_logger, sessions.Length);
            var drained = Task.WhenAll(sessions.Select(s => s.BeginShutdown()));
            try
            {
                await drained.WaitAsync(_options.ShutdownDrainTimeout, ct).ConfigureAwait(false);
                foreach (var s in _core.Sessions)
                    s.RequestClose(Common.Errors.ErrorCode.None, "server stopped");
            }
            catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
            {
                Log.DrainTimedOut(_logger, _core.InFlight);
                foreach (var s in _core.Sessions)
                    s.Abort("server stopped (drain timeout)");
            }

            if (_host is not null)
            {
                // Kestrel unbinds, then waits for every connection handler to return (sessions are closing now).
                using var hostStop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                try
                {
                    await _host.StopAsync(hostStop.Token).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    Log.ShutdownStepFailed(_logger, "stop Kestrel", ex);
                }
            }

            // After the sessions (nothing calls the engine any more), before the store it writes to.
            try
            {
                await _secrets.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                Log.ShutdownStepFailed(_logger, "stop the secrets plane", ex);
            }
            try
            {
                await _execution.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                Log.ShutdownStepFailed(_logger, "stop the execution engine", ex);
            }
            // After the engine (no AGENT call is left): the warmer's timer first, then the providers the options gave
            // the server, which it owns (a llama.cpp runtime holds native memory, HTTP adapters their connection pools).
            if (_core.Inference?.Usage is Wayang.Fast.Inference.Models.ModelWarmer modelWarmer)
                await modelWarmer.DisposeAsync().ConfigureAwait(false);
            foreach (var provider in _options.InferenceProviders)
            {
                try
                {
                    if (provider is IAsyncDisposable asyncDisposable)
                        await asyncDisposable.DisposeAsync().ConfigureAwait(false);
                    else if (provider is IDisposable disposable)
                        disposable.Dispose();
                }
                catch (Exception ex)
                {
                    Log.ShutdownStepFailed(_logger, $"close inference provider {provider.Name}", ex);
                }
            }

            _core.StorageOpen = false;
            try
            {
                await _audit.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                Log.ShutdownStepFailed(_logger, "close the audit log", ex);
            }
            try
            {
                await _store.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                Log.ShutdownStepFailed(_logger, "close storage", ex);
            }
            Log.Stopped(_logger);
        }
        finally
        {
            _core.Dispose();
            _host?.Dispose();
            _completion.TrySetResult();
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    private sealed class EmbeddedLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
