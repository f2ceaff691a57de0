using System.Buffers;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Wayang.Fast.LoadGen.Scenarios;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.LoadGen.Engine;

// Drives one connection. Every request occupies a SLOT while in flight; slot i always uses stream id i + 1, so stream
// ids are unique among requests in flight (the protocol's rule) and a reply maps to its slot with one subtraction.
// The complete request frame for each (slot, body) pair is encoded once up front: sending is a memcpy, and the steady
// state allocates nothing (timestamps and counters live in arrays sized at start).
internal sealed class LoadWorker
{
    private const int OpenMaxBatch = 256;
    private static readonly double TicksPerTimestamp = TimeSpan.TicksPerSecond / (double)Stopwatch.Frequency;

    private readonly LoadConnection _connection;
    private readonly IScenario _scenario;
    private readonly RunControl _control;
    private readonly int _slots;
    private readonly int _variants;
    private readonly byte[][] _frames;
    private readonly long[] _startedAt;
    private readonly long[] _sentAt;
    private readonly bool[] _busy;
    private readonly int[] _free;
    private readonly bool _open;
    // Open model: the pacer thread takes slots, the receive loop gives them back.
    private readonly Lock _slotLock = new();
    private readonly Lock _sendLock = new();
    private readonly byte[] _sendBuffer = [];
    private int _freeCount;
    private int _variant;
    private bool _needFlush;
    private volatile bool _dead;
    private volatile bool _issuingDone;

    // Open model pacing: request k of this connection is intended at _origin + (k + _phase) * _period.
    private long _origin;
    private double _period;
    private double _phase;
    private long _nextK;

    public LoadWorker(LoadConnection connection, IScenario scenario, IReadOnlyList<byte[]> bodies, RunControl control, int slots, bool open)
    {
        _connection = connection;
        _scenario = scenario;
        _control = control;
        _slots = slots;
        _open = open;
        _variants = bodies.Count;
        _frames = new byte[slots * _variants][];
        var writer = new ArrayBufferWriter<byte>(256);
        int maxFrame = 0;
        for (int s = 0; s < slots; s++)
        {
            for (int v = 0; v < _variants; v++)
            {
                writer.ResetWrittenCount();
                FrameWriter.Write(writer, FrameType.Request, scenario.Opcode, (uint)(s + 1), bodies[v]);
                _frames[(s * _variants) + v] = writer.WrittenSpan.ToArray();
                maxFrame = Math.Max(maxFrame, writer.WrittenCount);
            }
        }
        _startedAt = new long[slots];
        _sentAt = new long[slots];
        _busy = new bool[slots];
        _free = new int[slots];
        // Lowest stream ids first: pop from the end.
        for (int i = 0; i < slots; i++)
            _free[i] = slots - 1 - i;
        _freeCount = slots;
        if (open)
            _sendBuffer = new byte[OpenMaxBatch * maxFrame];
        Stats = new WorkerStats(open);
    }

    public WorkerStats Stats { get; }

    public LoadConnection Connection => _connection;

    public bool Dead => _dead;

    public int InFlight => _slots - Volatile.Read(ref _freeCount);

    // ---------------------------------------------------------------- closed model

