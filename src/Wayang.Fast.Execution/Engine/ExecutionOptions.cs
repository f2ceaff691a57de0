namespace Wayang.Fast.Execution.Engine;

public sealed class ExecutionOptions
{
    // Queued tasks per queue (tenant x executor type) before submissions are refused with QUEUE_FULL.
    public int MaxQueueDepth { get; set; } = 100_000;

    // RetryAfterMs given with QUEUE_FULL.
    public long QueueFullRetryAfterMs { get; set; } = 1000;

    // How long a submission's idempotency key is remembered.
    public TimeSpan IdempotencyRetention { get; set; } = TimeSpan.FromHours(24);

    // How long a finished run (COMPLETED, FAILED, CANCELLED) stays readable after it finished; then it is deleted at the
    // state store's next compaction (so it may stay a while longer). Never shorter than IdempotencyRetention (the
    // server refuses that): a remembered key must find its run. A run that still has a dead-letter entry is kept.
    public TimeSpan FinishedRunRetention { get; set; } = TimeSpan.FromDays(7);

    // A dispatched task's lease; heartbeats renew it. Expiry (or the executor's disconnect) requeues the same attempt.
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    // Attempt timeout for TASK/AGENT nodes without timeoutMs.
    public TimeSpan DefaultTaskTimeout { get; set; } = TimeSpan.FromHours(1);

    // A task token stays valid this long past its attempt's timeout (late results are still recognised as duplicates).
    public TimeSpan TokenGrace { get; set; } = TimeSpan.FromMinutes(10);

    // HMAC-SHA256 key for task tokens (at least 32 bytes). Null: the engine keeps one in the state store
    // (see README "Task tokens" for what that means for secrets on disk).
    public byte[]? TokenSigningKey { get; set; }

    // Default pace of DLQ replays (entries per second) when a request does not give one.
    public int DeadLetterReplayRatePerSecond { get; set; } = 50;

    // When set, TASK nodes may only name these executor types (validation error otherwise). Empty: any valid name.
    public IReadOnlyCollection<string> KnownExecutorTypes { get; set; } = [];

    // The control plane's agent definitions. When set, AGENT nodes must name an agent id and agentVersion that is
    // PUBLISHED in the workflow's tenant to be validated or published; null: agents are names for the inference plane.
    public Definitions.IAgentCatalog? AgentCatalog { get; set; }

    // Maximum nodes per workflow and maximum size of a run's input (bytes of JSON).
    public int MaxNodesPerWorkflow { get; set; } = 1000;
    public int MaxInputBytes { get; set; } = 256 * 1024;
}
