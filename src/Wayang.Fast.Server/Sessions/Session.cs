using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using MessagePack;
using Microsoft.AspNetCore.Connections;
using Wayang.Fast.Common;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Rbac;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;
using Wayang.Fast.Server.Metrics;

namespace Wayang.Fast.Server.Sessions;

// One protocol connection over any IDuplexPipe (Kestrel's transport, or in-memory pipes in benchmarks).
//
// The read loop owns everything about accepting frames: the handshake state, the stream-id bookkeeping and
// the GOAWAY decision (other threads ask for it through a flag and CancelPendingRead, so there is no lock
// on the request path). It processes every complete frame in a read batch, writing synchronous replies
// without flushing, and flushes once when no complete frame is left buffered: 16 pipelined Pings cost one
// flush. Async work (streams, durable ops) writes through the same SessionWriter.
internal sealed partial class Session
{
    private const string ReasonPeerClosed = "peer closed";

    private readonly ServerCore _server;
    private readonly IDuplexPipe _transport;
    private readonly PipeReader _input;
    private readonly SessionWriter _writer;
    private readonly int _maxBody;
    private readonly int _maxInFlight;
    private readonly long _createdAt = Environment.TickCount64;

    private readonly Lock _requestsLock = new();
    private readonly Dictionary<uint, AsyncRequest> _requests = [];
    // Mirrors _requests.Count so the request path skips the lock when nothing async is in flight.
    private volatile int _requestCount;
    // Async requests that have not finished writing their final frame: graceful shutdown waits for 0.
    private int _activeTasks;

    private volatile Principal? _principal;
    private uint _initialCredit;
    private uint _highestStreamId;
    private long _lastActivity = Environment.TickCount64;

    private volatile bool _goAwayRequested;
    private volatile bool _goingAway;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _closeRequested;
    private string? _closeReason;

    public Session(ServerCore server, IDuplexPipe transport, long id, string connectionId, string? remote)
    {
        _server = server;
        _transport = transport;
        _input = transport.Input;
        Id = id;
        ConnectionId = connectionId;
        Remote = remote;
        _maxBody = server.Options.MaxFrameBytes;
        _maxInFlight = server.Options.MaxInFlightPerConnection;
        _writer = new SessionWriter(transport.Output, Stats, server.Metrics, server.Options.MaxPendingWriteBytes, OnSlowConsumer);
    }

    public long Id { get; }
    public string ConnectionId { get; }
    public string? Remote { get; }
    public SessionStats Stats { get; } = new();
    public int InFlightCount => _requestCount;
    public bool IsAuthenticated => _principal is not null;
    public string? KeyId => _principal?.KeyId;

    // Completes when no async request is left after GOAWAY, or when the session has closed.
    public Task Drained => _drained.Task;

    public async Task RunAsync()
    {
        Log.ConnectionOpened(_server.Logger, ConnectionId, Remote);
        string reason;
        bool linger = false;
        try
        {
            (reason, linger) = await ReadLoopAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ConnectionResetException or ConnectionAbortedException or OperationCanceledException)
        {
            reason = "connection reset";
        }
        catch (Exception ex)
        {
            // A bug: no exception may escape a session. Counted so tests (and alerts) can insist on zero.
            Interlocked.Increment(ref _server.Metrics.SessionFaults);
            Log.SessionFault(_server.Logger, ConnectionId, ex);
            reason = "session fault";
        }
        await CloseAsync(reason, linger).ConfigureAwait(false);
    }

    private async Task<(string Reason, bool Linger)> ReadLoopAsync()
    {
        var input = _input;
        while (true)
        {
            if (_goAwayRequested && !_goingAway)
                SendGoAway();

            var result = await input.ReadAsync().ConfigureAwait(false);
            var buffer = result.Buffer;
            var consumed = buffer.Start;
            var examined = buffer.End;
            string? end = null;
            bool linger = false;
            try
            {
                if (Volatile.Read(ref _closeRequested) != 0)
                    return (_closeReason ?? "closed", true);

                // A cancelled read (GOAWAY wake-up) may still carry data: fall through and process it.
                if (!buffer.IsEmpty)
                    _lastActivity = Environment.TickCount64;

                while (true)
                {
                    var status = FrameReader.TryReadFrame(ref buffer, _maxBody, out var frame, out var error);
                    if (status == FrameReadStatus.Incomplete)
                        break;
                    if (status == FrameReadStatus.Error)
                    {
                        // Header-level errors leave the stream unsynchronized: ERROR on stream 0, then close.
                        Fatal(error);
                        end = ErrorRegistry.NameOf(error);
                        linger = true;
                        break;
                    }
                    consumed = buffer.Start;
                    if (!HandleFrame(in frame))
                    {
                        end = "closed after handshake or protocol error";
                        linger = true;
                        break;
                    }
                }

                if (end is null && result.IsCompleted)
                {
                    if (!buffer.IsEmpty)
                    {
                        // The peer is gone, so FRAME_TRUNCATED cannot be sent: count and log it.
                        Interlocked.Increment(ref _server.Metrics.FramesTruncated);
                        _server.Metrics.Error(ErrorCode.FrameTruncated);
                        Log.FrameTruncated(_server.Logger, ConnectionId, buffer.Length);
                        end = ErrorRegistry.NameOf(ErrorCode.FrameTruncated);
                    }
                    else
                    {
                        end = ReasonPeerClosed;
                    }
                }
            }
            finally
            {
                input.AdvanceTo(consumed, examined);
            }

            // No complete frame is left buffered: one flush for everything this batch wrote. If the peer is
            // not reading, this await is the backpressure that stops us reading more requests.
            var flush = _writer.FlushAsync();
            if (!flush.IsCompletedSuccessfully)
                await flush.ConfigureAwait(false);

            if (end is not null)
                return (end, linger);
        }
    }

