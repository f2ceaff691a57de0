using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using MessagePack;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Server.Metrics;

namespace Wayang.Fast.Server.Sessions;

// The one writer of a connection's PipeWriter. Producers: the read loop (synchronous replies, written
// without flushing and flushed once per read batch) and async work (streams, durable ops) on other threads.
//
// Writes take a short lock (no await inside). Flushes never overlap: when FlushAsync does not complete
// synchronously (the transport's output is full: the peer is not reading), it becomes the one pending
// flush; every producer that calls FlushAsync meanwhile awaits that same flush, so the read loop stops
// reading and async producers stop producing: backpressure reaches dispatch without a queue. Bytes written
// while a flush is pending are bounded by MaxPendingWriteBytes; past it the peer is a SLOW_CONSUMER and
// the connection is closed.
internal sealed class SessionWriter
{
    private readonly Lock _lock = new();
    private readonly PipeWriter _output;
    private readonly SessionStats _stats;
    private readonly ServerMetrics _metrics;
    private readonly long _maxPendingBytes;
    private readonly Action _onSlowConsumer;

    private bool _closed;
    private bool _completed;
    private long _unflushedBytes;
    private Task? _pendingFlush;
    private long _bytesWhileBlocked;
    private int _flushScheduled;

    public SessionWriter(PipeWriter output, SessionStats stats, ServerMetrics metrics, long maxPendingBytes, Action onSlowConsumer)
    {
        _output = output;
        _stats = stats;
        _metrics = metrics;
        _maxPendingBytes = maxPendingBytes;
        _onSlowConsumer = onSlowConsumer;
    }

    public bool IsClosed => Volatile.Read(ref _closed);

    public bool IsSlowConsumer { get; private set; }

    public bool WriteFrame(FrameType type, Opcode opcode, uint streamId, ReadOnlySpan<byte> body)
    {
        lock (_lock)
        {
            if (!Admit(FrameHeader.Size + body.Length))
                return false;
            FrameWriter.Write(_output, type, opcode, streamId, body);
            Wrote(type, FrameHeader.Size + body.Length);
            return true;
        }
    }

    public bool WriteFrame(FrameType type, Opcode opcode, uint streamId, in ReadOnlySequence<byte> body)
    {
        lock (_lock)
        {
            int total = FrameHeader.Size + (int)body.Length;
            if (!Admit(total))
                return false;
            FrameWriter.Write(_output, type, opcode, streamId, body);
            Wrote(type, total);
            return true;
        }
    }

    // The final reply of a request: the frame plus its latency sample, under one lock acquisition.
    public bool WriteReply(FrameType type, Opcode opcode, uint streamId, ReadOnlySpan<byte> body, long startTimestamp)
    {
        lock (_lock)
        {
            if (!Admit(FrameHeader.Size + body.Length))
                return false;
            FrameWriter.Write(_output, type, opcode, streamId, body);
            Wrote(type, FrameHeader.Size + body.Length);
            _stats.Latency(OpcodeIndex.Of(opcode), Stopwatch.GetTimestamp() - startTimestamp);
            return true;
        }
    }

    public bool WriteMessage<T>(FrameType type, Opcode opcode, uint streamId, T message, long startTimestamp = 0)
    {
        if (Volatile.Read(ref _closed))
            return false;
        // Serialized outside the lock into this thread's buffer: when a group commit releases hundreds of replies of one
        // connection at once, the lock is held only for the copy into the pipe, not for MessagePack encoding.
        var scratch = t_scratch ??= new ArrayBufferWriter<byte>(256);
        scratch.ResetWrittenCount();
        MessagePackSerializer.Serialize(scratch, message, WireOptions.Trusted);
        bool written;
        lock (_lock)
        {
            int total = FrameHeader.Size + scratch.WrittenCount;
            written = Admit(total);
            if (written)
            {
                FrameWriter.Write(_output, type, opcode, streamId, scratch.WrittenSpan);
                Wrote(type, total);
                if (startTimestamp != 0)
                    _stats.Latency(OpcodeIndex.Of(opcode), Stopwatch.GetTimestamp() - startTimestamp);
            }
        }
        // A one-off large body (a big key listing) should not pin its buffer for the thread's life.
        if (scratch.Capacity > 64 * 1024)
            t_scratch = null;
        return written;
    }

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_scratch;

    public bool WriteError(uint streamId, Opcode opcode, ErrorCode code, long startTimestamp = 0) =>
        WriteErrorBody(streamId, opcode, code, ErrorBodies.Default(code), startTimestamp);

    public bool WriteError(uint streamId, Opcode opcode, WayangError error, long startTimestamp = 0) =>
        WriteErrorBody(streamId, opcode, error.Code, ErrorBodies.Serialize(error), startTimestamp);

    private bool WriteErrorBody(uint streamId, Opcode opcode, ErrorCode code, byte[] body, long startTimestamp)
    {
        _metrics.Error(code);
        return startTimestamp != 0
            ? WriteReply(FrameType.Error, opcode, streamId, body, startTimestamp)
            : WriteFrame(FrameType.Error, opcode, streamId, body);
    }

