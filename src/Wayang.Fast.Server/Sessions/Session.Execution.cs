using System.Buffers;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Execution.DeadLetters;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Execution.Runs;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Sessions;

// The execution plane's opcodes (0x02xx): frames in, ExecutionEngine calls, frames out. Permission was checked
// (Authorization.Check) before we get here. Every operation acts in the caller's own tenant (principal.TenantId);
// only QueueStats lets a platform admin look across tenants.
//
// Boundary rules: MessagePack nil decodes as null, so every string/array field is defaulted here (?? "", ?? []).
// *Json fields: an empty bin is "no value" (null); anything else must parse as JSON (INVALID_ARGUMENT naming the
// field otherwise) and is handed to the engine as a cloned JsonElement. Pure reads answer synchronously on the read
// loop; anything that awaits the engine (a durable write) runs as a unary async request.
internal sealed partial class Session
{
    private const int DefaultListLimit = 100;
    private const int MaxListLimit = 1000;
    private const int MaxDeadLetterIds = 1000;

    // Executor streams registered on this connection, by executor id. Guarded by _requestsLock.
    private readonly Dictionary<string, ExecutorStream> _executors = new(StringComparer.Ordinal);

    private ExecutionEngine Engine => _server.Execution!;

    private string Tenant => _principal!.TenantId;

    // Executors of the system tenant are shared: they serve every tenant's queues.
    private bool SharedExecutor => string.Equals(_principal!.TenantId, TenantDirectory.SystemTenantId, StringComparison.Ordinal);