    // One async loop does both directions: replies free slots, freed slots are refilled (sliding window) or, in batch
    // style, the next batch goes out only when the whole previous one is answered (redis-benchmark -P semantics).
    // New requests written while handling one read share a single flush.
    public async Task RunClosedAsync(bool batch)
    {
        var ct = _control.Aborted;
        var input = _connection.Input;
        try
        {
            if (IssueClosed(_slots) > 0)
            {
                _needFlush = false;
                await _connection.Output.FlushAsync(ct);
            }
            while (true)
            {
                if (_freeCount == _slots && _control.StopIssuing)
                    return;
                var result = await input.ReadAsync(ct);
                long now = Stopwatch.GetTimestamp();
                var buffer = result.Buffer;
                int completed = 0;
                try
                {
                    while (true)
                    {
                        var status = FrameReader.TryReadFrame(ref buffer, _connection.MaxBody, out var frame, out var error);
                        if (status == FrameReadStatus.Incomplete)
                            break;
                        if (status == FrameReadStatus.Error)
                        {
                            Fatal("unreadable frame from server: " + error, now);
                            return;
                        }
                        int r = HandleFrame(in frame, now);
                        if (r < 0)
                            return;
                        completed += r;
                    }
                }
                finally
                {
                    if (!_dead)
                        input.AdvanceTo(buffer.Start, buffer.End);
                }

                if (batch ? _freeCount == _slots : completed > 0)
                    IssueClosed(batch ? _slots : completed);
                if (_needFlush)
                {
                    _needFlush = false;
                    await _connection.Output.FlushAsync(ct);
                }
                if (result.IsCompleted)
                {
                    Fatal("server closed the connection", Stopwatch.GetTimestamp());
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            TimeOutInFlight();
        }
        catch (Exception e) when (e is IOException or SocketException or InvalidOperationException)
        {
            Fatal(e.Message, Stopwatch.GetTimestamp());
        }
    }

    private int IssueClosed(int wanted)
    {
        wanted = Math.Min(wanted, _freeCount);
        if (wanted == 0)
            return 0;
        long now = Stopwatch.GetTimestamp();
        int n = _control.Claim(wanted, now);
        if (n == 0)
            return 0;
        var output = _connection.Output;
        bool measured = now >= _control.MeasureStart;
        long bytes = 0;
        for (int i = 0; i < n; i++)
        {
            int slot = _free[--_freeCount];
            _busy[slot] = true;
            _startedAt[slot] = now;
            var frame = NextFrame(slot);
            output.Write(frame);
            bytes += frame.Length;
        }
        if (measured)
            Stats.BytesSent += bytes;
        _needFlush = true;
        return n;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte[] NextFrame(int slot)
    {
        if (_variants == 1)
            return _frames[slot];
        int v = _variant;
        _variant = v + 1 == _variants ? 0 : v + 1;
        return _frames[(slot * _variants) + v];
    }

    // ---------------------------------------------------------------- open model

    public void ConfigurePacing(long origin, double periodTimestamps, double phase)
    {
        _origin = origin;
        _period = periodTimestamps;
        _phase = phase;
    }

    public bool IssuingDone => _issuingDone || _dead;

    public long NextIntended => _origin + (long)((_nextK + _phase) * _period);

    // Requests whose intended time passed but that were never sent (in-flight cap reached), as of `at`.
    public long Backlog(long at)
    {
        long due = (long)Math.Floor(((at - _origin) / _period) - _phase) + 1;
        return Math.Max(0, due - _nextK);
    }

    // Called by the pacer thread: sends every request of this connection whose intended time is <= now, as far as
    // free slots allow, in one send. Latency is later measured from the INTENDED time, so a late send (pacer or
    // in-flight cap) shows up in the latency instead of silently thinning the load (coordinated omission).
    public void SendDue(long now)
    {
        if (_issuingDone || _dead)
            return;
        int length = 0;
        long measuredBytes = 0;
        lock (_slotLock)
        {
            int count = 0;
            while (count < OpenMaxBatch && _freeCount > 0)
            {
                long intended = NextIntended;
                if (intended > now)
                    break;
                if (_control.Claim(1, intended, endsOnlyCaller: true) == 0)
                {
                    _issuingDone = true;
                    break;
                }
                int slot = _free[--_freeCount];
                _busy[slot] = true;
                _startedAt[slot] = intended;
                _sentAt[slot] = now;
                var frame = NextFrame(slot);
                frame.CopyTo(_sendBuffer, length);
                length += frame.Length;
                if (intended >= _control.MeasureStart)
                    measuredBytes += frame.Length;
                _nextK++;
                count++;
            }
        }
        if (length == 0)
            return;
        Stats.BytesSent += measuredBytes;
        try
        {
            lock (_sendLock)
            {
                int sent = 0;
                while (sent < length)
                    sent += _connection.Socket.Send(_sendBuffer, sent, length - sent, SocketFlags.None);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            _dead = true;
            Stats.ConnectionError ??= "send failed: " + e.Message;
        }
    }

    public void MarkIssuingDone()
    {
        _issuingDone = true;
        _connection.Input.CancelPendingRead();
    }

    // The receive half of the open model: replies only; it leaves when issuing is done and nothing is in flight.
    public async Task RunReceiveAsync()
    {
        var ct = _control.Aborted;
        var input = _connection.Input;
        try
        {
            while (true)
            {
                if (_issuingDone && InFlight == 0)
                    return;
                var result = await input.ReadAsync(ct);
                long now = Stopwatch.GetTimestamp();
                var buffer = result.Buffer;
                try
                {
                    while (true)
                    {
                        var status = FrameReader.TryReadFrame(ref buffer, _connection.MaxBody, out var frame, out var error);
                        if (status == FrameReadStatus.Incomplete)
                            break;
                        if (status == FrameReadStatus.Error)
                        {
                            Fatal("unreadable frame from server: " + error, now);
                            return;
                        }
                        if (HandleFrame(in frame, now) < 0)
                            return;
                    }
                }
                finally
                {
                    if (!_dead)
                        input.AdvanceTo(buffer.Start, buffer.End);
                }
                if (result.IsCompleted)
                {
                    Fatal("server closed the connection", Stopwatch.GetTimestamp());
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            TimeOutInFlight();
        }
        catch (Exception e) when (e is IOException or SocketException or InvalidOperationException)
        {
            Fatal(e.Message, Stopwatch.GetTimestamp());
        }
    }

    // ---------------------------------------------------------------- replies

    // 1: a request completed; 0: nothing completed; -1: the connection is finished (fatal).
    private int HandleFrame(in Frame frame, long now)
    {
        var header = frame.Header;
        if (header.StreamId == 0)
            return HandleConnectionFrame(in frame, now);

        int slot = (int)header.StreamId - 1;
        if ((uint)slot >= (uint)_slots || !_busy[slot])
        {
            Stats.UnexpectedFrames++;
            return 0;
        }
        bool measured = _startedAt[slot] >= _control.MeasureStart;
        if (measured)
            Stats.BytesReceived += FrameHeader.Size + header.BodyLength;

        ReplyOutcome outcome;
        if (header.Type == FrameType.Error)
        {
            outcome = ReplyOutcome.Failed;
            if (measured)
                Stats.CountError(LoadConnection.ErrorName(LoadConnection.ReadErrorCode(frame.Body)));
        }
        else if (header.Type is FrameType.Response or FrameType.Stream or FrameType.End)
        {
            outcome = _scenario.Classify(in frame);
            if (outcome == ReplyOutcome.Failed && measured)
                Stats.CountError("unexpected-reply");
        }
        else
        {
            Stats.UnexpectedFrames++;
            return 0;
        }
        if (outcome == ReplyOutcome.Continue)
            return 0;

        if (measured)
        {
            if (outcome == ReplyOutcome.Ok)
            {
                Stats.Ok++;
                Record(Stats.Latency, now - _startedAt[slot]);
                if (Stats.Uncorrected is { } uncorrected)
                    Record(uncorrected, now - _sentAt[slot]);
            }
            else
            {
                Stats.Failed++;
            }
            if (now > Stats.LastCompletion)
                Stats.LastCompletion = now;
        }
        Release(slot);
        return 1;
    }

    private int HandleConnectionFrame(in Frame frame, long now)
    {
        switch (frame.Header.Type)
        {
            case FrameType.Ping:
                // Keep-alive from the server: answer with the same body.
                SendPong(frame.Body.ToArray());
                return 0;
            case FrameType.Pong:
                return 0;
            case FrameType.Error:
                Fatal("connection error: " + LoadConnection.ErrorName(LoadConnection.ReadErrorCode(frame.Body)), now);
                return -1;
            case FrameType.GoAway:
                Fatal("server sent GOAWAY", now);
                return -1;
            default:
                Stats.UnexpectedFrames++;
                return 0;
        }
    }

    private void SendPong(byte[] body)
    {
        if (!_open)
        {
            FrameWriter.Write(_connection.Output, FrameType.Pong, Opcode.None, 0, body);
            _needFlush = true;
            return;
        }
        var writer = new ArrayBufferWriter<byte>(FrameHeader.Size + body.Length);
        FrameWriter.Write(writer, FrameType.Pong, Opcode.None, 0, body);
        try
        {
            lock (_sendLock)
                _connection.Socket.Send(writer.WrittenSpan);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            _dead = true;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Release(int slot)
    {
        if (_open)
        {
            lock (_slotLock)
            {
                _busy[slot] = false;
                _free[_freeCount++] = slot;
            }
        }
        else
        {
            _busy[slot] = false;
            _free[_freeCount++] = slot;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Record(HdrHistogram.LongHistogram histogram, long elapsedTimestamps)
    {
        long ticks = (long)(elapsedTimestamps * TicksPerTimestamp);
        histogram.RecordValue(Math.Clamp(ticks, 0, WorkerStats.HighestTicks));
    }

    // The connection is unusable: measured requests still in flight count as failed.
    private void Fatal(string reason, long now)
    {
        _dead = true;
        _issuingDone = true;
        Stats.ConnectionError ??= reason;
        lock (_slotLock)
        {
            for (int slot = 0; slot < _slots; slot++)
            {
                if (!_busy[slot])
                    continue;
                if (_startedAt[slot] >= _control.MeasureStart)
                {
                    Stats.Failed++;
                    Stats.CountError("connection-lost");
                    Stats.LastCompletion = Math.Max(Stats.LastCompletion, now);
                }
                _busy[slot] = false;
                _free[_freeCount++] = slot;
            }
        }
    }

    // The drain timeout passed with requests still in flight.
    private void TimeOutInFlight()
    {
        lock (_slotLock)
        {
            for (int slot = 0; slot < _slots; slot++)
            {
                if (!_busy[slot])
                    continue;
                if (_startedAt[slot] >= _control.MeasureStart)
                    Stats.TimedOut++;
                _busy[slot] = false;
                _free[_freeCount++] = slot;
            }
        }
    }
}
