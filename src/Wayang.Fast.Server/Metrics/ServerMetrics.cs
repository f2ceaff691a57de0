using System.Diagnostics;
using System.Globalization;
using System.Text;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Control.Audit;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Server.Sessions;

namespace Wayang.Fast.Server.Metrics;

// Process-wide metrics and the Prometheus text exposition (format 0.0.4), written by hand: no package.
// Per-connection hot counters live in SessionStats; what is here is either rare (connections, errors,
// journal commits) and updated with Interlocked, or the folded totals of closed sessions.
internal sealed class ServerMetrics
{
    private static readonly ErrorCode[] KnownCodes = [.. ErrorRegistry.All.Select(e => e.Code)];

    private readonly Lock _retiredLock = new();
    private readonly SessionStats _retired = new();
    private readonly long[] _errors = new long[KnownCodes.Length + 1];
    private readonly long[] _commitBuckets = new long[LatencyBuckets.Count];
    private long _commitSumTicks;
    private long _commitCount;

    public long ConnectionsCurrent;
    public long ConnectionsTotal;
    public long ConnectionsRejected;
    public long FramesTruncated;
    public long SessionFaults;

    public void Error(ErrorCode code) => Interlocked.Increment(ref _errors[ErrorSlot(code)]);

    public long ErrorCount(ErrorCode code) => Volatile.Read(ref _errors[ErrorSlot(code)]);

    // The state store's counters (checkpoints, compactions, records dropped by retention); null in cores without a store.
    public Wayang.Fast.Storage.StorageMetrics? Storage { get; set; }

    public void JournalCommit(TimeSpan elapsed)
    {
        long ticks = (long)(elapsed.TotalSeconds * Stopwatch.Frequency);
        Interlocked.Increment(ref _commitBuckets[LatencyBuckets.IndexOf(ticks)]);
        Interlocked.Add(ref _commitSumTicks, ticks);
        Interlocked.Increment(ref _commitCount);
    }

    public void Retire(SessionStats stats)
    {
        lock (_retiredLock)
            stats.AddTo(_retired);
    }

    private static int ErrorSlot(ErrorCode code)
    {
        int i = Array.IndexOf(KnownCodes, code);
        return i < 0 ? KnownCodes.Length : i;
    }