    private void DispatchExecution(in Frame frame, uint streamId, Opcode opcode, long start)
    {
        if (_server.Execution is null)
        {
            _writer.WriteError(streamId, opcode, new WayangError(ErrorCode.Unavailable, "The execution plane is not running on this server."), start);
            return;
        }
        try
        {
            switch (opcode)
            {
                case Opcode.WorkflowRegister:
                    WorkflowRegister(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.WorkflowGet:
                    WorkflowGet(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.WorkflowList:
                    WorkflowList(streamId, opcode, start);
                    return;
                case Opcode.RunSubmit:
                    RunSubmit(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.RunGet:
                    RunGet(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.RunList:
                    RunList(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.RunCancel or Opcode.RunSuspend or Opcode.RunResume:
                    RunControl(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.RunSignal:
                    RunSignal(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.ExecutorRegister:
                    ExecutorRegister(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.ExecutorSetSlots:
                    ExecutorSetSlots(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.ExecutorHeartbeat:
                    ExecutorHeartbeat(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.TaskResult:
                    TaskResult(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.QueueStats:
                    QueueStats(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.TenantScheduleSet:
                    TenantScheduleSet(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.TenantScheduleList:
                    TenantScheduleList(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.DlqList:
                    DlqList(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.DlqShow:
                    DlqShow(frame.Body, streamId, opcode, start);
                    return;
                case Opcode.DlqReplay or Opcode.DlqDiscard:
                    DlqAction(frame.Body, streamId, opcode, start);
                    return;
                default:
                    _writer.WriteError(streamId, opcode, ErrorCode.UnknownOpcode, start);
                    return;
            }
        }
        catch (WayangException ex)
        {
            // Synchronous refusals: definition parsing, validation in the engine's synchronous calls.
            _writer.WriteError(streamId, opcode, ex.Error, start);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A plane bug must cost one request, not the connection.
            Log.RequestFailed(_server.Logger, opcode.ToString(), streamId, ConnectionId, ex);
            _writer.WriteError(streamId, opcode, ErrorCode.Internal, start);
        }
    }

    // ---- workflows ----

    private void WorkflowRegister(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out WorkflowRegisterRequest? request))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        // The JSON Schema first (WORKFLOW_INVALID listing every violation), then the strict parse; the graph and its
        // references are validated by the engine's registry. Register = create + publish in one step.
        var definition = ParseWorkflow(request.DefinitionJson ?? []);
        StartAudited(streamId, opcode, start, definition, $"workflow:{definition.Id}", Tenant, static async (s, d, ct) =>
        {
            var summary = await s.Engine.RegisterWorkflowAsync(s.Tenant, d, ct).ConfigureAwait(false);
            return new WorkflowRegisterResponse { WorkflowId = summary.WorkflowId, Version = summary.LatestVersion };
        });
    }

    private void WorkflowGet(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out WorkflowGetRequest? request))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        if (request.Version < 0)
            throw new WayangException(ErrorCode.InvalidArgument, "Version must be 0 (the latest) or a version number.");
        var workflowId = request.WorkflowId ?? "";
        var definition = Engine.GetWorkflow(Tenant, workflowId, request.Version)
            ?? throw new WayangException(ErrorCode.WorkflowNotFound, request.Version == 0
                ? $"Workflow '{workflowId}' does not exist."
                : $"Workflow '{workflowId}' version {request.Version} does not exist.");
        var json = JsonSerializer.SerializeToUtf8Bytes(definition, ExecutionJsonContext.Default.WorkflowDefinition);
        _writer.WriteMessage(FrameType.Response, opcode, streamId, new WorkflowGetResponse { DefinitionJson = json }, start);
    }

    // The request body is ignored (empty by the spec).
    private void WorkflowList(uint streamId, Opcode opcode, long start)
    {
        var workflows = Engine.ListWorkflows(Tenant);
        var dtos = new WorkflowInfoDto[workflows.Count];
        for (int i = 0; i < dtos.Length; i++)
        {
            var w = workflows[i];
            dtos[i] = new WorkflowInfoDto { WorkflowId = w.WorkflowId, LatestVersion = w.LatestVersion, Versions = [.. w.Versions], UpdatedAtMs = w.UpdatedAtMs };
        }
        _writer.WriteMessage(FrameType.Response, opcode, streamId, new WorkflowListResponse { Workflows = dtos }, start);
    }

    // ---- runs ----

    private void RunSubmit(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out RunSubmitRequest? request))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        if (request.Version < 0)
            throw new WayangException(ErrorCode.InvalidArgument, "Version must be 0 (the latest) or a version number.");
        var key = string.IsNullOrEmpty(request.IdempotencyKey) ? null : request.IdempotencyKey;
        if (key is null && Engine.QueueFullRefusal(Tenant, request.WorkflowId ?? "", request.Version) is { } full)
        {
            _writer.WriteError(streamId, opcode, full, start);
            return;
        }
        var input = ParseJson(request.InputJson, nameof(RunSubmitRequest.InputJson));
        if (request.Priority is < 0 or > byte.MaxValue || request.OnDeadlineMiss is < 0 or > byte.MaxValue)
            throw new WayangException(ErrorCode.InvalidArgument, "Priority and OnDeadlineMiss are small enum values (see protocol-spec).");
        RunSla? sla = request.Priority == 0 && request.DeadlineAtMs == 0 && request.LatencyBudgetMs == 0 && request.OnDeadlineMiss == 0
            ? null
            : new RunSla((SlaPriority)request.Priority, request.DeadlineAtMs, request.LatencyBudgetMs, (DeadlineMissPolicy)request.OnDeadlineMiss);
        var submit = new SubmitRunRequest(request.WorkflowId ?? "", request.Version, input, key, sla);
        StartUnary(streamId, opcode, start, submit, static async (s, r, ct) =>
        {
            var result = await s.Engine.SubmitAsync(s.Tenant, r, ct).ConfigureAwait(false);
            return new RunSubmitResponse { RunId = result.RunId, Status = (int)result.Status, WorkflowVersion = result.WorkflowVersion, Replayed = result.Replayed };
        });
    }

    private void RunGet(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out RunGetRequest? request))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        // Async: the engine answers only with what is durable, so it may wait for the run's pending write.
        StartUnary(streamId, opcode, start, request, static async (s, r, ct) =>
        {
            var runId = r.RunId ?? "";
            var run = await s.Engine.GetRunAsync(s.Tenant, runId, ct).ConfigureAwait(false)
                ?? throw new WayangException(ErrorCode.RunNotFound, $"Run '{runId}' does not exist.");
            return ToDto(run, r.IncludeEvents);
        });
    }

    private void RunList(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out RunListRequest? request, allowEmpty: true))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        RunStatus? status = null;
        if (request.Status != 0)
        {
            if (request.Status is < 0 or > byte.MaxValue || !Enum.IsDefined((RunStatus)request.Status))
                throw new WayangException(ErrorCode.InvalidArgument, $"Status {request.Status} is not a run status.");
            status = (RunStatus)request.Status;
        }
        var query = (Status: status, Limit: ListLimit(request.Limit));
        StartUnary(streamId, opcode, start, query, static async (s, q, ct) =>
        {
            // Finished runs are listed by scanning the store: off the read loop (it may run on a socket I/O thread).
            await Task.Yield();
            var runs = s.Engine.ListRuns(s.Tenant, q.Status, q.Limit);
            var dtos = new RunSummaryDto[runs.Count];
            for (int i = 0; i < dtos.Length; i++)
                dtos[i] = ToDto(runs[i]);
            return new RunListResponse { Runs = dtos };
        });
    }

    private void RunControl(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out RunControlRequest? request))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        var control = (Opcode: opcode, RunId: request.RunId ?? "", Reason: string.IsNullOrEmpty(request.Reason) ? null : request.Reason);
        StartUnary(streamId, opcode, start, control, static async (s, c, ct) => ToDto(c.Opcode switch
        {
            Opcode.RunCancel => await s.Engine.CancelRunAsync(s.Tenant, c.RunId, c.Reason, ct).ConfigureAwait(false),
            Opcode.RunSuspend => await s.Engine.SuspendRunAsync(s.Tenant, c.RunId, ct).ConfigureAwait(false),
            _ => await s.Engine.ResumeRunAsync(s.Tenant, c.RunId, ct).ConfigureAwait(false),
        }));
    }

    private void RunSignal(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out RunSignalRequest? request))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        var payload = ParseJson(request.PayloadJson, nameof(RunSignalRequest.PayloadJson));
        var signal = (RunId: request.RunId ?? "", Signal: request.Signal ?? "", Payload: payload);
        StartUnary(streamId, opcode, start, signal, static async (s, r, ct) =>
            ToDto(await s.Engine.SignalRunAsync(s.Tenant, r.RunId, r.Signal, r.Payload, ct).ConfigureAwait(false)));
    }

    // ---- executors and task results ----

    // Synchronous on the read loop, so a SetSlots or Heartbeat that follows on this connection always finds the
    // registration. The engine may push tasks from inside RegisterExecutor: the stream exists before that call.
    private void ExecutorRegister(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out ExecutorRegisterRequest? request))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        if (_server.ShuttingDown)
        {
            _writer.WriteError(streamId, opcode, ErrorCode.ShuttingDown, start);
            return;
        }
        var executorId = request.ExecutorId ?? "";
        var types = request.ExecutorTypes is null ? [] : Array.ConvertAll(request.ExecutorTypes, t => t ?? "");
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (request.Labels is not null)
        {
            foreach (var (k, v) in request.Labels)
                labels[k ?? ""] = v ?? "";
        }
        lock (_requestsLock)
        {
            if (_executors.ContainsKey(executorId))
                throw new WayangException(ErrorCode.ExecutorExists, $"Executor '{executorId}' is already registered on this connection.");
        }