    // Completed synchronously unless the peer is not reading (then every caller awaits the one pending flush).
    public ValueTask FlushAsync()
    {
        lock (_lock)
        {
            if (_pendingFlush is not null)
                return new ValueTask(_pendingFlush);
            if (_closed || _unflushedBytes == 0)
                return default;
            _unflushedBytes = 0;
            ValueTask<FlushResult> flush;
            try
            {
                flush = _output.FlushAsync();
            }
            catch (Exception)
            {
                // The transport is gone (reset): nothing more can be written.
                _closed = true;
                return default;
            }
            if (flush.IsCompleted)
            {
                Observe(flush);
                return default;
            }
            _bytesWhileBlocked = 0;
            _pendingFlush = AwaitPendingFlushAsync(flush);
            return new ValueTask(_pendingFlush);
        }
    }

    // For replies finished off the read loop (durable ops completing together after a group commit): rather than one
    // flush (a send under the lock) per reply, one scheduled flush carries every reply written before it runs. A
    // pending flush (the peer is not reading) is still awaited, so backpressure holds.
    public ValueTask FlushSoonAsync()
    {
        if (Volatile.Read(ref _pendingFlush) is { } pending)
            return new ValueTask(pending);
        ScheduleFlush();
        return default;
    }

    // For timers and abort paths that cannot await: the flush still runs, its outcome is observed inside.
    public void FlushInBackground()
    {
        var flush = FlushAsync();
        if (!flush.IsCompleted)
            _ = flush.AsTask();
    }

    // For producers that must not flush themselves (task pushes, written under the dispatcher's lock): one flush on
    // the thread pool soon, shared by every write made before it runs. The flag is cleared before flushing, so a
    // write that lands after the clear schedules the next flush; none is left unflushed.
    public void ScheduleFlush()
    {
        if (Interlocked.CompareExchange(ref _flushScheduled, 1, 0) != 0)
            return;
        ThreadPool.UnsafeQueueUserWorkItem(static w => w.RunScheduledFlush(), this, preferLocal: false);
    }

    private void RunScheduledFlush()
    {
        Volatile.Write(ref _flushScheduled, 0);
        FlushInBackground();
    }

    // Stops all writing: later writes are refused, a pending flush is released, the pipe is completed.
    public void Complete()
    {
        lock (_lock)
        {
            if (_completed)
                return;
            _completed = true;
            _closed = true;
            try
            {
                if (_pendingFlush is not null)
                    _output.CancelPendingFlush();
                _output.Complete();
            }
            catch (Exception)
            {
                // Completing a pipe whose transport already failed: nothing to do.
            }
        }
    }

    private async Task AwaitPendingFlushAsync(ValueTask<FlushResult> flush)
    {
        while (true)
        {
            FlushResult result;
            try
            {
                result = await flush.ConfigureAwait(false);
            }
            catch (Exception)
            {
                lock (_lock)
                {
                    _closed = true;
                    _pendingFlush = null;
                }
                return;
            }
            lock (_lock)
            {
                if (result.IsCompleted || result.IsCanceled)
                    _closed = true;
                _bytesWhileBlocked = 0;
                if (_closed || _unflushedBytes == 0)
                {
                    _pendingFlush = null;
                    return;
                }
                // Producers wrote while we were blocked: flush their bytes before releasing the waiters.
                _unflushedBytes = 0;
                try
                {
                    flush = _output.FlushAsync();
                }
                catch (Exception)
                {
                    _closed = true;
                    _pendingFlush = null;
                    return;
                }
                if (flush.IsCompleted)
                {
                    Observe(flush);
                    _pendingFlush = null;
                    return;
                }
            }
        }
    }

    private void Observe(ValueTask<FlushResult> flush)
    {
        try
        {
            var result = flush.Result;
            if (result.IsCompleted || result.IsCanceled)
                _closed = true;
        }
        catch (Exception)
        {
            _closed = true;
        }
    }

    // Caller holds _lock.
    private bool Admit(int frameBytes)
    {
        if (_closed)
            return false;
        if (_pendingFlush is not null)
        {
            _bytesWhileBlocked += frameBytes;
            if (_bytesWhileBlocked > _maxPendingBytes)
            {
                SlowConsumer();
                return false;
            }
        }
        return true;
    }

    private void Wrote(FrameType type, int totalBytes)
    {
        _unflushedBytes += totalBytes;
        _stats.FrameOut(type, totalBytes);
    }

    private void SlowConsumer()
    {
        // Best effort: the peer may never read it, but a peer that is merely slow learns why it was dropped.
        var body = ErrorBodies.Default(ErrorCode.SlowConsumer);
        FrameWriter.Write(_output, FrameType.Error, Opcode.None, 0, body);
        Wrote(FrameType.Error, FrameHeader.Size + body.Length);
        _metrics.Error(ErrorCode.SlowConsumer);
        _closed = true;
        IsSlowConsumer = true;
        ThreadPool.UnsafeQueueUserWorkItem(static a => a(), _onSlowConsumer, preferLocal: false);
    }
}
