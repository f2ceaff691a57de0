using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Reflection;
using Microsoft.Extensions.Logging;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Audit;
using Wayang.Fast.Control.Plugins;
using Wayang.Fast.Control.Secrets;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Server.Metrics;
using Wayang.Fast.Server.Planes;
using Wayang.Fast.Server.Sessions;

namespace Wayang.Fast.Server;

// What every session shares: options, the tenant directory, the execution engine, metrics, the live-session registry, the
// shutdown flag and one timer for handshake and idle timeouts. Independent of Kestrel, so a benchmark can
// run sessions over in-memory pipes.
internal sealed class ServerCore : IDisposable
{
    private readonly ConcurrentDictionary<long, Session> _sessions = new();
    private readonly Timer _timer;
    private long _nextSessionId;
    private volatile bool _shuttingDown;

    // execution null: a core without the execution plane (the session benchmarks); 0x02xx opcodes answer UNAVAILABLE.
    public ServerCore(WayangServerOptions options, TenantDirectory tenants, ILogger logger, ServerMetrics? metrics = null, ExecutionEngine? execution = null,
        AuditLog? audit = null, AgentCatalog? agents = null, SecretsPlane? secrets = null, PluginRegistry? plugins = null,
        Wayang.Fast.Inference.Gateway.InferenceGateway? inference = null)
    {
        Inference = inference;
        _secrets = secrets;
        Plugins = plugins;
        Audit = audit;
        Agents = agents;
        Execution = execution;
        Metrics = metrics ?? new ServerMetrics();
        Options = options;
        Tenants = tenants;
        Logger = logger;
        IdleTimeoutMs = (long)options.IdleTimeout.TotalMilliseconds;
        HandshakeTimeoutMs = (long)options.HandshakeTimeout.TotalMilliseconds;
        var period = TimeSpan.FromMilliseconds(Math.Clamp(Math.Min(IdleTimeoutMs, HandshakeTimeoutMs) / 4, 20, 1000));
        _timer = new Timer(static s => ((ServerCore)s!).CheckTimeouts(), this, period, period);
    }

    public static readonly string ServerVersion =
        typeof(ServerCore).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public WayangServerOptions Options { get; }
    public TenantDirectory Tenants { get; }
    public ExecutionEngine? Execution { get; }
    // null: a core without an audit log (the session benchmarks); nothing is recorded.
    public AuditLog? Audit { get; }
    // null: no agent definitions (the session benchmarks); definition opcodes for agents answer UNAVAILABLE.
    public AgentCatalog? Agents { get; }
    private readonly SecretsPlane? _secrets;
    // null: no secrets or plugins (the session benchmarks); their opcodes answer UNAVAILABLE.
    public SecretStore? Secrets => _secrets?.Store;
    public string SecretProviderName => _secrets?.ProviderName ?? "";
    public PluginRegistry? Plugins { get; }
    // null: no inference providers configured; the inference opcodes answer UNAVAILABLE.
    public Wayang.Fast.Inference.Gateway.InferenceGateway? Inference { get; }

    public Task<int> RotateMasterKeyAsync(CancellationToken ct) =>
        _secrets?.RotateMasterKeyAsync(ct) ?? throw new WayangException(new WayangError(ErrorCode.Unavailable, "This server keeps no secrets."));
    public ILogger Logger { get; }
    public ServerMetrics Metrics { get; }
    public long IdleTimeoutMs { get; }
    public long HandshakeTimeoutMs { get; }

    public bool ShuttingDown => _shuttingDown;

    public bool StorageOpen { get; set; } = true;

    public ICollection<Session> Sessions => _sessions.Values;

    public long InFlight
    {
        get
        {
            long n = 0;
            foreach (var s in _sessions.Values)
                n += s.InFlightCount;
            return n;
        }
    }

    public Session CreateSession(IDuplexPipe transport, string connectionId, string? remote = null)
    {
        var session = new Session(this, transport, Interlocked.Increment(ref _nextSessionId), connectionId, remote);
        _sessions[session.Id] = session;
        return session;
    }

    public void Unregister(Session session)
    {
        if (_sessions.TryRemove(session.Id, out _))
            Metrics.Retire(session.Stats);
    }

    public void BeginShutdown() => _shuttingDown = true;

    public void CloseSessionsOfKey(string keyId, Session? except = null)
    {
        foreach (var s in _sessions.Values)
        {
            if (s != except && s.KeyId == keyId)
                s.RequestClose(ErrorCode.KeyRevoked, "key revoked");
        }
    }

    public string RenderMetrics() => Metrics.Render(_sessions.Values, Execution, Audit, Inference);

    // Shutdown, before GOAWAY: every executor stream stops taking tasks at once, on every connection, so the tasks
    // that one closing stream gives back are not pushed to another stream that is about to close too.
    public void DetachExecutors()
    {
        var sessions = _sessions.Values.ToArray();
        foreach (var s in sessions)
            s.DetachExecutors();
        foreach (var s in sessions)
            s.EndExecutorStreams();
    }

    private void CheckTimeouts()
    {
        long now = Environment.TickCount64;
        foreach (var s in _sessions.Values)
            s.CheckTimeouts(now);
    }

    public void Dispose() => _timer.Dispose();
}
