using System.Buffers;
using System.Collections.Concurrent;
using System.Threading.Tasks.Sources;
using MessagePack;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;

namespace Wayang.Fast.Client.Internal;

// A pooled IValueTaskSource per unary call: a steady stream of calls allocates no completion objects.
// Reuse is safe because completion is owned by whoever removed the call from the pending table, the
// cancellation registration is disposed before the object returns to the pool, and a timer callback that
// fires late for an earlier use only acts when the current use's deadline has passed.
internal sealed class UnaryCall<TRes> : PendingOperation, IValueTaskSource<TRes>
{
    private const int MaxPooled = 256;
    private static readonly ConcurrentQueue<UnaryCall<TRes>> Pool = new();

    private ManualResetValueTaskSourceCore<TRes> _core = new() { RunContinuationsAsynchronously = true };
    private WayangConnection? _connection;
    private uint _streamId;
    private long _deadline = long.MaxValue;
    private ITimer? _timer;
    private CancellationTokenRegistration _cancellation;

    public static UnaryCall<TRes> Rent() => Pool.TryDequeue(out var call) ? call : new UnaryCall<TRes>();

    public short Version => _core.Version;

    public uint StreamId => Volatile.Read(ref _streamId);

    public void Arm(WayangConnection connection, uint streamId, TimeSpan timeout, CancellationToken ct)
    {
        _connection = connection;
        if (timeout != Timeout.InfiniteTimeSpan && timeout > TimeSpan.Zero)
        {
            // Deadline before stream id: a late timer callback that sees the new id also sees the new deadline.
            Volatile.Write(ref _deadline, Environment.TickCount64 + (long)Math.Ceiling(timeout.TotalMilliseconds));
            Volatile.Write(ref _streamId, streamId);
            _timer ??= TimeProvider.System.CreateTimer(static s => ((UnaryCall<TRes>)s!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            _timer.Change(timeout, Timeout.InfiniteTimeSpan);
        }
        else
        {
            Volatile.Write(ref _deadline, long.MaxValue);
            Volatile.Write(ref _streamId, streamId);
        }
        if (ct.CanBeCanceled)
            _cancellation = ct.UnsafeRegister(static s => ((UnaryCall<TRes>)s!).OnCancelled(), this);
    }

    private void OnTimer()
    {
        var connection = Volatile.Read(ref _connection);
        uint id = Volatile.Read(ref _streamId);
        if (connection is null || Environment.TickCount64 < Volatile.Read(ref _deadline))
            return;
        connection.AbandonPending(id, this, ErrorCode.ClientTimeout, "The call did not complete within its timeout.");
    }

    private void OnCancelled()
    {
        var connection = Volatile.Read(ref _connection);
        connection?.AbandonPending(Volatile.Read(ref _streamId), this, ErrorCode.Cancelled, "The call was cancelled by the caller.");
    }

    public override void OnResponse(in ReadOnlySequence<byte> body)
    {
        if (typeof(TRes) == typeof(NoBody))
        {
            _core.SetResult(default!);
            return;
        }
        TRes result;
        try
        {
            result = MessagePackSerializer.Deserialize<TRes>(body, WireOptions.Untrusted);
        }
        catch (MessagePackSerializationException e)
        {
            _core.SetException(new WayangException(new WayangError(ErrorCode.BadBody, "The server's reply could not be decoded: " + e.Message), e));
            return;
        }
        _core.SetResult(result);
    }

    public override void OnError(WayangError error) => _core.SetException(new WayangException(error));

    public TRes GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            Recycle();
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    private void Recycle()
    {
        // Dispose waits for a cancellation callback that is running now, so none can touch the next use.
        _cancellation.Dispose();
        _cancellation = default;
        _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        Volatile.Write(ref _connection, null);
        _core.Reset();
        if (Pool.Count < MaxPooled)
            Pool.Enqueue(this);
    }
}
