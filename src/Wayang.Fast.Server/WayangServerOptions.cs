using Wayang.Fast.Execution.Agents;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Protocol;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Server;

// Bound from the configuration section "Wayang:Server" by the Host. Every limit here is answered on the wire
// with its own error code (see README / protocol-spec/errors.md).
public sealed class WayangServerOptions
{
    public const string SectionName = "Wayang:Server";

    public string DataDirectory { get; set; } = "data";
    public string ListenAddress { get; set; } = "127.0.0.1";
    // 0 = ephemeral (tests); the bound port is WayangServer.ProtocolEndPoint.
    public int Port { get; set; } = WireOptions.DefaultPort;
    // 0 = ephemeral, -1 = no HTTP side port.
    public int HttpPort { get; set; } = WireOptions.DefaultHttpPort;
    public DurabilityMode Durability { get; set; } = DurabilityMode.Fsync;

    // Beyond this, a new connection gets ERROR TOO_MANY_CONNECTIONS and is closed.
    public int MaxConnections { get; set; } = 10000;
    // Requests in flight on one connection (streams included); beyond it ERROR TOO_MANY_IN_FLIGHT on that stream.
    public int MaxInFlightPerConnection { get; set; } = 1024;
    // Largest frame body accepted (checked from the header, before the body is buffered): FRAME_TOO_LARGE.
    public int MaxFrameBytes { get; set; } = WireOptions.DefaultMaxFrameBytes;
    // Bytes a connection may buffer for a peer that is not reading its replies: SLOW_CONSUMER beyond it.
    public long MaxPendingWriteBytes { get; set; } = 8L * 1024 * 1024;
    // Kestrel's input buffer per connection: the read side stops pulling from the socket beyond it.
    public long MaxReadBufferBytes { get; set; } = 1024 * 1024 + 64 * 1024;

    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(2);
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);
    public TimeSpan ShutdownDrainTimeout { get; set; } = TimeSpan.FromSeconds(10);
    public uint DefaultInitialStreamCredit { get; set; } = 32;

    // Kestrel's UnsafePreferInlineScheduling: session read loops run on the socket I/O threads, saving a thread-pool
    // hop per read (measured in bench/RESULTS.md). Turn it off when embedding plane code that might block.
    public bool InlineSocketScheduling { get; set; } = true;

    // The thread pool's minimum worker count, raised (never lowered) at start. FASTER blocks pool threads: its data-page
    // writes and the commit record's write run synchronously on them, and (before the store's admission queue) every
    // writer blocked while the journal's in-memory tail was full. At the runtime default of one worker per core that
    // starved a 2-core server into multi-second stalls under load, until the pool's starvation detector added threads
    // (bench/RESULTS.md). The floor was 16 until the ninth pass of issue 3: with FASTER's blocking since taken off the
    // pool's critical paths (admission queue, commit records in place), 8 measured about 9% more closed throughput and
    // no stall in cold overload runs, while every extra idle worker spins. Null = max(8, 2 x cores); 0 = leave the
    // process's pool alone (embedders that manage it).
    public int? MinThreadPoolThreads { get; set; }

    internal int EffectiveMinThreadPoolThreads => MinThreadPoolThreads ?? Math.Max(8, 2 * Environment.ProcessorCount);

    // Store tuning from configuration (section "Wayang:Server:Storage": checkpoint cadence, compaction, memory sizes).
    public StorageTuning Storage { get; set; } = new();

    // Tuning beyond DataDirectory/Durability for embedding code, applied after Storage and before the store opens.
    public Action<StorageOptions>? ConfigureStorage { get; set; }

    // The execution plane (section "Wayang:Server:Execution"): queue depths, leases, timeouts, task-token key.
    public ExecutionOptions Execution { get; set; } = new();

    // What AGENT nodes call. Null: the inference gateway below when it has providers (AGENT nodes call it through
    // GatewayAgentInvoker); with neither, workflows with AGENT nodes are refused with AGENT_UNAVAILABLE at
    // registration. Set by embedding code (tests put a double here), never bound from configuration.
    public IInferenceGateway? Inference { get; set; }

    // The inference plane: provider instances (adapters built by the host from "Wayang:Server:Inference", or by
    // embedding code), the models they serve, and the gateway's timeouts and circuit breakers. No providers: the
    // inference opcodes answer UNAVAILABLE. The server disposes the providers when it stops.
    public List<Wayang.Fast.Inference.Providers.IInferenceProvider> InferenceProviders { get; set; } = [];
    public List<Wayang.Fast.Inference.Models.ModelEntry> InferenceModels { get; set; } = [];
    public Wayang.Fast.Inference.Gateway.InferenceGatewayOptions InferenceGateway { get; set; } = new();
    // Model cache warming of local runtimes (llama.cpp, an Ollama on loopback): warm at start, popularity prefetch,
    // LRU eviction under a memory budget.
    public Wayang.Fast.Inference.Models.ModelWarmerOptions InferenceWarming { get; set; } = new();

    // Secrets (section "Wayang:Server:Secrets"): the key-encryption provider and the rotation-policy check.
    public SecretsOptions Secrets { get; set; } = new();

    // The one-time notice with the bootstrap admin key goes to stdout (never to the log sink). Tests turn it off.
    public bool PrintBootstrapKey { get; set; } = true;

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(DataDirectory))
            throw new ArgumentException("DataDirectory is required.", nameof(DataDirectory));
        if (Port is < 0 or > 65535)
            throw new ArgumentOutOfRangeException(nameof(Port), Port, "Port must be 0..65535.");
        if (HttpPort is < -1 or > 65535)
            throw new ArgumentOutOfRangeException(nameof(HttpPort), HttpPort, "HttpPort must be -1..65535.");
        if (MaxConnections < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxConnections), MaxConnections, "Must be at least 1.");
        if (MaxInFlightPerConnection < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxInFlightPerConnection), MaxInFlightPerConnection, "Must be at least 1.");
        if (MaxFrameBytes < 1024)
            throw new ArgumentOutOfRangeException(nameof(MaxFrameBytes), MaxFrameBytes, "Must be at least 1024.");
        if (MaxPendingWriteBytes < MaxFrameBytes)
            throw new ArgumentOutOfRangeException(nameof(MaxPendingWriteBytes), MaxPendingWriteBytes, "Must be at least MaxFrameBytes.");
        if (IdleTimeout <= TimeSpan.Zero || HandshakeTimeout <= TimeSpan.Zero || ShutdownDrainTimeout < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(IdleTimeout), "Timeouts must be positive.");
        if (MinThreadPoolThreads is < 0 or > 32767)
            throw new ArgumentOutOfRangeException(nameof(MinThreadPoolThreads), MinThreadPoolThreads, "Must be 0..32767.");
        if (DefaultInitialStreamCredit == 0 || DefaultInitialStreamCredit > Limits.MaxStreamCredit)
            throw new ArgumentOutOfRangeException(nameof(DefaultInitialStreamCredit), DefaultInitialStreamCredit, "Must be 1..1000000.");
        (Storage ?? throw new ArgumentNullException(nameof(Storage))).Validate();
        ValidateExecution(Execution ?? throw new ArgumentNullException(nameof(Execution)));
        (Secrets ?? throw new ArgumentNullException(nameof(Secrets))).Validate();
    }

    private static void ValidateExecution(ExecutionOptions e)
    {
        if (e.MaxQueueDepth < 1)
            throw new ArgumentOutOfRangeException("Execution.MaxQueueDepth", e.MaxQueueDepth, "Must be at least 1.");
        if (e.QueueFullRetryAfterMs < 0)
            throw new ArgumentOutOfRangeException("Execution.QueueFullRetryAfterMs", e.QueueFullRetryAfterMs, "Must not be negative.");
        if (e.IdempotencyRetention <= TimeSpan.Zero || e.LeaseDuration <= TimeSpan.Zero || e.DefaultTaskTimeout <= TimeSpan.Zero || e.TokenGrace < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException("Execution", "Execution retention, lease, timeout durations must be positive (TokenGrace non-negative).");
        if (e.FinishedRunRetention < e.IdempotencyRetention)
            throw new ArgumentOutOfRangeException("Execution.FinishedRunRetention", e.FinishedRunRetention, "Must be at least Execution.IdempotencyRetention: a remembered idempotency key must still find its run.");
        if (e.TokenSigningKey is { Length: < 32 })
            throw new ArgumentException("Execution.TokenSigningKey must be at least 32 bytes.", "Execution.TokenSigningKey");
        if (e.DeadLetterReplayRatePerSecond < 1)
            throw new ArgumentOutOfRangeException("Execution.DeadLetterReplayRatePerSecond", e.DeadLetterReplayRatePerSecond, "Must be at least 1.");
        if (e.MaxNodesPerWorkflow < 1 || e.MaxInputBytes < 1)
            throw new ArgumentOutOfRangeException("Execution", "Execution.MaxNodesPerWorkflow and MaxInputBytes must be at least 1.");
        if (e.KnownExecutorTypes is null)
            throw new ArgumentNullException("Execution.KnownExecutorTypes");
    }
}

internal static class Limits
{
    // Outstanding credit on one stream above this is CREDIT_OVERFLOW (protocol-spec/flow-control).
    public const long MaxStreamCredit = 1_000_000;
    // PING/PONG bodies are opaque echo payloads, bounded so a PING cannot be used to make us buffer.
    public const int MaxPingBody = 64;
    public const int MaxTickCount = 10_000;
    public const int MaxTickIntervalMs = 1_000;
}
