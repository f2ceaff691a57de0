using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using MessagePack;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Client.Internal;

// One socket, one read loop, one writer. Thread-safe: any number of callers register calls and write frames.
internal sealed class WayangConnection : IAsyncDisposable
{
    private const int Open = 0;
    private const int Draining = 1;
    private const int Closed = 2;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly WayangClientOptions _options;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ArrayBufferWriter<byte> _scratch = new(256);
    private readonly Dictionary<uint, PendingOperation> _pending = [];
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private int _pendingWriters;
    private int _nextStreamId;
    private int _state;
    private long _lastActivity = Environment.TickCount64;
    private int _maxRequestBody = WireOptions.DefaultMaxFrameBytes;
    private Task? _readLoop;
    private ITimer? _keepAlive;
    private WayangError? _closeReason;
    private Lazy<Task>? _disposal;

    private WayangConnection(Socket socket, WayangClientOptions options)
    {
        _socket = socket;
        _options = options;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _input = PipeReader.Create(_stream, new StreamPipeReaderOptions(leaveOpen: true));
        _output = PipeWriter.Create(_stream, new StreamPipeWriterOptions(leaveOpen: true));
    }

    public WayangSession Session { get; private set; } = null!;

    // True while new calls may start here: not closed and no GOAWAY seen.
    public bool IsAcceptingCalls => Volatile.Read(ref _state) == Open;

    public bool IsClosed => Volatile.Read(ref _state) == Closed;

    // Completes when the connection is closed (by either side); the reason is CloseReason.
    public Task Completion => _closed.Task;

    public WayangError? CloseReason => Volatile.Read(ref _closeReason);

    public uint InitialStreamCredit => Session.InitialStreamCredit == 0 ? 32 : Session.InitialStreamCredit;

    public int PendingCount
    {
        get
        {
            lock (_gate)
                return _pending.Count;
        }
    }

    public static Task<WayangConnection> ConnectAsync(WayangClientOptions options, CancellationToken ct) =>
        ConnectAsync(options, options.Host, options.Port, ct);