    // False: close the connection (the ERROR has been written).
    private bool HandleFrame(in Frame frame)
    {
        var header = frame.Header;
        Stats.FrameIn(header.Type, header.TotalLength);
        if (_principal is null)
            return HandleHandshake(in frame);

        switch (header.Type)
        {
            case FrameType.Request:
                HandleRequest(in frame);
                return true;
            case FrameType.Credit:
                HandleCredit(in frame);
                return true;
            case FrameType.Cancel:
                HandleCancel(header.StreamId);
                return true;
            case FrameType.Ping:
                if (frame.Body.Length > Limits.MaxPingBody)
                    _writer.WriteError(0, header.Opcode, ErrorCode.BadBody);
                else
                    _writer.WriteFrame(FrameType.Pong, header.Opcode, 0, frame.Body);
                return true;
            case FrameType.Hello:
                _writer.WriteError(0, Opcode.None, ErrorCode.AlreadyAuthenticated);
                return true;
            case FrameType.Pong:
            case FrameType.GoAway:
                return true;
            default:
                // WELCOME/RESPONSE/ERROR/STREAM/END flow server-to-client only (until executors answer pushes).
                _writer.WriteError(header.StreamId, header.Opcode, ErrorCode.BadHeader);
                return true;
        }
    }

    private bool HandleHandshake(in Frame frame)
    {
        if (frame.Header.Type != FrameType.Hello)
            return Fatal(ErrorCode.HandshakeRequired);
        if (!TryDecode(frame.Body, out HelloRequest? hello))
            return Fatal(ErrorCode.BadBody);
        if (hello.ProtocolVersion != WireOptions.ProtocolVersion)
            return Fatal(new WayangError(ErrorCode.UnsupportedVersion, $"Protocol version {hello.ProtocolVersion} is not supported; this server speaks {WireOptions.ProtocolVersion}."));
        if (_server.ShuttingDown)
            return Fatal(ErrorCode.ShuttingDown);

        var code = _server.Tenants.Authenticate(hello.ApiKey, out var principal);
        if (code != ErrorCode.None || principal is null)
        {
            Log.AuthenticationFailed(_server.Logger, ConnectionId, Remote, ErrorRegistry.NameOf(code));
            return Fatal(code == ErrorCode.None ? ErrorCode.Unauthenticated : code);
        }

        var options = _server.Options;
        _initialCredit = hello.InitialStreamCredit == 0 ? options.DefaultInitialStreamCredit : (uint)Math.Min(hello.InitialStreamCredit, Limits.MaxStreamCredit);
        _principal = principal;
        _writer.WriteMessage(FrameType.Welcome, Opcode.None, 0, new WelcomeResponse
        {
            ServerVersion = ServerCore.ServerVersion,
            ProtocolVersion = WireOptions.ProtocolVersion,
            SessionId = Ids.NewId("s_", 16),
            MaxFrameBytes = options.MaxFrameBytes,
            MaxInFlight = options.MaxInFlightPerConnection,
            IdleTimeoutMs = (int)Math.Min(int.MaxValue, _server.IdleTimeoutMs),
            TenantId = principal.TenantId,
            KeyId = principal.KeyId,
            Roles = [.. principal.Roles],
            InitialStreamCredit = _initialCredit,
        });
        Log.Authenticated(_server.Logger, ConnectionId, principal.KeyId, principal.TenantId);
        return true;
    }

