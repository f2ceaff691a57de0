using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Wayang.Fast.Common;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Agents;
using Wayang.Fast.Execution.DeadLetters;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Dispatch;
using Wayang.Fast.Execution.Planning;
using Wayang.Fast.Execution.Runs;
using Wayang.Fast.Execution.Tokens;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Execution.Engine;

// The execution plane. Every method that changes state returns only after that change is durable in the state store.
//
// Concurrency: each run has a plain lock (RunEntry.Gate); state changes happen under it and never await. The
// dispatcher is never called under a run lock (it calls back into the engine, AssignTask, under its own lock, and
// that takes the run lock: dispatcher -> run -> timers is the only lock order). A change computes under the lock what
// must follow (Effects); the caller releases the lock, awaits the write, then starts what became ready, so tasks are
// dispatched only after the write that made them ready is durable.
//
// Storage keys: "run/<runId>" (RunState, one record per run, rewritten on each durable change), "idem/<tenant>/<key>"
// (IdempotencyRecord), "dlq/<tenant>/<id>" (DeadLetter), "sched/<tenant>" (TenantSchedule), "misses/<tenant>/<priority>"
// (deadline-miss count), "exec/token-key" (the task-token HMAC key when the options give none).
public sealed partial class ExecutionEngine : IAsyncDisposable, ITimerSink
{
    internal const string RunKeyPrefix = "run/";
    private const string IdempotencyKeyPrefix = "idem/";
    private const string DeadLetterKeyPrefix = "dlq/";
    // Where an engine without a caller-kept key stores its token key (plain bytes): see OpenAsync.
    public const string TokenKeyStoreKey = "exec/token-key";
    private static readonly byte[] TokenKeyKey = Encoding.UTF8.GetBytes(TokenKeyStoreKey);
    private static readonly TimeSpan SweepInterval = TimeSpan.FromHours(1);

    private readonly IStateStore _store;
    private readonly ExecutionOptions _options;
    private readonly IInferenceGateway? _inference;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly WorkflowRegistry _registry;
    private readonly TaskDispatcher _dispatcher;
    private readonly TaskTokens _tokens;
    private readonly EngineTimers _timers;
    private readonly ConcurrentDictionary<string, RunEntry> _runs = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _idempotencyInFlight = new(StringComparer.Ordinal);
    private readonly ConditionalWeakTable<CompiledWorkflow, WorkflowInfo> _infos = [];
    private readonly DeadLetterIndex _deadLetters = new();
    private readonly CancellationTokenSource _shutdown = new();
    private readonly long _defaultTimeoutMs;
    private readonly long _tokenGraceMs;
    private readonly long _retentionMs;
    private ITimer? _sweepTimer;
    private int _disposed;

    private long _tasksCompleted;
    private long _tasksFailed;
    private long _tasksRetried;
    private long _deadLettered;

    private ExecutionEngine(IStateStore store, ExecutionOptions options, IInferenceGateway? inference, TimeProvider time, ILogger logger,
        ValidationContext validation, TaskTokens tokens)
    {
        _store = store;
        _options = options;
        _inference = inference;
        _time = time;
        _logger = logger;
        // The registry asks the engine how many unfinished runs use a version before archiving it.
        _registry = new WorkflowRegistry(store, validation, time, this);
        _tokens = tokens;
        _defaultTimeoutMs = (long)options.DefaultTaskTimeout.TotalMilliseconds;
        _tokenGraceMs = (long)options.TokenGrace.TotalMilliseconds;
        _retentionMs = (long)options.IdempotencyRetention.TotalMilliseconds;
        // A late task under the FAIL policy is failed off the dispatcher's lock (see the lock rule there).
        _dispatcher = new TaskDispatcher(options, time, AssignTask,
            task => ThreadPool.UnsafeQueueUserWorkItem(static s => s.Engine.OnDeadlineMissed(s.Task), (Engine: this, Task: task), preferLocal: false),
            OnDeadlineMissCounted);
        _timers = new EngineTimers(time, this, logger, options.LeaseDuration);
    }

