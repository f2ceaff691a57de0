using System.Text.Json;
using Wayang.Fast.Client.Execution;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Client;

// The execution plane (Gamelan): workflows, runs, queues, the dead-letter queue and the executor host.
// Every call acts in the tenant of the client's API key.
public sealed partial class WayangClient
{
    // ---- workflows ----

    // The definition as JSON (see protocol-spec/execution.md); the server assigns the version (1, 2, ...).
    public Task<WorkflowRegistration> RegisterWorkflowAsync(string definitionJson, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(definitionJson);
        return RegisterWorkflowCoreAsync(ExecutionMapping.Utf8(definitionJson), timeout, ct);
    }

    public Task<WorkflowRegistration> RegisterWorkflowAsync(ReadOnlyMemory<byte> utf8DefinitionJson, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        if (utf8DefinitionJson.IsEmpty)
            throw new ArgumentException("The definition is empty.", nameof(utf8DefinitionJson));
        return RegisterWorkflowCoreAsync(utf8DefinitionJson.ToArray(), timeout, ct);
    }

    private async Task<WorkflowRegistration> RegisterWorkflowCoreAsync(byte[] json, TimeSpan? timeout, CancellationToken ct)
    {
        var reply = await CallAsync<WorkflowRegisterRequest, WorkflowRegisterResponse>(
            Opcode.WorkflowRegister, new WorkflowRegisterRequest { DefinitionJson = json }, timeout, ct).ConfigureAwait(false);
        return new WorkflowRegistration(reply.WorkflowId ?? "", reply.Version);
    }

    // The stored definition as JSON; version 0: the latest.
    public async Task<string> GetWorkflowAsync(string workflowId, int version = 0, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<WorkflowGetRequest, WorkflowGetResponse>(
            Opcode.WorkflowGet, new WorkflowGetRequest { WorkflowId = workflowId, Version = version }, timeout, ct).ConfigureAwait(false);
        return System.Text.Encoding.UTF8.GetString(reply.DefinitionJson ?? []);
    }