    private void HandleRequest(in Frame frame)
    {
        long start = Stopwatch.GetTimestamp();
        uint streamId = frame.Header.StreamId;
        var opcode = frame.Header.Opcode;
        if (streamId == 0)
        {
            _writer.WriteError(0, opcode, ErrorCode.BadHeader, start);
            return;
        }
        if (_goingAway)
        {
            _writer.WriteError(streamId, opcode, ErrorCode.ShuttingDown, start);
            return;
        }
        if (_requestCount != 0)
        {
            bool duplicate;
            lock (_requestsLock)
                duplicate = _requests.ContainsKey(streamId);
            if (duplicate)
            {
                _writer.WriteError(streamId, opcode, ErrorCode.DuplicateStream, start);
                return;
            }
            if (_requestCount >= _maxInFlight)
            {
                _writer.WriteError(streamId, opcode, ErrorCode.TooManyInFlight, start);
                return;
            }
        }
        var denied = Authorization.Check(_principal!, opcode);
        if (denied != ErrorCode.None)
        {
            if (denied == ErrorCode.PermissionDenied)
                _ = DenyAsync(streamId, opcode, start, new WayangError(ErrorCode.PermissionDenied, $"Permission '{Permissions.NameOf(Authorization.Required(opcode))}' is required for {opcode}."), "", audit: true);
            else
                _writer.WriteError(streamId, opcode, denied, start);
            return;
        }
        if (streamId > _highestStreamId)
            _highestStreamId = streamId;
        Dispatch(in frame, streamId, opcode, start);
    }

    private void HandleCredit(in Frame frame)
    {
        // Parsed by hand (CreditBody is [u32]): CREDIT frames are frequent on busy streams.
        uint credits;
        try
        {
            var reader = new MessagePackReader(frame.Body);
            if (reader.ReadArrayHeader() < 1)
            {
                _writer.WriteError(frame.Header.StreamId, frame.Header.Opcode, ErrorCode.BadBody);
                return;
            }
            credits = reader.ReadUInt32();
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or OverflowException)
        {
            _writer.WriteError(frame.Header.StreamId, frame.Header.Opcode, ErrorCode.BadBody);
            return;
        }
        var request = Find(frame.Header.StreamId);
        if (request is null)
            return;
        if (request.Executor is { } executor)
        {
            // An executor's task stream: the credit is the engine's to spend (one task per credit).
            if (!executor.AddCredit(credits))
                request.CancelWith(ErrorCode.CreditOverflow);
            else if (credits > 0 && executor.Handle is { } handle)
                _server.Execution!.GrantCredit(handle, (int)Math.Min(credits, int.MaxValue));
            return;
        }
        if (!request.AddCredit(credits))
            request.CancelWith(ErrorCode.CreditOverflow);
    }

    private void HandleCancel(uint streamId) => Find(streamId)?.CancelWith(ErrorCode.Cancelled);

    private AsyncRequest? Find(uint streamId)
    {
        if (_requestCount == 0)
            return null;
        lock (_requestsLock)
            return _requests.GetValueOrDefault(streamId);
    }

    private bool Fatal(ErrorCode code)
    {
        _writer.WriteError(0, Opcode.None, code);
        Log.FatalProtocolError(_server.Logger, ConnectionId, ErrorRegistry.NameOf(code));
        return false;
    }

    private bool Fatal(WayangError error)
    {
        _writer.WriteError(0, Opcode.None, error);
        Log.FatalProtocolError(_server.Logger, ConnectionId, error.Name);
        return false;
    }

    // Anything thrown while decoding untrusted bytes is the sender's fault: BAD_BODY, never a session fault.
    private static bool TryDecode<T>(in ReadOnlySequence<byte> body, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out T? value, bool allowEmpty = false)
        where T : class, new()
    {
        if (body.IsEmpty)
        {
            value = allowEmpty ? new T() : null;
            return value is not null;
        }
        try
        {
            value = MessagePackSerializer.Deserialize<T>(body, WireOptions.Untrusted);
            return value is not null;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            value = null;
            return false;
        }
    }

    // ---- async requests ----

    private AsyncRequest Register(uint streamId, Opcode opcode, long start, bool stream) =>
        Register(new AsyncRequest(streamId, opcode, start, stream ? _initialCredit : 0));

    private AsyncRequest Register(AsyncRequest request)
    {
        lock (_requestsLock)
        {
            _requests.Add(request.StreamId, request);
            _requestCount = _requests.Count;
        }
        Interlocked.Increment(ref _activeTasks);
        return request;
    }

    // Before the final frame is written, so a client that reuses the stream id right after END never
    // sees DUPLICATE_STREAM.
    private void Unregister(AsyncRequest request)
    {
        lock (_requestsLock)
        {
            _requests.Remove(request.StreamId);
            _requestCount = _requests.Count;
        }
    }