    public string Render(IEnumerable<Session> liveSessions, ExecutionEngine? execution = null, AuditLog? audit = null,
        Wayang.Fast.Inference.Gateway.InferenceGateway? inference = null)
    {
        var total = new SessionStats();
        long inFlight = 0;
        lock (_retiredLock)
            _retired.AddTo(total);
        foreach (var s in liveSessions)
        {
            s.Stats.AddTo(total);
            inFlight += s.InFlightCount;
        }

        var sb = new StringBuilder(16 * 1024);
        Gauge(sb, "wayang_connections_current", "Open protocol connections.", Volatile.Read(ref ConnectionsCurrent));
        Counter(sb, "wayang_connections_total", "Protocol connections accepted.", Volatile.Read(ref ConnectionsTotal));
        Counter(sb, "wayang_connections_rejected_total", "Connections refused with TOO_MANY_CONNECTIONS.", Volatile.Read(ref ConnectionsRejected));
        Gauge(sb, "wayang_requests_in_flight", "Asynchronous requests and streams in flight.", inFlight);

        Header(sb, "wayang_frames_in_total", "Frames received, by frame type.", "counter");
        for (int t = 1; t <= 12; t++)
            Sample(sb, "wayang_frames_in_total", "type", FrameTypeNames.Names[t], total.FramesIn[t]);
        Header(sb, "wayang_frames_out_total", "Frames sent, by frame type.", "counter");
        for (int t = 1; t <= 12; t++)
            Sample(sb, "wayang_frames_out_total", "type", FrameTypeNames.Names[t], total.FramesOut[t]);
        Counter(sb, "wayang_bytes_in_total", "Protocol bytes received in complete frames.", total.BytesIn);
        Counter(sb, "wayang_bytes_out_total", "Protocol bytes written.", total.BytesOut);

        Header(sb, "wayang_request_duration_seconds", "Request latency from frame parsed to final reply written, by opcode.", "histogram");
        for (int op = 0; op < OpcodeIndex.Count; op++)
        {
            var label = string.Concat("opcode=\"", OpcodeIndex.Names[op], "\"");
            Histogram(sb, "wayang_request_duration_seconds", label, total.LatencyBuckets.AsSpan(op * LatencyBuckets.Count, LatencyBuckets.Count), total.LatencySumTicks[op], total.LatencyCount[op]);
        }

        Header(sb, "wayang_errors_total", "ERROR frames sent and connection-level errors, by code name.", "counter");
        for (int i = 0; i < KnownCodes.Length; i++)
            Sample(sb, "wayang_errors_total", "code", ErrorRegistry.NameOf(KnownCodes[i]), Volatile.Read(ref _errors[i]));
        Sample(sb, "wayang_errors_total", "code", "OTHER", Volatile.Read(ref _errors[KnownCodes.Length]));

        Header(sb, "wayang_journal_commit_duration_seconds", "Storage group-commit latency.", "histogram");
        Histogram(sb, "wayang_journal_commit_duration_seconds", null, _commitBuckets, Volatile.Read(ref _commitSumTicks), Volatile.Read(ref _commitCount));

        if (Storage is { } store)
        {
            Counter(sb, "wayang_store_checkpoints_total", "State-store checkpoints taken.", store.CheckpointCount);
            Counter(sb, "wayang_store_compactions_total", "State-store log compactions.", store.CompactionCount);
            Counter(sb, "wayang_store_compacted_bytes_total", "Log bytes reclaimed by compaction (BeginAddress moved).", store.CompactedBytes);
            Counter(sb, "wayang_store_expired_records_total", "Records dropped at compaction by retention (finished runs, old idempotency keys).", store.ExpiredRecords);
        }
        // The thread pool carries every async step of a request; at moderate load its cost is wake-ups per work item
        // (bench/RESULTS.md, issue 3, tenth pass), which these make visible: work items per request, and threads the
        // pool added beyond its minimum because work blocked.
        Counter(sb, "wayang_threadpool_work_items_total", "Thread-pool work items completed (process-wide).", ThreadPool.CompletedWorkItemCount);
        Gauge(sb, "wayang_threadpool_threads", "Thread-pool worker threads (process-wide).", ThreadPool.ThreadCount);
        Gauge(sb, "wayang_threadpool_queue_length", "Thread-pool work items queued and not yet started (process-wide).", ThreadPool.PendingWorkItemCount);
        Counter(sb, "wayang_frames_truncated_total", "Connections that ended in the middle of a frame.", Volatile.Read(ref FramesTruncated));
        Counter(sb, "wayang_session_faults_total", "Sessions ended by an unexpected exception (a bug if nonzero).", Volatile.Read(ref SessionFaults));
        if (audit is not null)
            Counter(sb, "wayang_audit_records_total", "Records appended to the audit log (its head sequence): denials, changes and audit reads.", audit.Head.Sequence);
        if (execution is not null)
            RenderExecution(sb, execution.GetStats(null));
        if (inference is not null)
        {
            RenderInference(sb, inference.Metrics);
            if (inference.Usage is Wayang.Fast.Inference.Models.ModelWarmer warmer)
                RenderWarming(sb, warmer.Snapshot());
            RenderEngine(sb, inference.Providers.OfType<Wayang.Fast.Inference.Adapters.Gollek.GollekProvider>());
        }
        return sb.ToString();
    }