    // Loads definitions, runs, dead letters; requeues what was queued or leased at the crash; re-arms timers.
    // tokenSigningKey: the key when options.TokenSigningKey is not set, kept by the caller (the server keeps it in its
    // secret store, encrypted); neither set, the engine keeps one in the state store (TokenKeyStoreKey, unencrypted).
    public static async ValueTask<ExecutionEngine> OpenAsync(IStateStore store, ExecutionOptions options, IInferenceGateway? inference = null,
        TimeProvider? time = null, ILogger? logger = null, byte[]? tokenSigningKey = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        time ??= TimeProvider.System;
        logger ??= NullLogger.Instance;
        var key = options.TokenSigningKey ?? tokenSigningKey ?? await LoadOrCreateTokenKeyAsync(store, cancellationToken).ConfigureAwait(false);
        var validation = new ValidationContext(inference is not null, options.KnownExecutorTypes, options.MaxNodesPerWorkflow, options.AgentCatalog);
        var engine = new ExecutionEngine(store, options, inference, time, logger, validation, new TaskTokens(key));
        try
        {
            engine.LoadDeadLetters();
            // Before the runs: their requeued tasks meet the tenants' weights and limits.
            engine.LoadTenantSchedules();
            engine.LoadDeadlineMisses();
            int requeued = await engine.RecoverRunsAsync(cancellationToken).ConfigureAwait(false);
            bool storeExpires = engine.RegisterRetention();
            engine._timers.Start();
            if (!storeExpires)
                engine._sweepTimer = time.CreateTimer(static s => ((ExecutionEngine)s!).SweepIdempotency(), engine, SweepInterval, SweepInterval);
            EngineLog.Opened(logger, engine._runs.Count, requeued, engine._deadLetters.Count);
            return engine;
        }
        catch
        {
            await engine.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static async ValueTask<byte[]> LoadOrCreateTokenKeyAsync(IStateStore store, CancellationToken cancellationToken)
    {
        if (store.TryGet(TokenKeyKey, out var existing) && existing.Length >= 32)
            return existing;
        var key = RandomNumberGenerator.GetBytes(32);
        await store.PutAsync(TokenKeyKey, key, cancellationToken).ConfigureAwait(false);
        return key;
    }

    public bool InferenceAvailable => _inference is not null;

    private long NowMs => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private static string NewRunId() => Ids.NewId("run_");

    // ---- definitions ----

    public async ValueTask<WorkflowSummary> RegisterWorkflowAsync(string tenantId, WorkflowDefinition definition, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        var compiled = await _registry.RegisterAsync(tenantId, definition, cancellationToken).ConfigureAwait(false);
        foreach (var summary in _registry.List(tenantId))
        {
            if (summary.WorkflowId == compiled.WorkflowId)
                return summary;
        }
        return new WorkflowSummary(compiled.WorkflowId, compiled.Version, [compiled.Version], NowMs);
    }

    public WorkflowDefinition? GetWorkflow(string tenantId, string workflowId, int version) => _registry.Get(tenantId, workflowId, version)?.Definition;

    public IReadOnlyList<WorkflowSummary> ListWorkflows(string tenantId) => _registry.List(tenantId);

    private WorkflowInfo InfoOf(CompiledWorkflow workflow)
    {
        if (_infos.TryGetValue(workflow, out var info))
            return info;
        return _infos.GetValue(workflow, w => new WorkflowInfo(w, _defaultTimeoutMs));
    }

    // ---- runs ----

    public ValueTask<SubmitRunResult> SubmitAsync(string tenantId, SubmitRunRequest request, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(request);
        var key = string.IsNullOrEmpty(request.IdempotencyKey) ? null : request.IdempotencyKey;
        if (key is not null)
            ValidateIdempotencyKey(key);
        var workflow = _registry.GetRunnable(tenantId, request.WorkflowId, request.Version);
        var input = ValidateInput(workflow, request.Input);
        ValidateSla(request.Sla);
        var info = InfoOf(workflow);
        if (key is not null)
            return SubmitIdempotentAsync(tenantId, request, workflow, info, input, key, cancellationToken);

        CheckQueues(tenantId, info);
        CheckTenantLimits(tenantId);
        var entry = CreateRun(tenantId, NewRunId(), workflow, info, input, null, request.Sla, out var write, out var effects);
        if (write.IsCompletedSuccessfully)
        {
            AfterDurable(entry, ref effects);
            return new ValueTask<SubmitRunResult>(new SubmitRunResult(entry.State.RunId, StatusOf(entry), workflow.Version, false));
        }
        return SubmitSlowAsync(entry, write, effects);
    }

    private async ValueTask<SubmitRunResult> SubmitSlowAsync(RunEntry entry, Task write, Effects effects)
    {
        await write.ConfigureAwait(false);
        AfterDurable(entry, ref effects);
        return new SubmitRunResult(entry.State.RunId, StatusOf(entry), entry.Workflow.Version, false);
    }

    private static RunStatus StatusOf(RunEntry entry)
    {
        lock (entry.Gate)
            return entry.State.Status;
    }

    private async ValueTask<SubmitRunResult> SubmitIdempotentAsync(string tenantId, SubmitRunRequest request, CompiledWorkflow workflow, WorkflowInfo info,
        JsonElement? input, string key, CancellationToken cancellationToken)
    {
        var slot = string.Concat(tenantId, "/", key);
        var mine = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // One submission per key at a time: a concurrent one with the same key waits, then finds the record.
        while (!_idempotencyInFlight.TryAdd(slot, mine))
        {
            if (_idempotencyInFlight.TryGetValue(slot, out var other))
                await other.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        try
        {
            var hash = RequestHash(request.WorkflowId, request.Version, input);
            var storeKey = Encoding.UTF8.GetBytes(string.Concat(IdempotencyKeyPrefix, slot));
            long now = NowMs;
            var record = ReadIdempotencyRecord(storeKey);
            if (record is not null && IsRemembered(record, now))
            {
                if (!string.Equals(record.RequestHash, hash, StringComparison.Ordinal))
                    throw new WayangException(ErrorCode.IdempotencyKeyConflict, $"Idempotency key '{key}' was used for a different request.");
                return await ReplaySubmissionAsync(tenantId, record, workflow, info, input, key, request.Sla).ConfigureAwait(false);
            }

            CheckQueues(tenantId, info);
            CheckTenantLimits(tenantId);
            var newRecord = new IdempotencyRecord { RunId = NewRunId(), RequestHash = hash, CreatedAtMs = now };
            var entry = CreateRun(tenantId, newRecord.RunId, workflow, info, input, key, request.Sla, out var write, out var effects, storeKey, newRecord);
            await write.ConfigureAwait(false);
            AfterDurable(entry, ref effects);
            return new SubmitRunResult(entry.State.RunId, StatusOf(entry), workflow.Version, false);
        }
        finally
        {
            _idempotencyInFlight.TryRemove(new KeyValuePair<string, TaskCompletionSource>(slot, mine));
            mine.TrySetResult();
        }
    }

    private async ValueTask<SubmitRunResult> ReplaySubmissionAsync(string tenantId, IdempotencyRecord record, CompiledWorkflow workflow, WorkflowInfo info,
        JsonElement? input, string key, RunSla? sla)
    {
        if (TryGetActive(record.RunId, out var active))
        {
            RunStatus status;
            Task pending;
            int version;
            lock (active.Gate)
            {
                status = active.State.Status;
                pending = active.PendingWrite;
                version = active.State.WorkflowVersion;
            }
            await pending.ConfigureAwait(false);
            return new SubmitRunResult(record.RunId, status, version, true);
        }
        var stored = LoadRun(record.RunId);
        if (stored is not null && stored.TenantId == tenantId)
            return new SubmitRunResult(record.RunId, stored.Status, stored.WorkflowVersion, true);

        // The key's record is durable but the run's is not: a crash fell between the two writes, and the client never
        // got an answer. Create the run now under the recorded id.
        var entry = CreateRun(tenantId, record.RunId, workflow, info, input, key, sla, out var write, out var effects);
        await write.ConfigureAwait(false);
        AfterDurable(entry, ref effects);
        return new SubmitRunResult(record.RunId, StatusOf(entry), workflow.Version, true);
    }

    // A key counts for IdempotencyRetention after its submission; older records are treated as absent wherever read.
    private bool IsRemembered(IdempotencyRecord record, long now) => now - record.CreatedAtMs < _retentionMs;

    // Null for bytes that are not an idempotency record (the sweep and the store's expiry treat such a record alike).
    private static IdempotencyRecord? TryParseIdempotencyRecord(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return JsonSerializer.Deserialize(bytes, ExecutionJsonContext.Default.IdempotencyRecord);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private IdempotencyRecord? ReadIdempotencyRecord(byte[] storeKey)
    {
        if (!_store.TryGet(storeKey, out var bytes))
            return null;
        try
        {
            return JsonSerializer.Deserialize(bytes, ExecutionJsonContext.Default.IdempotencyRecord);
        }
        catch (JsonException ex)
        {
            EngineLog.BadRecord(_logger, Encoding.UTF8.GetString(storeKey), ex);
            return null;
        }
    }

    private static void ValidateIdempotencyKey(string key)
    {
        if (key.Length > 256)
            throw new WayangException(ErrorCode.InvalidArgument, "The idempotency key is longer than 256 characters.");
        foreach (char c in key)
        {
            if (c is < (char)0x20 or > (char)0x7E)
                throw new WayangException(ErrorCode.InvalidArgument, "The idempotency key must be printable ASCII.");
        }
    }

    // The run input: absent (or JSON null), or an object within MaxInputBytes that has every required declared input.
    private JsonElement? ValidateInput(CompiledWorkflow workflow, JsonElement? input)
    {
        var declared = workflow.Definition.Inputs;
        if (input is not { } element || element.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
        {
            foreach (var d in declared)
            {
                if (d.Required)
                    throw new WayangException(ErrorCode.RunInputInvalid, $"Required input '{d.Name}' is missing.");
            }
            return null;
        }
        if (element.ValueKind != JsonValueKind.Object)
            throw new WayangException(ErrorCode.RunInputInvalid, "The run input must be a JSON object.");
        int size = System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(element).Length;
        if (size > _options.MaxInputBytes)
            throw new WayangException(ErrorCode.RunInputInvalid, $"The run input is {size} bytes; the limit is {_options.MaxInputBytes}.");
        foreach (var d in declared)
        {
            if (d.Required && !element.TryGetProperty(d.Name, out _))
                throw new WayangException(ErrorCode.RunInputInvalid, $"Required input '{d.Name}' is missing.");
        }
        return element;
    }

    // SHA-256 over the workflow id, the requested version (0 = latest, as asked) and the input's raw JSON text.
    internal static string RequestHash(string workflowId, int version, JsonElement? input)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes(workflowId));
        Span<byte> scratch = stackalloc byte[5];
        scratch[0] = 0;
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(scratch[1..], version);
        hash.AppendData(scratch);
        if (input is { } element)
            hash.AppendData(System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(element));
        Span<byte> digest = stackalloc byte[32];
        hash.GetHashAndReset(digest);
        return Convert.ToHexStringLower(digest);
    }

    private static void ValidateSla(RunSla? sla)
    {
        if (sla is null)
            return;
        if (!Enum.IsDefined(sla.Priority))
            throw new WayangException(ErrorCode.InvalidArgument, $"Unknown SLA priority {(int)sla.Priority}.");
        if (!Enum.IsDefined(sla.OnDeadlineMiss))
            throw new WayangException(ErrorCode.InvalidArgument, $"Unknown deadline-miss policy {(int)sla.OnDeadlineMiss}.");
        if (sla.DeadlineAtMs < 0 || sla.LatencyBudgetMs < 0)
            throw new WayangException(ErrorCode.InvalidArgument, "An SLA deadline and latency budget cannot be negative.");
        if (sla.DeadlineAtMs > 0 && sla.LatencyBudgetMs > 0)
            throw new WayangException(ErrorCode.InvalidArgument, "Give an SLA deadline or a latency budget, not both.");
    }

    private void CheckQueues(string tenantId, WorkflowInfo info)
    {
        if (QueueFullError(tenantId, info) is { } error)
            throw new WayangException(error);
    }

    private WayangError? QueueFullError(string tenantId, WorkflowInfo info)
    {
        foreach (var type in info.EntryTaskTypes)
        {
            if (_dispatcher.Depth(tenantId, type) >= _options.MaxQueueDepth)
            {
                return new WayangError(ErrorCode.QueueFull,
                    $"The queue for executor type '{type}' is full ({_options.MaxQueueDepth} tasks).", retryAfterMs: _options.QueueFullRetryAfterMs);
            }
        }
        return null;
    }

    // QUEUE_FULL for a submission without an idempotency key whose workflow runs and has a full entry queue, decided
    // before its input is parsed and without an exception: under overload clients retry in a tight loop, and refusing
    // must cost little. Null: go on with SubmitAsync (which checks again; this one is only the cheap early answer). A
    // submission with a key is not refused here: a replay of a stored key answers even while the queue is full.
    public WayangError? QueueFullRefusal(string tenantId, string workflowId, int version)
    {
        ThrowIfDisposed();
        var workflow = _registry.FindRunnable(tenantId, workflowId, version);
        return workflow is null ? null : QueueFullError(tenantId, InfoOf(workflow));
    }

    // Builds the run, plans it, issues its writes (the idempotency record first, when there is one) and publishes it.
    private RunEntry CreateRun(string tenantId, string runId, CompiledWorkflow workflow, WorkflowInfo info, JsonElement? input, string? key, RunSla? sla,
        out Task write, out Effects effects, byte[]? idempotencyStoreKey = null, IdempotencyRecord? idempotencyRecord = null)
    {
        StartCounting(workflow, info);
        long now = NowMs;
        var state = new RunState
        {
            RunId = runId,
            TenantId = tenantId,
            WorkflowId = workflow.WorkflowId,
            WorkflowVersion = workflow.Version,
            Status = RunStatus.Created,
            // The request's document belongs to the caller: keep a copy.
            Input = input?.Clone(),
            IdempotencyKey = key,
            Priority = sla?.Priority ?? SlaPriority.Unspecified,
            DeadlineAtMs = sla is null ? 0 : sla.DeadlineAtMs > 0 ? sla.DeadlineAtMs : sla.LatencyBudgetMs > 0 ? now + sla.LatencyBudgetMs : 0,
            OnDeadlineMiss = sla?.OnDeadlineMiss ?? DeadlineMissPolicy.Unspecified,
            CreatedAtMs = now,
            UpdatedAtMs = now,
        };
        state.AddEvent(RunEventType.RunCreated, now);
        RunStateMachine.Transition(state, RunStatus.Pending);
        RunStateMachine.Transition(state, RunStatus.Running);
        state.AddEvent(RunEventType.RunStarted, now);
        var entry = new RunEntry(state, workflow, info);
        effects = default;
        lock (entry.Gate)
        {
            AdvanceLocked(entry, now, ref effects);
            Task? first = null;
            if (idempotencyStoreKey is not null && idempotencyRecord is not null)
            {
                var writer = RecordWriter.Rent();
                try
                {
                    first = Issue(_store.PutAsync(idempotencyStoreKey, writer.Serialize(idempotencyRecord, ExecutionJsonContext.Default.IdempotencyRecord)));
                }
                finally
                {
                    RecordWriter.Return(writer);
                }
            }
            write = WriteRunLocked(entry, now);
            if (first is not null && !first.IsCompletedSuccessfully)
                write = Task.WhenAll(first, write);
        }
        _runs[runId] = entry;
        return entry;
    }

    // A deep copy, safe to read; null when missing or in another tenant. Waits until what it shows is durable.
    public async ValueTask<RunState?> GetRunAsync(string tenantId, string runId, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        if (TryGetActive(runId, out var entry))
        {
            if (entry.State.TenantId != tenantId)
                return null;
            byte[] copy;
            Task pending;
            lock (entry.Gate)
            {
                copy = RunRecordCodec.Serialize(entry.State);
                pending = entry.PendingWrite;
            }
            await pending.WaitAsync(cancellationToken).ConfigureAwait(false);
            return RunRecordCodec.Deserialize(copy);
        }
        var stored = LoadRun(runId);
        return stored is not null && stored.TenantId == tenantId ? stored : null;
    }

    public IReadOnlyList<RunSummary> ListRuns(string tenantId, RunStatus? status, int limit)
    {
        ThrowIfDisposed();
        limit = limit <= 0 ? 100 : Math.Min(limit, 1000);
        var result = new List<RunSummary>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (runId, entry) in _runs)
        {
            if (entry.State.TenantId != tenantId)
                continue;
            lock (entry.Gate)
            {
                seen.Add(runId);
                if (status is null || entry.State.Status == status)
                    result.Add(Summary(entry.State));
            }
        }
        // Finished runs are only in the store (admin listing: a scan).
        foreach (var (_, value) in _store.ScanPrefix(Encoding.UTF8.GetBytes(RunKeyPrefix)))
        {
            var state = Deserialize(value);
            if (state is null || state.TenantId != tenantId || seen.Contains(state.RunId))
                continue;
            if (status is null || state.Status == status)
                result.Add(Summary(state));
        }
        result.Sort(static (a, b) => b.CreatedAtMs != a.CreatedAtMs ? b.CreatedAtMs.CompareTo(a.CreatedAtMs) : string.CompareOrdinal(b.RunId, a.RunId));
        if (result.Count > limit)
            result.RemoveRange(limit, result.Count - limit);
        return result;
    }

    private static RunSummary Summary(RunState state) =>
        new(state.RunId, state.WorkflowId, state.WorkflowVersion, state.Status, state.CreatedAtMs, state.UpdatedAtMs);

    private bool TryGetActive(string runId, out RunEntry entry) => _runs.TryGetValue(runId, out entry!);

    private RunState? LoadRun(string runId)
    {
        if (!_store.TryGet(Encoding.UTF8.GetBytes(string.Concat(RunKeyPrefix, runId)), out var bytes))
            return null;
        return Deserialize(bytes);
    }

    private RunState? Deserialize(byte[] bytes)
    {
        try
        {
            return RunRecordCodec.Deserialize(bytes);
        }
        catch (Exception ex) when (ex is JsonException or FormatException)
        {
            EngineLog.BadRecord(_logger, "run", ex);
            return null;
        }
    }

    // ---- executors ----

    // tenantId: the executor's tenant; shared = true (system-tenant executors) serves every tenant's queues.
    public ExecutorHandle RegisterExecutor(string tenantId, bool shared, ExecutorRegistration registration, IExecutorChannel channel)
    {
        ThrowIfDisposed();
        var handle = _dispatcher.Register(tenantId, shared, registration, channel);
        _timers.Kick();
        return handle;
    }

    public void GrantCredit(ExecutorHandle executor, int credits)
    {
        _dispatcher.GrantCredit(executor, credits);
        _timers.Kick();
    }

    public void SetSlots(ExecutorHandle executor, int slots)
    {
        _dispatcher.SetSlots(executor, slots);
        _timers.Kick();
    }

    public void Heartbeat(ExecutorHandle executor) => _dispatcher.Heartbeat(executor);

    // The executor's leased tasks go back to the front of their queues (same attempt).
    public void UnregisterExecutor(ExecutorHandle executor)
    {
        var tasks = _dispatcher.Unregister(executor);
        for (int i = 0; i < tasks.Count; i++)
            Requeue(tasks[i], "executor disconnected");
        _timers.Kick();
    }

    // ---- queues and stats ----

    // tenantId null: every tenant (platform admin, /metrics).
    public ExecutionStats GetStats(string? tenantId)
    {
        var (queues, executors) = _dispatcher.Stats(tenantId);
        long active = 0;
        if (tenantId is null)
        {
            active = _runs.Count;
        }
        else
        {
            foreach (var (_, entry) in _runs)
            {
                if (entry.State.TenantId == tenantId)
                    active++;
            }
        }
        return new ExecutionStats(queues, executors, active, _dispatcher.Dispatched, Interlocked.Read(ref _tasksCompleted), Interlocked.Read(ref _tasksFailed),
            Interlocked.Read(ref _tasksRetried), Interlocked.Read(ref _deadLettered), _dispatcher.LeaseExpirations)
        {
            DeadlineMisses = DeadlineMisses(),
        };
    }

    // ---- idempotency sweep ----

    // Hourly, over a store that cannot expire records (see ExecutionEngine.Retention.cs): delete keys older than the
    // retention window. A key being submitted right now is skipped (its slot is taken), so the sweep never deletes a
    // record that a submission has just rewritten.
    private void SweepIdempotency()
    {
        if (Volatile.Read(ref _disposed) != 0)
            return;
        try
        {
            long now = NowMs;
            var prefix = Encoding.UTF8.GetBytes(IdempotencyKeyPrefix);
            foreach (var (key, value) in _store.ScanPrefix(prefix))
            {
                if (TryParseIdempotencyRecord(value) is { } record && IsRemembered(record, now))
                    continue;
                var slot = Encoding.UTF8.GetString(key.AsSpan(prefix.Length));
                var mine = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (!_idempotencyInFlight.TryAdd(slot, mine))
                    continue;
                try
                {
                    var current = ReadIdempotencyRecord(key);
                    if (current is null || !IsRemembered(current, now))
                        Observe(_store.DeleteAsync(key), "idempotency");
                }
                finally
                {
                    _idempotencyInFlight.TryRemove(new KeyValuePair<string, TaskCompletionSource>(slot, mine));
                    mine.TrySetResult();
                }
            }
        }
        catch (Exception ex)
        {
            EngineLog.SweepFailed(_logger, ex);
        }
    }

    // Test hook: run the hourly sweep now.
    internal void SweepIdempotencyNow() => SweepIdempotency();

    private void Observe(ValueTask task, string what)
    {
        if (task.IsCompletedSuccessfully)
        {
            task.GetAwaiter().GetResult();
            return;
        }
        _ = ObserveAsync(task, what);
    }

    private async Task ObserveAsync(ValueTask task, string what)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            EngineLog.BackgroundFailed(_logger, what, ex);
        }
    }

    private void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0)
            throw new WayangException(ErrorCode.ShuttingDown, "The execution engine is shut down.");
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _sweepTimer?.Dispose();
        await _shutdown.CancelAsync().ConfigureAwait(false);
        await _timers.DisposeAsync().ConfigureAwait(false);
        _shutdown.Dispose();
    }
}
