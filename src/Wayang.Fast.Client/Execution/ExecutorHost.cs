using System.Text.Json;
using Wayang.Fast.Client.Internal;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Client.Execution;

// An executor running on a WayangClient (README "Executor host"): registers its types and slots, runs the handler for
// every TASK the server pushes, sends each result until it is acknowledged, heartbeats, and registers again after a
// disconnect until stopped.
//
// Slots and credit: the register stream starts with credit = Slots on the server, each TASK consumes one, and the host
// returns one credit only when a slot frees (the task's result was acknowledged, refused, or could not be sent). It keeps
// "credit the server holds + tasks held here <= Slots", so the server can never push more than Slots tasks. Tasks held
// here include those still running from a previous connection; should a TASK ever arrive with every slot busy (after
// lowering Slots, or right after a reconnect), it waits here for a slot instead of running beyond Slots.
public sealed class ExecutorHost : IAsyncDisposable
{
    private readonly WayangClient _client;
    private readonly Func<ExecutorTask, CancellationToken, ValueTask<TaskOutcome>> _handler;
    private readonly string[] _types;
    private readonly Dictionary<string, string> _labels;
    private readonly TimeSpan _heartbeatInterval;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly Queue<(ExecutorTask Task, Registration Registration)> _waiting = new();
    private readonly HashSet<Task> _workers = [];
    private readonly Task _completion;
    private readonly CancellationTokenRegistration _callerStop;

    // A handler whose deadline (server clock) already looks past still gets this long before its token fires.
    private static readonly TimeSpan MinimumRunTime = TimeSpan.FromSeconds(1);

    // CancelAfter takes at most ~49 days; a deadline further out than this is left to the server alone.
    private static readonly TimeSpan MaximumTimer = TimeSpan.FromDays(30);

    private int _slots;
    private int _running;
    private Registration? _current;
    private int _registrations;
    private long _tasksReceived;
    private long _resultsAccepted;
    private long _resultsDuplicate;
    private long _resultsRefused;
    private WayangError? _lastError;