    // The execution plane: one snapshot of the engine's queues, executors and counters. Per-queue and per-executor
    // series exist while the queue or executor does (tenant and executor type names are [a-z0-9_-]; executor ids are
    // free text and escaped).
    private static void RenderExecution(StringBuilder sb, ExecutionStats stats)
    {
        Header(sb, "wayang_execution_queue_depth", "Tasks waiting in a queue (tenant x executor type).", "gauge");
        foreach (var q in stats.Queues)
            QueueSample(sb, "wayang_execution_queue_depth", q.TenantId, q.ExecutorType, q.Depth);
        Header(sb, "wayang_execution_queue_leased", "Tasks of a queue leased to executors (dispatched, no result yet).", "gauge");
        foreach (var q in stats.Queues)
            QueueSample(sb, "wayang_execution_queue_leased", q.TenantId, q.ExecutorType, q.Leased);
        Header(sb, "wayang_execution_queue_max_depth", "Queue depth at which submissions are refused with QUEUE_FULL.", "gauge");
        foreach (var q in stats.Queues)
            QueueSample(sb, "wayang_execution_queue_max_depth", q.TenantId, q.ExecutorType, q.MaxDepth);

        Gauge(sb, "wayang_execution_executors", "Registered executors (task streams open).", stats.Executors.Count);
        Header(sb, "wayang_execution_executor_slots", "Tasks an executor may run at once.", "gauge");
        foreach (var e in stats.Executors)
            ExecutorSample(sb, "wayang_execution_executor_slots", e, e.Slots);
        Header(sb, "wayang_execution_executor_in_flight", "Tasks leased to an executor.", "gauge");
        foreach (var e in stats.Executors)
            ExecutorSample(sb, "wayang_execution_executor_in_flight", e, e.InFlight);
        Header(sb, "wayang_execution_executor_credit", "Stream credit an executor has granted and the server has not used.", "gauge");
        foreach (var e in stats.Executors)
            ExecutorSample(sb, "wayang_execution_executor_credit", e, e.Credit);

        Gauge(sb, "wayang_execution_runs_active", "Runs not yet finished (held in memory).", stats.RunsActive);
        Counter(sb, "wayang_execution_tasks_dispatched_total", "Task pushes to executors (redeliveries included).", stats.TasksDispatched);
        Counter(sb, "wayang_execution_tasks_completed_total", "Task results accepted as successes.", stats.TasksCompleted);
        Counter(sb, "wayang_execution_tasks_failed_total", "Task attempts that failed (reported failures and timeouts).", stats.TasksFailed);
        Counter(sb, "wayang_execution_tasks_retried_total", "Retries scheduled after a failed attempt.", stats.TasksRetried);
        Counter(sb, "wayang_execution_dead_lettered_total", "Tasks moved to the dead-letter queue.", stats.DeadLettered);
        Counter(sb, "wayang_execution_lease_expirations_total", "Leases that expired without a result (the task was redelivered).", stats.LeaseExpirations);
        Header(sb, "wayang_execution_deadline_misses_total", "Tasks that reached their turn to dispatch after their SLA deadline.", "counter");
        foreach (var (tenant, priority, misses) in stats.DeadlineMisses)
        {
            sb.Append("wayang_execution_deadline_misses_total{tenant=\"").Append(Escape(tenant)).Append("\",priority=\"")
              .Append(PriorityLabel(priority)).Append("\"} ").Append(misses.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
    }

    private static void QueueSample(StringBuilder sb, string name, string tenant, string executorType, long value) =>
        sb.Append(name).Append("{tenant=\"").Append(Escape(tenant)).Append("\",executor_type=\"").Append(Escape(executorType)).Append("\"} ")
          .Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');

    private static void ExecutorSample(StringBuilder sb, string name, ExecutorStat e, long value) =>
        sb.Append(name).Append("{tenant=\"").Append(Escape(e.TenantId)).Append("\",executor=\"").Append(Escape(e.ExecutorId))
          .Append("\",shared=\"").Append(e.Shared ? "true" : "false").Append("\"} ")
          .Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');

    private static string PriorityLabel(SlaPriority priority) => priority switch
    {
        SlaPriority.Low => "low",
        SlaPriority.High => "high",
        SlaPriority.Critical => "critical",
        _ => "normal",
    };

    // The gateway's counters: requests (and per requested model: the popularity cache warming reads), answers served
    // by a fallback target, requests that failed, and failed attempts per error code.
    private static void RenderInference(StringBuilder sb, Wayang.Fast.Inference.Gateway.GatewayMetrics m)
    {
        Counter(sb, "wayang_inference_requests_total", "Inference requests (chat, streams, embeddings).", m.Requests);
        Counter(sb, "wayang_inference_fallbacks_total", "Inference requests answered by a target after the first.", m.Fallbacks);
        Counter(sb, "wayang_inference_failed_total", "Inference requests that no target answered.", m.Failed);
        Header(sb, "wayang_inference_model_requests_total", "Inference requests per requested model or alias.", "counter");
        foreach (var (model, n) in m.RequestsByModel.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            Sample(sb, "wayang_inference_model_requests_total", "model", Escape(model), n);
        Header(sb, "wayang_inference_attempt_errors_total", "Failed attempts on a target, per error code.", "counter");
        foreach (var (code, n) in m.ErrorsByCode.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            Sample(sb, "wayang_inference_attempt_errors_total", "code", code, n);
        var providers = m.ByProvider.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        Header(sb, "wayang_inference_provider_attempts_total", "Attempts on each provider.", "counter");
        foreach (var (name, stats) in providers)
            Sample(sb, "wayang_inference_provider_attempts_total", "provider", Escape(name), stats.Attempts);
        Header(sb, "wayang_inference_provider_failures_total", "Failed attempts on each provider.", "counter");
        foreach (var (name, stats) in providers)
            Sample(sb, "wayang_inference_provider_failures_total", "provider", Escape(name), stats.Failures);
        Header(sb, "wayang_inference_provider_attempt_milliseconds_total", "Time attempts on each provider took (to the answer, or a stream's first delta).", "counter");
        foreach (var (name, stats) in providers)
            Sample(sb, "wayang_inference_provider_attempt_milliseconds_total", "provider", Escape(name), (long)stats.Time.TotalMilliseconds);
    }

    private static void RenderWarming(StringBuilder sb, Wayang.Fast.Inference.Models.ModelWarmerSnapshot w)
    {
        Gauge(sb, "wayang_inference_loaded_models", "Local models loaded.", w.Loaded.Count);
        Gauge(sb, "wayang_inference_loaded_model_bytes", "Bytes the loaded local models take.", w.LoadedBytes);
        Counter(sb, "wayang_inference_prefetches_total", "Models loaded ahead of use (at start, by an operator, by popularity).", w.Prefetches);
        Counter(sb, "wayang_inference_cold_starts_total", "Requests whose model was not loaded.", w.ColdStarts);
        Counter(sb, "wayang_inference_cold_start_milliseconds_total", "Time from a cold request's start to its first output, summed.", (long)w.ColdStartLatency.TotalMilliseconds);
        Counter(sb, "wayang_inference_evictions_total", "Models unloaded to stay under the memory budget.", w.Evictions);
        Counter(sb, "wayang_inference_over_budget_loads_total", "Loads that went over the budget because nothing could be evicted.", w.OverBudgetLoads);
    }

    // Our engine (the gollek providers): per loaded model, the scheduler's queues and counters and the paged KV cache's
    // occupancy and prefix reuse. Series exist while the model is loaded.
    private static void RenderEngine(StringBuilder sb, IEnumerable<Wayang.Fast.Inference.Adapters.Gollek.GollekProvider> providers)
    {
        var models = providers.SelectMany(p => p.GetMetrics().Select(m => (Labels: $"provider=\"{Escape(p.Name)}\",model=\"{Escape(m.Model)}\"", Metrics: m))).ToList();
        if (models.Count == 0)
            return;
        EngineSeries(sb, models, "wayang_engine_running_sequences", "Sequences holding KV blocks (decoding or part-way prefilled).", "gauge", m => m.Scheduler.Running);
        EngineSeries(sb, models, "wayang_engine_waiting_sequences", "Requests submitted or preempted and not yet admitted.", "gauge", m => m.Scheduler.Waiting);
        EngineSeries(sb, models, "wayang_engine_steps_total", "Scheduler steps (one forward pass each when there is work).", "counter", m => m.Scheduler.Steps);
        EngineSeries(sb, models, "wayang_engine_tokens_generated_total", "Tokens sampled and streamed.", "counter", m => m.Scheduler.TokensGenerated);
        EngineSeries(sb, models, "wayang_engine_preemptions_total", "Sequences preempted by recompute for lack of KV blocks.", "counter", m => m.Scheduler.Preemptions);
        EngineSeries(sb, models, "wayang_engine_kv_blocks_total", "KV cache blocks.", "gauge", m => m.KvCache.TotalBlocks);
        EngineSeries(sb, models, "wayang_engine_kv_blocks_used", "KV cache blocks referenced by sequences.", "gauge", m => m.KvCache.UsedBlocks);
        EngineSeries(sb, models, "wayang_engine_kv_blocks_free", "KV cache blocks on the free list (cached prefix blocks are counted apart).", "gauge", m => m.KvCache.FreeBlocks);
        EngineSeries(sb, models, "wayang_engine_kv_blocks_cached", "Unreferenced full blocks kept for prefix reuse.", "gauge", m => m.KvCache.CachedEvictableBlocks);
        EngineSeries(sb, models, "wayang_engine_kv_live_tokens", "Token slots holding live K/V (shared blocks once).", "gauge", m => m.KvCache.LiveTokens);
        EngineSeries(sb, models, "wayang_engine_prefix_query_tokens_total", "Prompt tokens looked up in the prefix cache.", "counter", m => m.KvCache.PrefixQueryTokens);
        EngineSeries(sb, models, "wayang_engine_prefix_hit_tokens_total", "Prompt tokens whose K/V came from the prefix cache.", "counter", m => m.KvCache.PrefixHitTokens);
        EngineSeries(sb, models, "wayang_engine_kv_evictions_total", "Cached prefix blocks evicted (least recently released first).", "counter", m => m.KvCache.Evictions);
        EngineSeries(sb, models, "wayang_engine_kv_copy_on_write_total", "Shared blocks copied before a write.", "counter", m => m.KvCache.CopyOnWriteCopies);
    }

    private static void EngineSeries(StringBuilder sb, List<(string Labels, Wayang.Fast.Inference.Adapters.Gollek.GollekModelMetrics Metrics)> models,
        string name, string help, string type, Func<Wayang.Fast.Inference.Adapters.Gollek.GollekModelMetrics, long> value)
    {
        Header(sb, name, help, type);
        foreach (var (labels, metrics) in models)
            sb.Append(name).Append('{').Append(labels).Append("} ").Append(value(metrics).ToString(CultureInfo.InvariantCulture)).Append('\n');
    }

    // Prometheus label values escape backslash, double quote and line feed.
    private static string Escape(string value) =>
        value.AsSpan().IndexOfAny('\\', '"', '\n') < 0 ? value : value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static void Header(StringBuilder sb, string name, string help, string type) =>
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n')
          .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static void Gauge(StringBuilder sb, string name, string help, long value)
    {
        Header(sb, name, help, "gauge");
        sb.Append(name).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
    }

    private static void Counter(StringBuilder sb, string name, string help, long value)
    {
        Header(sb, name, help, "counter");
        sb.Append(name).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
    }

    private static void Sample(StringBuilder sb, string name, string label, string labelValue, long value) =>
        sb.Append(name).Append('{').Append(label).Append("=\"").Append(labelValue).Append("\"} ")
          .Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');

    private static void Histogram(StringBuilder sb, string name, string? labels, ReadOnlySpan<long> buckets, long sumTicks, long count)
    {
        long cumulative = 0;
        for (int b = 0; b < buckets.Length; b++)
        {
            cumulative += Volatile.Read(in buckets[b]);
            sb.Append(name).Append("_bucket{");
            if (labels is not null)
                sb.Append(labels).Append(',');
            sb.Append("le=\"").Append(LatencyBuckets.LeLabels[b]).Append("\"} ").Append(cumulative.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        var suffix = labels is null ? " " : string.Concat("{", labels, "} ");
        sb.Append(name).Append("_sum").Append(suffix)
          .Append(((double)sumTicks / Stopwatch.Frequency).ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        sb.Append(name).Append("_count").Append(suffix).Append(count.ToString(CultureInfo.InvariantCulture)).Append('\n');
    }
}