        // Not yet in _requests: nothing else can reach this request until the read loop (this thread) moves on.
        var asyncRequest = new AsyncRequest(streamId, opcode, start, initialCredit: 0);
        var stream = new ExecutorStream(asyncRequest, _writer, executorId, request.Slots);
        asyncRequest.Executor = stream;
        // Throws (INVALID_ARGUMENT, EXECUTOR_EXISTS, SHUTTING_DOWN) before any push: answered as a plain ERROR.
        stream.Handle = Engine.RegisterExecutor(Tenant, SharedExecutor, new ExecutorRegistration(executorId, types, request.Slots, labels), stream);
        lock (_requestsLock)
            _executors[executorId] = stream;
        Register(asyncRequest);
        Log.ExecutorRegistered(_server.Logger, ConnectionId, executorId, Tenant, request.Slots);
        // A shutdown that began meanwhile may have missed this stream in its detach pass.
        if (_server.ShuttingDown)
        {
            stream.Detach();
            asyncRequest.CancelWith(ErrorCode.ShuttingDown);
        }
        _ = RunExecutorStreamAsync(stream);
    }

    // The stream stays open until CANCEL, CREDIT_OVERFLOW, server shutdown or the connection's close. Then the engine
    // takes back the executor's leased tasks (the same attempts are redelivered to other executors) and the stream
    // ends: END on shutdown, ERROR CANCELLED/CREDIT_OVERFLOW otherwise, nothing when the peer is gone.
    private async Task RunExecutorStreamAsync(ExecutorStream stream)
    {
        var request = stream.Request;
        try
        {
            await Task.Delay(Timeout.Infinite, request.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The only way out.
        }

        stream.Detach();
        try
        {
            // No push for this handle can happen once this returns (the dispatcher checks liveness under its lock),
            // so nothing follows the final frame written below.
            if (stream.Handle is { } handle)
                Engine.UnregisterExecutor(handle);
        }
        catch (Exception ex)
        {
            Log.RequestFailed(_server.Logger, nameof(Opcode.ExecutorRegister), request.StreamId, ConnectionId, ex);
        }
        lock (_requestsLock)
        {
            if (_executors.TryGetValue(stream.ExecutorId, out var current) && current == stream)
                _executors.Remove(stream.ExecutorId);
        }
        Unregister(request);
        Log.ExecutorUnregistered(_server.Logger, ConnectionId, stream.ExecutorId, ErrorRegistry.NameOf(request.CancelCode));
        switch (request.CancelCode)
        {
            case ErrorCode.ConnectionClosed:
                break;
            case ErrorCode.ShuttingDown:
                _writer.WriteReply(FrameType.End, Opcode.ExecutorRegister, request.StreamId, default, request.StartTimestamp);
                break;
            default:
                _writer.WriteError(request.StreamId, Opcode.ExecutorRegister, CancelError(request)!, request.StartTimestamp);
                break;
        }
        await FinishAsync().ConfigureAwait(false);
    }

    private ExecutorStream FindExecutor(string? executorId)
    {
        lock (_requestsLock)
        {
            if (executorId is not null && _executors.TryGetValue(executorId, out var stream) && stream.Handle is not null)
                return stream;
        }
        throw new WayangException(ErrorCode.ExecutorNotRegistered, $"No executor '{executorId}' is registered on this connection.");
    }

    private void ExecutorSetSlots(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out ExecutorSetSlotsRequest? request))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        var stream = FindExecutor(request.ExecutorId);
        Engine.SetSlots(stream.Handle!, request.Slots);
        var stat = ExecutorStatOf(stream.Handle!);
        _writer.WriteMessage(FrameType.Response, opcode, streamId, new ExecutorSetSlotsResponse
        {
            Slots = stat?.Slots ?? request.Slots,
            InFlight = stat?.InFlight ?? 0,
        }, start);
    }

    private void ExecutorHeartbeat(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out ExecutorHeartbeatRequest? request))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        var stream = FindExecutor(request.ExecutorId);
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        Engine.Heartbeat(stream.Handle!);
        // Every lease the executor holds now expires one lease duration from the heartbeat.
        var stat = ExecutorStatOf(stream.Handle!);
        _writer.WriteMessage(FrameType.Response, opcode, streamId, new ExecutorHeartbeatResponse
        {
            LeasesRenewed = stat?.InFlight ?? 0,
            LeaseExpiresAtMs = now + (long)_server.Options.Execution.LeaseDuration.TotalMilliseconds,
        }, start);
    }

    private ExecutorStat? ExecutorStatOf(ExecutorHandle handle)
    {
        foreach (var e in Engine.GetStats(handle.TenantId).Executors)
        {
            if (string.Equals(e.ExecutorId, handle.ExecutorId, StringComparison.Ordinal) && string.Equals(e.TenantId, handle.TenantId, StringComparison.Ordinal))
                return e;
        }
        return null;
    }

    // Results may arrive on any connection of the executor's tenant (an executor that reconnected keeps its tokens);
    // the token says which run, node and attempt, and the engine refuses another tenant's.
    private void TaskResult(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out TaskResultRequest? request))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        var output = ParseJson(request.OutputJson, nameof(TaskResultRequest.OutputJson));
        var result = new TaskResult(request.Token ?? "", request.Success, output,
            string.IsNullOrEmpty(request.ErrorCode) ? null : request.ErrorCode,
            string.IsNullOrEmpty(request.ErrorMessage) ? null : request.ErrorMessage,
            request.Retryable);
        StartUnary(streamId, opcode, start, result, static async (s, r, ct) =>
        {
            var ack = await s.Engine.CompleteTaskAsync(s.Tenant, s.SharedExecutor, r, ct).ConfigureAwait(false);
            return new TaskResultResponse { RunId = ack.RunId, NodeId = ack.NodeId, Attempt = ack.Attempt, Duplicate = ack.Duplicate };
        });
    }

    // ---- queues ----

    private void QueueStats(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out QueueStatsRequest? request, allowEmpty: true))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        var principal = _principal!;
        string? tenantId = string.IsNullOrEmpty(request.TenantId) ? principal.TenantId : request.TenantId;
        if (tenantId == "*")
            tenantId = null;
        if (!principal.IsPlatformAdmin && !string.Equals(tenantId, principal.TenantId, StringComparison.Ordinal))
        {
            _ = DenyAsync(streamId, opcode, start, new WayangError(ErrorCode.PermissionDenied, $"The principal may not read queues of tenant '{request.TenantId}'."), $"queues:{request.TenantId}", audit: true);
            return;
        }
        var stats = Engine.GetStats(tenantId);
        var queues = new QueueStatDto[stats.Queues.Count];
        for (int i = 0; i < queues.Length; i++)
        {
            var q = stats.Queues[i];
            queues[i] = new QueueStatDto { TenantId = q.TenantId, ExecutorType = q.ExecutorType, Depth = q.Depth, MaxDepth = q.MaxDepth, Leased = q.Leased };
        }
        var executors = new ExecutorStatDto[stats.Executors.Count];
        for (int i = 0; i < executors.Length; i++)
        {
            var e = stats.Executors[i];
            executors[i] = new ExecutorStatDto
            {
                ExecutorId = e.ExecutorId, TenantId = e.TenantId, Shared = e.Shared, ExecutorTypes = [.. e.ExecutorTypes],
                Slots = e.Slots, InFlight = e.InFlight, Credit = e.Credit, LastHeartbeatMs = e.LastHeartbeatMs,
            };
        }
        _writer.WriteMessage(FrameType.Response, opcode, streamId, new QueueStatsResponse { Queues = queues, Executors = executors, RunsActive = stats.RunsActive }, start);
    }

    // ---- scheduling ----

    private void TenantScheduleSet(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out TenantScheduleDto? request))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        var schedule = new TenantSchedule(request.TenantId ?? "", request.Weight, request.MaxConcurrent, request.MaxQueued, request.MaxSubmitsPerSecond);
        StartAudited(streamId, opcode, start, schedule, $"schedule:{schedule.TenantId}", schedule.TenantId, static async (s, r, ct) =>
            ToDto(await s.Engine.SetTenantScheduleAsync(r, ct).ConfigureAwait(false)));
    }

    private void TenantScheduleList(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out TenantScheduleListRequest? request, allowEmpty: true))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        var schedules = Engine.GetTenantSchedules(string.IsNullOrEmpty(request.TenantId) ? null : request.TenantId);
        _writer.WriteMessage(FrameType.Response, opcode, streamId, new TenantScheduleListResponse { Schedules = [.. schedules.Select(ToDto)] }, start);
    }

    private static TenantScheduleDto ToDto(TenantSchedule s) => new()
    {
        TenantId = s.TenantId, Weight = s.Weight, MaxConcurrent = s.MaxConcurrent, MaxQueued = s.MaxQueued, MaxSubmitsPerSecond = s.MaxSubmitsPerSecond,
    };

    // ---- dead letters ----

    private void DlqList(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out DlqListRequest? request, allowEmpty: true))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        var entries = Engine.ListDeadLetters(Tenant, ToFilter(request.Filter));
        var dtos = new DeadLetterDto[entries.Count];
        for (int i = 0; i < dtos.Length; i++)
            dtos[i] = ToDto(entries[i]);
        _writer.WriteMessage(FrameType.Response, opcode, streamId, new DlqListResponse { Entries = dtos }, start);
    }

    private void DlqShow(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out DlqShowRequest? request))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        var id = request.Id ?? "";
        var entry = Engine.GetDeadLetter(Tenant, id)
            ?? throw new WayangException(ErrorCode.DeadLetterNotFound, $"Dead letter '{id}' does not exist.");
        _writer.WriteMessage(FrameType.Response, opcode, streamId, ToDto(entry), start);
    }

    // DlqReplay and DlqDiscard: the listed ids, or (none listed) the filter's matches, at most its Limit of them.
    private void DlqAction(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start)
    {
        if (!TryDecode(body, out DlqActionRequest? request))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
            return;
        }
        var ids = request.Ids is null ? [] : Array.ConvertAll(request.Ids, id => id ?? "");
        if (ids.Length > MaxDeadLetterIds)
            throw new WayangException(ErrorCode.InvalidArgument, $"At most {MaxDeadLetterIds} ids per request.");
        if (request.RatePerSecond < 0)
            throw new WayangException(ErrorCode.InvalidArgument, "RatePerSecond must not be negative.");
        DeadLetterFilter? filter = null;
        if (ids.Length == 0)
        {
            filter = ToFilter(request.Filter);
            bool narrowed = filter.WorkflowId is not null || filter.NodeId is not null || filter.ErrorCode is not null || filter.FromMs is not null || filter.ToMs is not null;
            if (!narrowed && !request.All)
                throw new WayangException(ErrorCode.InvalidArgument, "Give ids or a filter; an empty filter matches the whole dead-letter queue and needs All = true.");
        }
        var action = (Ids: (IReadOnlyList<string>)ids, Filter: filter, Rate: request.RatePerSecond);
        if (opcode == Opcode.DlqReplay)
        {
            StartUnary(streamId, opcode, start, action, static async (s, a, ct) =>
            {
                var outcomes = await s.Engine.ReplayDeadLettersAsync(s.Tenant, a.Ids, a.Filter, a.Rate, ct).ConfigureAwait(false);
                var dtos = new ReplayOutcomeDto[outcomes.Count];
                for (int i = 0; i < dtos.Length; i++)
                {
                    var o = outcomes[i];
                    dtos[i] = new ReplayOutcomeDto
                    {
                        DeadLetterId = o.DeadLetterId, RunId = o.RunId ?? "", Replayed = o.Replayed,
                        ErrorCode = (int)(o.Error?.Code ?? ErrorCode.None), ErrorMessage = o.Error?.Message ?? "",
                    };
                }
                return new DlqReplayResponse { Outcomes = dtos };
            });
        }
        else
        {
            StartUnary(streamId, opcode, start, action, static async (s, a, ct) =>
                new DlqDiscardResponse { Discarded = await s.Engine.DiscardDeadLettersAsync(s.Tenant, a.Ids, a.Filter, ct).ConfigureAwait(false) });
        }
    }

    // ---- shutdown ----

    // Phase 1 of shutdown (every session, before any stream ends): no executor on this connection takes a task.
    public void DetachExecutors()
    {
        lock (_requestsLock)
        {
            foreach (var stream in _executors.Values)
                stream.Detach();
        }
    }

    // Phase 2: end every executor stream with END (its leased tasks go back to their queues).
    public void EndExecutorStreams()
    {
        List<ExecutorStream> streams;
        lock (_requestsLock)
            streams = [.. _executors.Values];
        foreach (var stream in streams)
            stream.Request.CancelWith(ErrorCode.ShuttingDown);
    }

    // ---- mapping ----

    private static JsonElement? ParseJson(byte[]? bytes, string field)
    {
        if (bytes is null || bytes.Length == 0)
            return null;
        try
        {
            using var document = JsonDocument.Parse(bytes);
            return document.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            throw new WayangException(new WayangError(ErrorCode.InvalidArgument, $"{field} is not valid JSON: {ex.Message}",
                details: new Dictionary<string, string>(StringComparer.Ordinal) { ["field"] = field }));
        }
    }

    private static int ListLimit(int limit)
    {
        if (limit < 0)
            throw new WayangException(ErrorCode.InvalidArgument, "Limit must not be negative.");
        return limit == 0 ? DefaultListLimit : Math.Min(limit, MaxListLimit);
    }

    private static DeadLetterFilter ToFilter(DlqFilterDto? f)
    {
        f ??= new DlqFilterDto();
        if (f.FromMs < 0 || f.ToMs < 0)
            throw new WayangException(ErrorCode.InvalidArgument, "FromMs and ToMs must not be negative.");
        return new DeadLetterFilter(
            string.IsNullOrEmpty(f.WorkflowId) ? null : f.WorkflowId,
            string.IsNullOrEmpty(f.NodeId) ? null : f.NodeId,
            string.IsNullOrEmpty(f.ErrorCode) ? null : f.ErrorCode,
            f.FromMs == 0 ? null : f.FromMs,
            f.ToMs == 0 ? null : f.ToMs,
            ListLimit(f.Limit));
    }

    private static RunSummaryDto ToDto(RunSummary r) => new()
    {
        RunId = r.RunId,
        WorkflowId = r.WorkflowId,
        WorkflowVersion = r.WorkflowVersion,
        Status = (int)r.Status,
        CreatedAtMs = r.CreatedAtMs,
        UpdatedAtMs = r.UpdatedAtMs,
    };

    private static RunDto ToDto(RunState run, bool includeEvents)
    {
        var nodes = new NodeStateDto[run.Nodes.Count];
        int n = 0;
        foreach (var node in run.Nodes.Values)
        {
            nodes[n++] = new NodeStateDto
            {
                NodeId = node.NodeId,
                Status = (int)node.Status,
                Attempt = node.Attempt,
                OutputJson = ExecutorStream.JsonBytes(node.Output),
                ErrorCode = node.ErrorCode ?? "",
                ErrorMessage = node.ErrorMessage ?? "",
                Attempts = ToDtos(node.Attempts),
            };
        }
        RunEventDto[] events = [];
        if (includeEvents)
        {
            events = new RunEventDto[run.Events.Count];
            for (int i = 0; i < events.Length; i++)
            {
                var e = run.Events[i];
                events[i] = new RunEventDto { Seq = e.Seq, AtMs = e.AtMs, Type = (int)e.Type, NodeId = e.NodeId ?? "", Attempt = e.Attempt, Detail = e.Detail ?? "" };
            }
        }
        return new RunDto
        {
            RunId = run.RunId,
            TenantId = run.TenantId,
            WorkflowId = run.WorkflowId,
            WorkflowVersion = run.WorkflowVersion,
            Status = (int)run.Status,
            InputJson = ExecutorStream.JsonBytes(run.Input),
            OutputJson = ExecutorStream.JsonBytes(run.Output),
            ErrorCode = run.ErrorCode ?? "",
            ErrorMessage = run.ErrorMessage ?? "",
            CreatedAtMs = run.CreatedAtMs,
            UpdatedAtMs = run.UpdatedAtMs,
            FinishedAtMs = run.FinishedAtMs ?? 0,
            IdempotencyKey = run.IdempotencyKey ?? "",
            Nodes = nodes,
            Events = events,
        };
    }

    private static AttemptDto[] ToDtos(List<AttemptRecord> attempts)
    {
        var dtos = new AttemptDto[attempts.Count];
        for (int i = 0; i < dtos.Length; i++)
        {
            var a = attempts[i];
            dtos[i] = new AttemptDto
            {
                Attempt = a.Attempt,
                ExecutorId = a.ExecutorId ?? "",
                StartedAtMs = a.StartedAtMs,
                EndedAtMs = a.EndedAtMs ?? 0,
                Succeeded = a.Succeeded,
                ErrorCode = a.ErrorCode ?? "",
                ErrorMessage = a.ErrorMessage ?? "",
            };
        }
        return dtos;
    }

    private static DeadLetterDto ToDto(DeadLetter d) => new()
    {
        Id = d.Id,
        TenantId = d.TenantId,
        RunId = d.RunId,
        WorkflowId = d.WorkflowId,
        WorkflowVersion = d.WorkflowVersion,
        NodeId = d.NodeId,
        ExecutorType = d.ExecutorType ?? "",
        InputJson = ExecutorStream.JsonBytes(d.Input),
        ConfigJson = ExecutorStream.JsonBytes(d.Config),
        Attempts = ToDtos(d.Attempts),
        LastErrorCode = d.LastErrorCode ?? "",
        LastErrorMessage = d.LastErrorMessage ?? "",
        ExecutorId = d.ExecutorId ?? "",
        DeadLetteredAtMs = d.DeadLetteredAtMs,
    };
}