    internal ExecutorHost(WayangClient client, ExecutorOptions options, Func<ExecutorTask, CancellationToken, ValueTask<TaskOutcome>> handler, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(handler);
        options.Validate();
        _client = client;
        _handler = handler;
        ExecutorId = string.IsNullOrWhiteSpace(options.ExecutorId) ? ExecutorOptions.DefaultExecutorId() : options.ExecutorId;
        _types = [.. options.Types];
        _labels = new Dictionary<string, string>(options.Labels ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        _slots = options.Slots;
        _heartbeatInterval = options.HeartbeatInterval;
        _callerStop = ct.Register(static s => ((ExecutorHost)s!).RequestStop(), this);
        _completion = Task.Run(RunAsync);
    }

    public string ExecutorId { get; }

    public int Slots => Volatile.Read(ref _slots);

    // Handlers running now (never more than Slots).
    public int Running => Volatile.Read(ref _running);

    // The current registration was confirmed by the server (a heartbeat on its connection succeeded).
    public bool IsRegistered => Volatile.Read(ref _current) is { IsConfirmed: true };

    // Registrations sent, the first included: more than one means the host reconnected.
    public int Registrations => Volatile.Read(ref _registrations);

    public long TasksReceived => Interlocked.Read(ref _tasksReceived);
    public long ResultsAccepted => Interlocked.Read(ref _resultsAccepted);
    // Results the server had already accepted (a resend after a reconnect): acknowledged, nothing changed.
    public long ResultsDuplicate => Interlocked.Read(ref _resultsDuplicate);
    // Results the server refused (ATTEMPT_SUPERSEDED, TASK_TOKEN_EXPIRED, ...): another attempt or outcome won.
    public long ResultsRefused => Interlocked.Read(ref _resultsRefused);

    // The last error the host met (a lost connection, a refused result, a failed heartbeat); for diagnostics.
    public WayangError? LastError => Volatile.Read(ref _lastError);

    // Completes once the host has stopped and its handlers have returned; faults with a WayangException when the
    // server refuses the registration for good (permission, invalid options, authentication).
    public Task Completion => _completion;

    // Raises or lowers the slots. Raising grants the server the extra credit at once; lowering takes effect as
    // running tasks finish. Without a live registration the next registration announces the new count.
    public async Task SetSlotsAsync(int slots, CancellationToken ct = default)
    {
        if (slots is < 1 or > ExecutorOptions.MaxSlots)
            throw new ArgumentOutOfRangeException(nameof(slots), slots, $"Slots must be 1..{ExecutorOptions.MaxSlots}.");
        Registration? registration;
        lock (_gate)
        {
            _slots = slots;
            registration = _current;
            StartWaitingLocked();
        }
        if (registration is null)
            return;
        // The server learns of the registration in frame order; wait until it has, so SetSlots finds it.
        if (!await registration.Ready.Task.WaitAsync(ct).ConfigureAwait(false))
            return;
        uint grant = 0;
        try
        {
            var request = new ExecutorSetSlotsRequest { ExecutorId = ExecutorId, Slots = slots };
            await CallOnAsync<ExecutorSetSlotsRequest, ExecutorSetSlotsResponse>(registration, Opcode.ExecutorSetSlots, request, ct).ConfigureAwait(false);
            lock (_gate)
            {
                // Recomputed after the reply: slots freed meanwhile may already have returned credit.
                if (ReferenceEquals(_current, registration) && _slots == slots)
                {
                    int held = registration.ServerCredit + _running + _waiting.Count;
                    if (held < slots)
                    {
                        grant = (uint)(slots - held);
                        registration.ServerCredit += (int)grant;
                    }
                }
            }
            if (grant > 0)
                await registration.Connection.SendCreditAsync(registration.StreamId, grant).ConfigureAwait(false);
        }
        catch (WayangException e) when (e.Code is ErrorCode.ExecutorNotRegistered || (e.Retryable && !ct.IsCancellationRequested))
        {
            // The registration is ending; the next one registers with the new slot count.
            Volatile.Write(ref _lastError, e.Error);
        }
    }

    // Stops taking tasks (the register stream is cancelled, so the server requeues what this executor held), cancels
    // the handlers' tokens and waits for them to return.
    public async Task StopAsync()
    {
        RequestStop();
        try
        {
            await _completion.ConfigureAwait(false);
        }
        catch (WayangException)
        {
            // Reported through Completion; stopping itself succeeded.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        await _callerStop.DisposeAsync().ConfigureAwait(false);
    }

    private void RequestStop()
    {
        try
        {
            _stop.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async Task RunAsync()
    {
        try
        {
            await RegisterLoopAsync().ConfigureAwait(false);
        }
        finally
        {
            RequestStop();
            Task[] workers;
            lock (_gate)
            {
                _waiting.Clear();
                workers = [.. _workers];
            }
            await Task.WhenAll(workers).ConfigureAwait(false);
        }
    }

    private async Task RegisterLoopAsync()
    {
        var stop = _stop.Token;
        int failures = 0;
        int existsRefusals = 0;
        bool everConfirmed = false;
        while (!stop.IsCancellationRequested)
        {
            WayangConnection connection;
            try
            {
                connection = await _client.GetConnectionAsync(stop).ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return; // the client was disposed under the host: nothing more can run
            }
            catch (WayangException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (WayangException e) when (e.Retryable)
            {
                Volatile.Write(ref _lastError, e.Error);
                if (!await DelayAsync(++failures).ConfigureAwait(false))
                    return;
                continue;
            }

            var call = new StreamCall<TaskAssignmentDto>();
            if (!connection.TryRegister(call, out uint streamId))
                continue; // GOAWAY or close won the race: nothing was sent
            var registration = new Registration(connection, streamId, call);
            int slots;
            lock (_gate)
            {
                slots = _slots;
                registration.ServerCredit = slots;
                _current = registration;
            }

            WayangException? ended = null;
            try
            {
                var request = new ExecutorRegisterRequest { ExecutorId = ExecutorId, ExecutorTypes = _types, Slots = slots, Labels = _labels };
                await connection.SendAsync(FrameType.Request, Opcode.ExecutorRegister, streamId, request, hasBody: true).ConfigureAwait(false);
                Interlocked.Increment(ref _registrations);
                using var heartbeatStop = CancellationTokenSource.CreateLinkedTokenSource(stop);
                var heartbeats = HeartbeatLoopAsync(registration, heartbeatStop.Token);
                try
                {
                    await ReadTasksAsync(registration, stop).ConfigureAwait(false);
                }
                finally
                {
                    await heartbeatStop.CancelAsync().ConfigureAwait(false);
                    await heartbeats.ConfigureAwait(false);
                }
            }
            catch (WayangException e)
            {
                ended = e;
            }
            finally
            {
                registration.Ready.TrySetResult(false);
                EndRegistration(registration);
            }

            if (stop.IsCancellationRequested)
            {
                // Tell the server now, so what this executor held is requeued at once rather than at lease expiry.
                if (connection.TryTake(streamId, call))
                    connection.SendCancel(streamId);
                return;
            }
            if (ended is not null)
            {
                Volatile.Write(ref _lastError, ended.Error);
                // EXECUTOR_EXISTS after a reconnect: the server may not have noticed the old connection close yet. On the
                // first registration it means another executor uses this id: that is final.
                bool retry = ended.Retryable || (ended.Code == ErrorCode.ExecutorExists && everConfirmed && ++existsRefusals <= 10);
                if (!retry)
                    throw ended;
            }
            if (registration.IsConfirmed)
            {
                everConfirmed = true;
                failures = 0;
                existsRefusals = 0;
            }
            if (!await DelayAsync(++failures).ConfigureAwait(false))
                return;
        }
    }

    private async Task ReadTasksAsync(Registration registration, CancellationToken stop)
    {
        var reader = registration.Call.Reader;
        while (true)
        {
            bool more;
            try
            {
                more = await reader.WaitToReadAsync(stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            if (!more)
                return; // END: the server closed the stream (shutting down); register again
            while (reader.TryRead(out var dto))
                OnTask(registration, dto);
        }
    }

    private void OnTask(Registration registration, TaskAssignmentDto dto)
    {
        Interlocked.Increment(ref _tasksReceived);
        registration.Confirm();
        ExecutorTask task;
        try
        {
            task = ToTask(dto);
        }
        catch (JsonException e)
        {
            // Unreadable JSON from the server: fail the attempt rather than the executor.
            Volatile.Write(ref _lastError, new WayangError(ErrorCode.BadBody, "A task carried invalid JSON: " + e.Message));
            lock (_gate)
            {
                registration.ServerCredit--;
                _running++;
                StartLocked(() => FinishAsync(dto.Token ?? "", TaskOutcome.Failure("BAD_TASK", "The task carried invalid JSON: " + e.Message, retryable: false)));
            }
            return;
        }
        lock (_gate)
        {
            registration.ServerCredit--;
            if (_stop.IsCancellationRequested)
                return; // not started: the server requeues it when the stream is cancelled
            if (_running < _slots)
            {
                _running++;
                StartLocked(() => RunTaskAsync(task));
            }
            else
            {
                _waiting.Enqueue((task, registration));
            }
        }
    }

    private void StartLocked(Func<Task> work)
    {
        var worker = Task.Run(work);
        _workers.Add(worker);
        _ = worker.ContinueWith(static (t, s) =>
        {
            var host = (ExecutorHost)s!;
            lock (host._gate)
                host._workers.Remove(t);
        }, this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private void StartWaitingLocked()
    {
        while (_running < _slots && !_stop.IsCancellationRequested && _waiting.TryDequeue(out var next))
        {
            _running++;
            var task = next.Task;
            StartLocked(() => RunTaskAsync(task));
        }
    }

    private async Task RunTaskAsync(ExecutorTask task)
    {
        TaskOutcome? outcome;
        using (var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
        {
            if (task.Deadline is { } deadline)
            {
                // The deadline is on the server's clock: one that already looks past (a client clock running ahead)
                // must not cancel the handler before it starts.
                var left = deadline - DateTimeOffset.UtcNow;
                if (left < MaximumTimer)
                    cts.CancelAfter(left > TimeSpan.Zero ? left : MinimumRunTime);
            }
            try
            {
                outcome = await _handler(task, cts.Token).ConfigureAwait(false) ?? TaskOutcome.Success();
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                outcome = null; // stopping: the server requeues the task; no result
            }
            catch (OperationCanceledException) when (cts.IsCancellationRequested)
            {
                // The deadline passed: the server times the attempt out on its own clock (and retries it or not), so
                // the executor reports nothing and just frees the slot.
                outcome = null;
            }
            catch (Exception e)
            {
                outcome = TaskOutcome.Failure("EXCEPTION", e.Message);
            }
        }
        await FinishAsync(task.Token, outcome).ConfigureAwait(false);
    }

    private async Task FinishAsync(string token, TaskOutcome? outcome)
    {
        try
        {
            if (outcome is not null && token.Length > 0)
                await SendResultAsync(token, outcome).ConfigureAwait(false);
        }
        finally
        {
            FreeSlot();
        }
    }

    // Sent until acknowledged: after a lost connection the client reconnects and the same token goes again (a
    // duplicate is acknowledged with Duplicate = true). A refusal (superseded attempt, expired or invalid token) ends it.
    private async Task SendResultAsync(string token, TaskOutcome outcome)
    {
        var request = new TaskResultRequest
        {
            Token = token,
            Success = outcome.Succeeded,
            OutputJson = outcome.OutputJson,
            ErrorCode = outcome.ErrorCode ?? "",
            ErrorMessage = outcome.ErrorMessage ?? "",
            Retryable = outcome.Retryable,
        };
        int failures = 0;
        while (true)
        {
            try
            {
                // Not cancelled by a stop: a finished side effect deserves its result; the retries below are.
                var ack = await _client.CallAsync<TaskResultRequest, TaskResultResponse>(Opcode.TaskResult, request).ConfigureAwait(false);
                if (ack.Duplicate)
                    Interlocked.Increment(ref _resultsDuplicate);
                else
                    Interlocked.Increment(ref _resultsAccepted);
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (WayangException e) when (e.Retryable)
            {
                Volatile.Write(ref _lastError, e.Error);
                if (_stop.IsCancellationRequested || !await DelayAsync(++failures).ConfigureAwait(false))
                    return;
            }
            catch (WayangException e)
            {
                Volatile.Write(ref _lastError, e.Error);
                Interlocked.Increment(ref _resultsRefused);
                return;
            }
        }
    }

    private void FreeSlot()
    {
        Registration? grantTo = null;
        lock (_gate)
        {
            _running--;
            // A task waiting here takes the slot over: its credit was already spent.
            StartWaitingLocked();
            var current = _current;
            if (current is not null && !_stop.IsCancellationRequested && current.ServerCredit + _running + _waiting.Count < _slots)
            {
                current.ServerCredit++;
                grantTo = current;
            }
        }
        if (grantTo is not null)
            _ = SendCreditQuietlyAsync(grantTo);
    }

    private async Task SendCreditQuietlyAsync(Registration registration)
    {
        try
        {
            await registration.Connection.SendCreditAsync(registration.StreamId, 1).ConfigureAwait(false);
        }
        catch (WayangException)
        {
            // The connection is failing: its read loop ends the stream, and the next registration starts with full credit.
        }
    }

    private void EndRegistration(Registration registration)
    {
        lock (_gate)
        {
            if (ReferenceEquals(_current, registration))
                _current = null;
            // Tasks of a dead registration that never started were requeued by the server: do not run them here too.
            int count = _waiting.Count;
            for (int i = 0; i < count; i++)
            {
                var item = _waiting.Dequeue();
                if (!ReferenceEquals(item.Registration, registration))
                    _waiting.Enqueue(item);
            }
        }
    }

    private async Task HeartbeatLoopAsync(Registration registration, CancellationToken ct)
    {
        var request = new ExecutorHeartbeatRequest { ExecutorId = ExecutorId };
        // The first heartbeat confirms the registration: frames on one connection are handled in order.
        for (int attempt = 1; !registration.IsConfirmed && !ct.IsCancellationRequested; attempt++)
        {
            try
            {
                await CallOnAsync<ExecutorHeartbeatRequest, ExecutorHeartbeatResponse>(registration, Opcode.ExecutorHeartbeat, request, ct).ConfigureAwait(false);
                registration.Confirm();
            }
            catch (WayangException e) when (e.Code == ErrorCode.ExecutorNotRegistered && attempt < 50)
            {
                // The server has not handled the register request yet (or refused it: the stream will end with why).
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(20 * attempt, 500)), ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
            catch (WayangException e)
            {
                Volatile.Write(ref _lastError, e.Error);
                if (ct.IsCancellationRequested)
                    return;
                break; // keep heartbeating on the interval: the leases of whatever arrives still need renewing
            }
        }

        using var timer = new PeriodicTimer(_heartbeatInterval);
        while (true)
        {
            try
            {
                if (!await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
                    return;
            }
            catch (OperationCanceledException)
            {
                return;
            }
            try
            {
                await CallOnAsync<ExecutorHeartbeatRequest, ExecutorHeartbeatResponse>(registration, Opcode.ExecutorHeartbeat, request, ct).ConfigureAwait(false);
            }
            catch (WayangException e)
            {
                // A lost connection ends the register stream too; the loop then registers again.
                Volatile.Write(ref _lastError, e.Error);
            }
        }
    }

    // A unary call on the registration's own connection: the server looks the executor up by connection.
    private async Task<TRes> CallOnAsync<TReq, TRes>(Registration registration, Opcode opcode, TReq request, CancellationToken ct)
    {
        if (!registration.Connection.TryStartUnary<TReq, TRes>(opcode, request, hasBody: true, _client.Options.DefaultTimeout, ct, out var reply))
            throw new WayangException(ErrorCode.ConnectionClosed, "The executor's connection takes no new calls.");
        return await reply.ConfigureAwait(false);
    }

    private async Task<bool> DelayAsync(int failures)
    {
        try
        {
            await Task.Delay(WayangClient.BackoffDelay(_client.Options.Reconnect, Math.Min(failures, 16)), _stop.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static ExecutorTask ToTask(TaskAssignmentDto dto) => new(
        dto.Token ?? "", dto.TaskId ?? "", dto.TenantId ?? "", dto.RunId ?? "", dto.WorkflowId ?? "", dto.NodeId ?? "", dto.Attempt,
        dto.ExecutorType ?? "", ExecutionMapping.Json(dto.InputJson), ExecutionMapping.Json(dto.ConfigJson), ExecutionMapping.Json(dto.UpstreamJson),
        DateTimeOffset.FromUnixTimeMilliseconds(dto.LeaseExpiresAtMs),
        dto.DeadlineAtMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(dto.DeadlineAtMs) : null);

    private sealed class Registration(WayangConnection connection, uint streamId, StreamCall<TaskAssignmentDto> call)
    {
        public WayangConnection Connection { get; } = connection;
        public uint StreamId { get; } = streamId;
        public StreamCall<TaskAssignmentDto> Call { get; } = call;
        // Credit the server holds on this stream (guarded by the host's gate).
        public int ServerCredit { get; set; }
        // True once the server has the registration; false when it ended before that.
        public TaskCompletionSource<bool> Ready { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public bool IsConfirmed => Ready.Task is { IsCompletedSuccessfully: true, Result: true };

        public void Confirm() => Ready.TrySetResult(true);
    }
}