    private async ValueTask FinishAsync()
    {
        // Closing after this reply (or draining for GOAWAY) flushes now; otherwise the flush is shared with the
        // replies that complete alongside this one.
        if (_closeAfterReply != ErrorCode.None || _goingAway)
            await _writer.FlushAsync().ConfigureAwait(false);
        else
            await _writer.FlushSoonAsync().ConfigureAwait(false);
        if (Interlocked.Decrement(ref _activeTasks) == 0 && _goingAway)
            _drained.TrySetResult();
    }

    private static WayangError? CancelError(AsyncRequest request) => request.CancelCode switch
    {
        ErrorCode.ConnectionClosed => null,
        ErrorCode.None => new WayangError(ErrorCode.Cancelled),
        var code => new WayangError(code),
    };

    // ---- shutdown and close ----

    // Server shutdown: the read loop sends GOAWAY (it alone decides which requests were accepted).
    public Task BeginShutdown()
    {
        if (_principal is null)
        {
            RequestClose(ErrorCode.ShuttingDown, "shutting down");
            return _drained.Task;
        }
        _goAwayRequested = true;
        _input.CancelPendingRead();
        return _drained.Task;
    }

    private void SendGoAway()
    {
        _goingAway = true;
        _writer.WriteMessage(FrameType.GoAway, Opcode.None, 0, new GoAwayBody
        {
            LastStreamId = _highestStreamId,
            Code = (int)ErrorCode.ShuttingDown,
            Message = "The server is shutting down; requests in flight will complete.",
        });
        if (Volatile.Read(ref _activeTasks) == 0)
            _drained.TrySetResult();
    }

    // From any thread (timers, slow consumer, shutdown): write the reason (if any) and stop the read loop.
    public void RequestClose(ErrorCode code, string reason, WayangError? error = null)
    {
        if (Interlocked.CompareExchange(ref _closeRequested, 1, 0) != 0)
            return;
        _closeReason = reason;
        if (error is not null)
            _writer.WriteError(0, Opcode.None, error);
        else if (code != ErrorCode.None)
            _writer.WriteError(0, Opcode.None, code);
        _writer.FlushInBackground();
        _input.CancelPendingRead();
    }

    public void CheckTimeouts(long now)
    {
        if (Volatile.Read(ref _closeRequested) != 0)
            return;
        if (_principal is null)
        {
            if (now - _createdAt > _server.HandshakeTimeoutMs)
            {
                Log.TimedOut(_server.Logger, ConnectionId, "HANDSHAKE_TIMEOUT");
                RequestClose(ErrorCode.HandshakeRequired, "handshake timeout", new WayangError(ErrorCode.HandshakeRequired, "No HELLO within the handshake timeout."));
            }
        }
        else if (_requestCount == 0 && now - Volatile.Read(ref _lastActivity) > _server.IdleTimeoutMs)
        {
            Log.TimedOut(_server.Logger, ConnectionId, "IDLE_TIMEOUT");
            RequestClose(ErrorCode.IdleTimeout, "idle timeout");
        }
    }

    private void OnSlowConsumer()
    {
        Log.SlowConsumer(_server.Logger, ConnectionId);
        RequestClose(ErrorCode.None, "slow consumer");
        // The read loop may be parked on the flush the peer never drains: release it.
        _writer.Complete();
    }

    // Shutdown past its drain timeout: stop writing and end the read loop even if a flush is stuck.
    public void Abort(string reason)
    {
        RequestClose(ErrorCode.None, reason);
        _writer.Complete();
    }

    private async Task CloseAsync(string reason, bool linger)
    {
        List<AsyncRequest> open;
        lock (_requestsLock)
            open = [.. _requests.Values];
        foreach (var request in open)
            request.CancelWith(ErrorCode.ConnectionClosed);

        var flush = _writer.FlushAsync();
        if (!flush.IsCompleted)
            _ = flush.AsTask(); // Blocked on a peer that does not read: Complete() below releases it.
        else if (linger && !_writer.IsSlowConsumer)
            await LingerAsync().ConfigureAwait(false);
        _writer.Complete();
        try
        {
            await _input.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The transport already failed; completing it is best effort.
        }
        _server.Unregister(this);
        _drained.TrySetResult();
        Log.ConnectionClosed(_server.Logger, ConnectionId, reason);
    }

    // After a fatal ERROR the peer may still be sending (an oversize body, pipelined requests). Closing a
    // socket with unread input makes the kernel send RST, which can destroy the ERROR before the peer reads
    // it. So read and discard until the peer closes or goes quiet, bounded in time.
    private async Task LingerAsync()
    {
        using var total = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        while (true)
        {
            using var quiet = CancellationTokenSource.CreateLinkedTokenSource(total.Token);
            quiet.CancelAfter(TimeSpan.FromMilliseconds(200));
            try
            {
                var result = await _input.ReadAsync(quiet.Token).ConfigureAwait(false);
                _input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                    return;
            }
            catch (Exception)
            {
                return;
            }
        }
    }
}