    public async Task<IReadOnlyList<WorkflowInfo>> ListWorkflowsAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<WorkflowListResponse>(Opcode.WorkflowList, timeout, ct).ConfigureAwait(false);
        return [.. (reply.Workflows ?? []).Where(w => w is not null).Select(ExecutionMapping.ToWorkflow)];
    }

    // ---- runs ----

    // inputJson: the run input as a JSON document (null: none). idempotencyKey: a repeat with the same key returns the
    // original run with Replayed = true; the same key with a different workflow, version or input is
    // IDEMPOTENCY_KEY_CONFLICT. version 0: the latest. A full queue is QUEUE_FULL with RetryAfter.
    public Task<SubmitResult> SubmitRunAsync(string workflowId, string? inputJson = null, string? idempotencyKey = null, int version = 0,
        TimeSpan? timeout = null, CancellationToken ct = default) =>
        SubmitCoreAsync(workflowId, ExecutionMapping.Utf8(inputJson), idempotencyKey, version, timeout, ct);

    public Task<SubmitResult> SubmitRunAsync(string workflowId, JsonElement input, string? idempotencyKey = null, int version = 0,
        TimeSpan? timeout = null, CancellationToken ct = default) =>
        SubmitCoreAsync(workflowId, ExecutionMapping.Utf8(input), idempotencyKey, version, timeout, ct);

    // The input serialized with System.Text.Json (web defaults, camelCase, unless jsonOptions says otherwise).
    public Task<SubmitResult> SubmitRunAsync<TInput>(string workflowId, TInput input, JsonSerializerOptions? jsonOptions, string? idempotencyKey = null,
        int version = 0, TimeSpan? timeout = null, CancellationToken ct = default) =>
        SubmitCoreAsync(workflowId, input is null ? [] : JsonSerializer.SerializeToUtf8Bytes(input, jsonOptions ?? JsonSerializerOptions.Web),
            idempotencyKey, version, timeout, ct);

    // With SLA tags: the run's priority class, deadline or latency budget and deadline-miss policy (README: Scheduling).
    public Task<SubmitResult> SubmitRunAsync(string workflowId, string? inputJson, SubmitSla sla, string? idempotencyKey = null, int version = 0,
        TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(sla);
        return SubmitCoreAsync(workflowId, ExecutionMapping.Utf8(inputJson), idempotencyKey, version, timeout, ct, sla);
    }

    private async Task<SubmitResult> SubmitCoreAsync(string workflowId, byte[] input, string? idempotencyKey, int version, TimeSpan? timeout, CancellationToken ct,
        SubmitSla? sla = null)
    {
        var request = new RunSubmitRequest { WorkflowId = workflowId, Version = version, InputJson = input, IdempotencyKey = idempotencyKey ?? "" };
        if (sla is not null)
        {
            request.Priority = (int)sla.Priority;
            request.DeadlineAtMs = sla.Deadline?.ToUnixTimeMilliseconds() ?? 0;
            request.LatencyBudgetMs = sla.LatencyBudget is { } budget ? (long)budget.TotalMilliseconds : 0;
            request.OnDeadlineMiss = (int)sla.OnDeadlineMiss;
        }
        var reply = await CallAsync<RunSubmitRequest, RunSubmitResponse>(Opcode.RunSubmit, request, timeout, ct).ConfigureAwait(false);
        return new SubmitResult(reply.RunId ?? "", (RunStatus)reply.Status, reply.WorkflowVersion, reply.Replayed);
    }

    public async Task<RunInfo> GetRunAsync(string runId, bool includeEvents = false, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<RunGetRequest, RunDto>(
            Opcode.RunGet, new RunGetRequest { RunId = runId, IncludeEvents = includeEvents }, timeout, ct).ConfigureAwait(false);
        return ExecutionMapping.ToRun(reply);
    }

    // Newest first as the server orders them; status null: any. limit 0: the server default (100), at most 1,000.
    public async Task<IReadOnlyList<RunSummary>> ListRunsAsync(RunStatus? status = null, int limit = 0, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<RunListRequest, RunListResponse>(
            Opcode.RunList, new RunListRequest { Status = (int)(status ?? RunStatus.Unspecified), Limit = limit }, timeout, ct).ConfigureAwait(false);
        return [.. (reply.Runs ?? []).Where(r => r is not null).Select(ExecutionMapping.ToSummary)];
    }

    public Task<RunSummary> CancelRunAsync(string runId, string? reason = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        ControlRunAsync(Opcode.RunCancel, runId, reason, timeout, ct);

    public Task<RunSummary> SuspendRunAsync(string runId, TimeSpan? timeout = null, CancellationToken ct = default) =>
        ControlRunAsync(Opcode.RunSuspend, runId, null, timeout, ct);

    public Task<RunSummary> ResumeRunAsync(string runId, TimeSpan? timeout = null, CancellationToken ct = default) =>
        ControlRunAsync(Opcode.RunResume, runId, null, timeout, ct);

    // Releases WAIT nodes waiting for this signal; the payload (JSON, null: none) becomes their output.
    public async Task<RunSummary> SignalRunAsync(string runId, string signal, string? payloadJson = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var request = new RunSignalRequest { RunId = runId, Signal = signal, PayloadJson = ExecutionMapping.Utf8(payloadJson) };
        var reply = await CallAsync<RunSignalRequest, RunSummaryDto>(Opcode.RunSignal, request, timeout, ct).ConfigureAwait(false);
        return ExecutionMapping.ToSummary(reply);
    }

    private async Task<RunSummary> ControlRunAsync(Opcode opcode, string runId, string? reason, TimeSpan? timeout, CancellationToken ct)
    {
        var reply = await CallAsync<RunControlRequest, RunSummaryDto>(
            opcode, new RunControlRequest { RunId = runId, Reason = reason ?? "" }, timeout, ct).ConfigureAwait(false);
        return ExecutionMapping.ToSummary(reply);
    }

    // Polls GetRunAsync until the run is COMPLETED, FAILED or CANCELLED (or the token fires).
    public async Task<RunInfo> WaitForRunAsync(string runId, TimeSpan? pollInterval = null, bool includeEvents = false, CancellationToken ct = default)
    {
        var interval = pollInterval ?? TimeSpan.FromMilliseconds(100);
        while (true)
        {
            var run = await GetRunAsync(runId, includeEvents, ct: ct).ConfigureAwait(false);
            if (run.IsTerminal)
                return run;
            try
            {
                await Task.Delay(interval, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                throw new WayangException(ErrorCode.Cancelled, $"Stopped waiting for run {runId} ({RunStatuses.Name(run.Status)}).");
            }
        }
    }

    // ---- queues ----

    // allTenants: every tenant's queues and executors (platform admin only); otherwise the caller's tenant.
    public async Task<QueueStats> GetQueueStatsAsync(bool allTenants = false, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<QueueStatsRequest, QueueStatsResponse>(
            Opcode.QueueStats, new QueueStatsRequest { TenantId = allTenants ? "*" : "" }, timeout, ct).ConfigureAwait(false);
        return ExecutionMapping.ToStats(reply);
    }

    // ---- scheduling (platform admin) ----

    // Replaces the tenant's weight and limits (0 = no limit); returns once durable.
    public async Task<TenantScheduleInfo> SetTenantScheduleAsync(TenantScheduleInfo schedule, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        var reply = await CallAsync<TenantScheduleDto, TenantScheduleDto>(Opcode.TenantScheduleSet, new TenantScheduleDto
        {
            TenantId = schedule.TenantId, Weight = schedule.Weight, MaxConcurrent = schedule.MaxConcurrent,
            MaxQueued = schedule.MaxQueued, MaxSubmitsPerSecond = schedule.MaxSubmitsPerSecond,
        }, timeout, ct).ConfigureAwait(false);
        return ToInfo(reply);
    }

    // tenantId null: every tenant that has a schedule.
    public async Task<IReadOnlyList<TenantScheduleInfo>> ListTenantSchedulesAsync(string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<TenantScheduleListRequest, TenantScheduleListResponse>(
            Opcode.TenantScheduleList, new TenantScheduleListRequest { TenantId = tenantId ?? "" }, timeout, ct).ConfigureAwait(false);
        return [.. (reply.Schedules ?? []).Select(ToInfo)];
    }

    private static TenantScheduleInfo ToInfo(TenantScheduleDto d) =>
        new(d.TenantId ?? "", d.Weight, d.MaxConcurrent, d.MaxQueued, d.MaxSubmitsPerSecond);

    // ---- dead letters ----

    public async Task<IReadOnlyList<DeadLetterInfo>> ListDeadLettersAsync(DeadLetterFilter? filter = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<DlqListRequest, DlqListResponse>(
            Opcode.DlqList, new DlqListRequest { Filter = ExecutionMapping.ToFilter(filter) }, timeout, ct).ConfigureAwait(false);
        return [.. (reply.Entries ?? []).Where(e => e is not null).Select(ExecutionMapping.ToDeadLetter)];
    }

    public async Task<DeadLetterInfo> GetDeadLetterAsync(string deadLetterId, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<DlqShowRequest, DeadLetterDto>(
            Opcode.DlqShow, new DlqShowRequest { Id = deadLetterId }, timeout, ct).ConfigureAwait(false);
        return ExecutionMapping.ToDeadLetter(reply);
    }

    // Replays the listed entries: each becomes a new attempt of its node (its run reopens if it had failed).
    // ratePerSecond 0: the server's default pace; the reply comes when every entry was handled, so give large replays a
    // longer timeout.
    public Task<IReadOnlyList<DeadLetterReplayOutcome>> ReplayDeadLettersAsync(IEnumerable<string> ids, int ratePerSecond = 0,
        TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var list = RequireIds(ids);
        return ReplayCoreAsync(new DlqActionRequest { Ids = list, RatePerSecond = ratePerSecond }, timeout, ct);
    }

    // Replays every entry matching the filter. An empty filter matches the whole tenant's DLQ and needs all = true.
    public Task<IReadOnlyList<DeadLetterReplayOutcome>> ReplayDeadLettersAsync(DeadLetterFilter filter, bool all = false, int ratePerSecond = 0,
        TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        return ReplayCoreAsync(new DlqActionRequest { Filter = ExecutionMapping.ToFilter(filter), All = all, RatePerSecond = ratePerSecond }, timeout, ct);
    }

    private async Task<IReadOnlyList<DeadLetterReplayOutcome>> ReplayCoreAsync(DlqActionRequest request, TimeSpan? timeout, CancellationToken ct)
    {
        if (request.RatePerSecond < 0)
            throw new ArgumentOutOfRangeException(nameof(request), "ratePerSecond must not be negative.");
        var reply = await CallAsync<DlqActionRequest, DlqReplayResponse>(Opcode.DlqReplay, request, timeout, ct).ConfigureAwait(false);
        return [.. (reply.Outcomes ?? []).Where(o => o is not null).Select(ExecutionMapping.ToOutcome)];
    }

    // Returns how many entries were discarded.
    public Task<int> DiscardDeadLettersAsync(IEnumerable<string> ids, TimeSpan? timeout = null, CancellationToken ct = default) =>
        DiscardCoreAsync(new DlqActionRequest { Ids = RequireIds(ids) }, timeout, ct);

    public Task<int> DiscardDeadLettersAsync(DeadLetterFilter filter, bool all = false, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        return DiscardCoreAsync(new DlqActionRequest { Filter = ExecutionMapping.ToFilter(filter), All = all }, timeout, ct);
    }

    private async Task<int> DiscardCoreAsync(DlqActionRequest request, TimeSpan? timeout, CancellationToken ct)
    {
        var reply = await CallAsync<DlqActionRequest, DlqDiscardResponse>(Opcode.DlqDiscard, request, timeout, ct).ConfigureAwait(false);
        return reply.Discarded;
    }

    private static string[] RequireIds(IEnumerable<string> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        string[] list = [.. ids];
        if (list.Length == 0 || list.Any(string.IsNullOrWhiteSpace))
            throw new ArgumentException("At least one dead-letter id is required, and none may be empty.", nameof(ids));
        return list;
    }

    // ---- executors ----

    // Starts an executor on this client's connection (see ExecutorHost); stop it with StopAsync/DisposeAsync or ct.
    // Delivery is at-least-once: make the handler's side effects idempotent by ExecutorTask.TaskId.
    public ExecutorHost StartExecutor(ExecutorOptions options, Func<ExecutorTask, CancellationToken, ValueTask<TaskOutcome>> handler, CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new ExecutorHost(this, options, handler, ct);
    }

    // Runs an executor until ct is cancelled (then returns normally, after the handlers returned) or the server refuses
    // the registration for good (throws WayangException). Concurrency = options.Slots.
    public async Task RunExecutorAsync(ExecutorOptions options, Func<ExecutorTask, CancellationToken, ValueTask<TaskOutcome>> handler, CancellationToken ct)
    {
        var host = StartExecutor(options, handler, ct);
        await using (host.ConfigureAwait(false))
            await host.Completion.ConfigureAwait(false);
    }
}