    // Dials host:port (a resolved member, or the options' own Host:Port); everything else comes from options.
    public static async Task<WayangConnection> ConnectAsync(WayangClientOptions options, string host, int port, CancellationToken ct)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (options.ConnectTimeout > TimeSpan.Zero && options.ConnectTimeout != Timeout.InfiniteTimeSpan)
            attempt.CancelAfter(options.ConnectTimeout);

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, attempt.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            ct.ThrowIfCancellationRequested();
            throw e is OperationCanceledException
                ? new WayangException(new WayangError(ErrorCode.ClientTimeout, $"Connecting to {host}:{port} timed out after {options.ConnectTimeout}."), e)
                : new WayangException(new WayangError(ErrorCode.Unavailable, $"Cannot connect to {host}:{port}: {e.Message}"), e);
        }

        var connection = new WayangConnection(socket, options);
        try
        {
            await connection.HandshakeAsync(attempt.Token).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
            if (e is WayangException)
                throw;
            if (e is OperationCanceledException)
                throw new WayangException(new WayangError(ErrorCode.ClientTimeout, $"The handshake with {host}:{port} timed out after {options.ConnectTimeout}."), e);
            throw new WayangException(new WayangError(ErrorCode.ConnectionClosed, $"The handshake with {host}:{port} failed: {e.Message}"), e);
        }
        connection.Start();
        return connection;
    }

    private async Task HandshakeAsync(CancellationToken ct)
    {
        var hello = new HelloRequest
        {
            ProtocolVersion = WireOptions.ProtocolVersion,
            ClientName = _options.ClientName,
            ApiKey = _options.ApiKey,
            InitialStreamCredit = _options.InitialStreamCredit,
        };
        FrameWriter.WriteMessage(_output, _scratch, FrameType.Hello, Opcode.None, 0, hello, WireOptions.Trusted);
        await _output.FlushAsync(ct).ConfigureAwait(false);

        while (true)
        {
            var result = await _input.ReadAsync(ct).ConfigureAwait(false);
            var buffer = result.Buffer;
            try
            {
                var status = FrameReader.TryReadFrame(ref buffer, _options.MaxReceiveFrameBytes, out var frame, out var error);
                if (status == FrameReadStatus.Error)
                    throw new WayangException(error, "The server sent an invalid frame during the handshake.");
                if (status == FrameReadStatus.Complete)
                {
                    switch (frame.Header.Type)
                    {
                        case FrameType.Welcome:
                            var welcome = MessagePackSerializer.Deserialize<WelcomeResponse>(frame.Body, WireOptions.Untrusted);
                            Session = new WayangSession(
                                welcome.SessionId, welcome.ServerVersion, welcome.ProtocolVersion, welcome.TenantId, welcome.KeyId,
                                welcome.Roles ?? [], welcome.MaxFrameBytes, welcome.MaxInFlight,
                                TimeSpan.FromMilliseconds(welcome.IdleTimeoutMs), welcome.InitialStreamCredit);
                            if (welcome.MaxFrameBytes > 0)
                                _maxRequestBody = welcome.MaxFrameBytes;
                            return;
                        case FrameType.Error:
                            throw new WayangException(DecodeError(frame.Body));
                        default:
                            throw new WayangException(ErrorCode.HandshakeRequired, $"The server answered HELLO with {frame.Header.Type}.");
                    }
                }
                if (result.IsCompleted)
                    throw new WayangException(ErrorCode.ConnectionClosed, "The server closed the connection during the handshake.");
            }
            finally
            {
                _input.AdvanceTo(buffer.Start, buffer.End);
            }
        }
    }

    private void Start()
    {
        _readLoop = Task.Run(ReadLoopAsync);
        var interval = _options.KeepAliveInterval;
        if (interval > TimeSpan.Zero && interval != Timeout.InfiniteTimeSpan)
            _keepAlive = TimeProvider.System.CreateTimer(static s => ((WayangConnection)s!).OnKeepAlive(), this, interval, interval);
    }

    // Registers op under a fresh stream id. False when this connection no longer takes new calls (GOAWAY or
    // closed): nothing was sent, so the caller may safely try another connection.
    public bool TryRegister(PendingOperation op, out uint streamId)
    {
        lock (_gate)
        {
            if (_state != Open)
            {
                streamId = 0;
                return false;
            }
            while (true)
            {
                streamId = (uint)Interlocked.Increment(ref _nextStreamId);
                // Stream 0 is the connection itself; after wrap-around skip ids still in flight.
                if (streamId != 0 && _pending.TryAdd(streamId, op))
                    return true;
            }
        }
    }

    // Takes op out of the table if it is still there under streamId; the winner completes it.
    public bool TryTake(uint streamId, PendingOperation op)
    {
        bool taken;
        lock (_gate)
        {
            taken = _pending.TryGetValue(streamId, out var current) && ReferenceEquals(current, op) && _pending.Remove(streamId);
        }
        if (taken)
            MaybeFinishDrain();
        return taken;
    }

    // Timeout or cancellation: fail the call locally and tell the server with CANCEL.
    public void AbandonPending(uint streamId, PendingOperation op, ErrorCode code, string message)
    {
        if (!TryTake(streamId, op))
            return;
        op.OnError(new WayangError(code, message));
        SendCancel(streamId);
    }

    public void SendCancel(uint streamId)
    {
        if (IsClosed)
            return;
        _ = SendQuietlyAsync(FrameType.Cancel, streamId, default);
    }

    public ValueTask SendCreditAsync(uint streamId, uint credits) =>
        SendAsync(FrameType.Credit, Opcode.None, streamId, new CreditBody { Credits = credits }, hasBody: true);

    // Starts a unary call. False: this connection takes no new calls, and nothing was sent.
    public bool TryStartUnary<TReq, TRes>(Opcode opcode, TReq request, bool hasBody, TimeSpan timeout, CancellationToken ct, out ValueTask<TRes> result)
    {
        if (ct.IsCancellationRequested)
        {
            result = ValueTask.FromException<TRes>(new WayangException(ErrorCode.Cancelled, "The call was cancelled by the caller."));
            return true;
        }
        var call = UnaryCall<TRes>.Rent();
        if (!TryRegister(call, out uint streamId))
        {
            result = default;
            return false;
        }
        call.Arm(this, streamId, timeout, ct);
        ValueTask send;
        try
        {
            send = SendAsync(FrameType.Request, opcode, streamId, request, hasBody);
        }
        catch (Exception e)
        {
            send = ValueTask.FromException(e);
        }
        if (send.IsCompletedSuccessfully)
        {
            send.GetAwaiter().GetResult();
            result = new ValueTask<TRes>(call, call.Version);
            return true;
        }
        result = AwaitSendThenReply(send, streamId, call);
        return true;
    }

    private async ValueTask<TRes> AwaitSendThenReply<TRes>(ValueTask send, uint streamId, UnaryCall<TRes> call)
    {
        try
        {
            await send.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            if (TryTake(streamId, call))
                call.OnError(ToError(e));
        }
        return await new ValueTask<TRes>(call, call.Version).ConfigureAwait(false);
    }

    private static WayangError ToError(Exception e) => e switch
    {
        WayangException w => w.Error,
        _ => new WayangError(ErrorCode.ConnectionClosed, "Sending the request failed: " + e.Message),
    };

    // All writers go through here: a SemaphoreSlim with a Wait(0) fast path. Only the last writer of a burst
    // flushes (writers queued behind it will flush), so concurrent calls share one flush and one syscall.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask SendAsync<T>(FrameType type, Opcode opcode, uint streamId, T message, bool hasBody)
    {
        Interlocked.Increment(ref _pendingWriters);
        if (!_writeLock.Wait(0))
            await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            Exception? failure = null;
            try
            {
                WriteFrame(type, opcode, streamId, message, hasBody);
            }
            catch (Exception e)
            {
                failure = e;
            }
            if (Interlocked.Decrement(ref _pendingWriters) == 0)
            {
                FlushResult flushed;
                try
                {
                    flushed = await _output.FlushAsync().ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
                {
                    Close(new WayangError(ErrorCode.ConnectionClosed, "Writing to the connection failed: " + e.Message));
                    throw new WayangException(new WayangError(ErrorCode.ConnectionClosed, "The connection closed while sending: " + e.Message), e);
                }
                if (flushed.IsCompleted || flushed.IsCanceled)
                    throw new WayangException(ErrorCode.ConnectionClosed, "The connection closed while sending.");
                Volatile.Write(ref _lastActivity, Environment.TickCount64);
            }
            if (failure is not null)
                ExceptionDispatchInfo.Throw(failure);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private void WriteFrame<T>(FrameType type, Opcode opcode, uint streamId, T message, bool hasBody)
    {
        if (IsClosed)
            ThrowClosed();
        if (!hasBody)
        {
            FrameWriter.Write(_output, type, opcode, streamId, ReadOnlySpan<byte>.Empty);
            return;
        }
        _scratch.ResetWrittenCount();
        if (typeof(T) == typeof(byte[]))
            _scratch.Write((byte[])(object)message!);
        else
            MessagePackSerializer.Serialize(_scratch, message, WireOptions.Trusted);
        if (_scratch.WrittenCount > _maxRequestBody)
            ThrowTooLarge(_scratch.WrittenCount, _maxRequestBody);
        FrameWriter.Write(_output, type, opcode, streamId, _scratch.WrittenSpan);
    }

    private void ThrowClosed() =>
        throw new WayangException(CloseReason ?? new WayangError(ErrorCode.ConnectionClosed));

    private static void ThrowTooLarge(int size, int max) =>
        throw new WayangException(ErrorCode.FrameTooLarge, $"The request body is {size} bytes; the server accepts at most {max}.");

    private async Task SendQuietlyAsync(FrameType type, uint streamId, byte[]? body)
    {
        try
        {
            await SendAsync(type, Opcode.None, streamId, body, hasBody: body is not null).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Best effort (CANCEL, PONG, keep-alive PING): a dead connection is reported by the read loop.
        }
    }

    private void OnKeepAlive()
    {
        if (IsClosed)
            return;
        long idle = Environment.TickCount64 - Volatile.Read(ref _lastActivity);
        if (idle < (long)_options.KeepAliveInterval.TotalMilliseconds)
            return;
        var body = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(body, Environment.TickCount64);
        _ = SendQuietlyAsync(FrameType.Ping, 0, body);
    }

    private async Task ReadLoopAsync()
    {
        WayangError reason = new(ErrorCode.ConnectionClosed, "The server closed the connection.");
        try
        {
            while (true)
            {
                var result = await _input.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                Volatile.Write(ref _lastActivity, Environment.TickCount64);
                try
                {
                    while (true)
                    {
                        var status = FrameReader.TryReadFrame(ref buffer, _options.MaxReceiveFrameBytes, out var frame, out var error);
                        if (status == FrameReadStatus.Incomplete)
                            break;
                        if (status == FrameReadStatus.Error)
                        {
                            reason = new WayangError(ErrorCode.ConnectionClosed, $"The server sent an invalid frame ({ErrorRegistry.NameOf(error)}).");
                            return;
                        }
                        Dispatch(in frame);
                    }
                    if (result.IsCompleted || result.IsCanceled)
                    {
                        if (!buffer.IsEmpty)
                            reason = new WayangError(ErrorCode.ConnectionClosed, "The connection ended in the middle of a frame.");
                        else if (Volatile.Read(ref _closeReason) is { } serverReason)
                            reason = serverReason;
                        return;
                    }
                }
                finally
                {
                    _input.AdvanceTo(buffer.Start, buffer.End);
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException or MessagePackSerializationException)
        {
            reason = Volatile.Read(ref _closeReason) ?? new WayangError(ErrorCode.ConnectionClosed, "The connection failed: " + e.Message);
        }
        finally
        {
            Close(reason);
        }
    }

    private void Dispatch(in Frame frame)
    {
        var header = frame.Header;
        switch (header.Type)
        {
            case FrameType.Response:
            case FrameType.End:
            {
                PendingOperation? op;
                lock (_gate)
                {
                    _pending.Remove(header.StreamId, out op);
                }
                if (op is null)
                    return; // a reply that lost the race with a timeout or cancel
                if (header.Type == FrameType.End)
                    op.OnEnd();
                else
                    op.OnResponse(frame.Body);
                MaybeFinishDrain();
                return;
            }
            case FrameType.Stream:
            {
                PendingOperation? op;
                lock (_gate)
                {
                    _pending.TryGetValue(header.StreamId, out op);
                }
                op?.OnStreamItem(frame.Body);
                return;
            }
            case FrameType.Error:
            {
                var error = DecodeError(frame.Body);
                if (header.StreamId == 0)
                {
                    // Connection-level: fatal ones are followed by close; remember why for the in-flight calls.
                    Volatile.Write(ref _closeReason, new WayangError(ErrorCode.ConnectionClosed,
                        $"The server closed the connection: {error.Name}: {error.Message}",
                        details: new Dictionary<string, string> { ["cause"] = error.Name }, retryable: error.Retryable || ErrorRegistry.Get(ErrorCode.ConnectionClosed).Retryable));
                    return;
                }
                PendingOperation? op;
                lock (_gate)
                {
                    _pending.Remove(header.StreamId, out op);
                }
                op?.OnError(error);
                MaybeFinishDrain();
                return;
            }
            case FrameType.Ping:
                _ = SendQuietlyAsync(FrameType.Pong, 0, frame.Body.ToArray());
                return;
            case FrameType.GoAway:
                var goAway = MessagePackSerializer.Deserialize<GoAwayBody>(frame.Body, WireOptions.Untrusted);
                lock (_gate)
                {
                    if (_state == Open)
                        _state = Draining;
                }
                Volatile.Write(ref _closeReason, new WayangError(ErrorCode.ConnectionClosed,
                    $"The server is going away: {goAway.Message}", details: new Dictionary<string, string> { ["cause"] = "GOAWAY" }));
                MaybeFinishDrain();
                return;
            default:
                // PONG, CREDIT (client-to-server streams do not exist yet) and anything a client never expects.
                return;
        }
    }

    private void MaybeFinishDrain()
    {
        bool done;
        lock (_gate)
        {
            done = _state == Draining && _pending.Count == 0;
        }
        if (done)
            _ = DisposeAsync().AsTask().ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
    }

    private static WayangError DecodeError(in ReadOnlySequence<byte> body)
    {
        ErrorBody decoded;
        try
        {
            decoded = MessagePackSerializer.Deserialize<ErrorBody>(body, WireOptions.Untrusted);
        }
        catch (MessagePackSerializationException)
        {
            decoded = null!;
        }
        // A nil body decodes to null (MessagePack 2.x): as undecodable as a malformed one.
        return decoded is null
            ? new WayangError(ErrorCode.BadBody, "The server sent an ERROR frame that could not be decoded.")
            : ErrorBodyMapping.ToError(decoded);
    }

    private void Close(WayangError reason)
    {
        PendingOperation[] failed;
        lock (_gate)
        {
            if (_state == Closed)
                return;
            _state = Closed;
            failed = [.. _pending.Values];
            _pending.Clear();
        }
        Volatile.Write(ref _closeReason, reason);
        _keepAlive?.Dispose();
        foreach (var op in failed)
            op.OnError(reason);
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception)
        {
            // already gone
        }
        _socket.Dispose();
        _closed.TrySetResult();
    }

    // Idempotent and safe to call concurrently (the drain path and the client's dispose may race).
    public ValueTask DisposeAsync()
    {
        var disposal = new Lazy<Task>(DisposeCoreAsync);
        var winner = Interlocked.CompareExchange(ref _disposal, disposal, null) ?? disposal;
        return new ValueTask(winner.Value);
    }

    private async Task DisposeCoreAsync()
    {
        Close(new WayangError(ErrorCode.ConnectionClosed, "The client closed the connection."));
        if (_readLoop is not null)
            await _readLoop.ConfigureAwait(false);
        await _input.CompleteAsync().ConfigureAwait(false);
        // The writer may be in use by a sender that is about to notice the closed state; take the lock first.
        await _writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            await _output.CompleteAsync().ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
        await _stream.DisposeAsync().ConfigureAwait(false);
    }
}
