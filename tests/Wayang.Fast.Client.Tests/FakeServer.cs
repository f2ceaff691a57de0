using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using MessagePack;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Client.Tests;

public sealed record ReceivedFrame(int SessionNumber, FrameType Type, Opcode Opcode, uint StreamId, byte[] Body);

// A scripted protocol peer on 127.0.0.1:0, speaking frames through Protocol's FrameReader/FrameWriter.
// Each test sets OnFrame to script replies; every frame received after HELLO is recorded for assertions.
public sealed class FakeServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<ReceivedFrame> _frames = [];
    private readonly List<FakeSession> _sessions = [];
    private readonly Task _acceptLoop;
    private int _accepted;

    public FakeServer()
    {
        _listener.Start();
        _acceptLoop = AcceptLoopAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public int Accepted => Volatile.Read(ref _accepted);

    // null: accept; otherwise the ERROR answered to HELLO (then the connection closes).
    public Func<HelloRequest, ErrorBody?> Authenticate { get; set; } = _ => null;

    public int MaxFrameBytes { get; set; } = WireOptions.DefaultMaxFrameBytes;

    // Scripted behaviour for frames after the handshake. Default: answer opcode Ping with an empty RESPONSE.
    public Func<FakeSession, ReceivedFrame, Task> OnFrame { get; set; } = DefaultBehaviour;

    public static async Task DefaultBehaviour(FakeSession session, ReceivedFrame frame)
    {
        if (frame.Type == FrameType.Request && frame.Opcode == Opcode.Ping)
            await session.SendAsync(FrameType.Response, Opcode.Ping, frame.StreamId, []);
    }

    public IReadOnlyList<ReceivedFrame> Frames
    {
        get
        {
            lock (_frames)
                return [.. _frames];
        }
    }

    public FakeSession Session(int number)
    {
        lock (_sessions)
            return _sessions[number - 1];
    }

    public WayangClientOptions ClientOptions(Action<WayangClientOptions>? configure = null)
    {
        var options = new WayangClientOptions
        {
            Host = "127.0.0.1",
            Port = Port,
            ApiKey = "test-key",
            DefaultTimeout = TimeSpan.FromSeconds(30),
            KeepAliveInterval = TimeSpan.Zero,
        };
        options.Reconnect.BaseDelay = TimeSpan.FromMilliseconds(10);
        options.Reconnect.MaxDelay = TimeSpan.FromMilliseconds(50);
        configure?.Invoke(options);
        return options;
    }

    public async Task<ReceivedFrame> WaitForFrameAsync(Func<ReceivedFrame, bool> predicate, TimeSpan? timeout = null)
    {
        ReceivedFrame? found = null;
        await Wait.UntilAsync(() => (found = Frames.FirstOrDefault(predicate)) is not null, timeout);
        return found!;
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var socket = await _listener.AcceptSocketAsync(_stop.Token);
                int number = Interlocked.Increment(ref _accepted);
                var session = new FakeSession(this, socket, number);
                lock (_sessions)
                    _sessions.Add(session);
                session.Start();
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    internal void Record(ReceivedFrame frame)
    {
        lock (_frames)
            _frames.Add(frame);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _acceptLoop;
        FakeSession[] sessions;
        lock (_sessions)
            sessions = [.. _sessions];
        foreach (var s in sessions)
            await s.DisposeAsync();
        _stop.Dispose();
    }
}

public sealed class FakeSession : IAsyncDisposable
{
    private readonly FakeServer _server;
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _loop = Task.CompletedTask;

    internal FakeSession(FakeServer server, Socket socket, int number)
    {
        _server = server;
        _socket = socket;
        Number = number;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _input = PipeReader.Create(_stream);
        _output = PipeWriter.Create(_stream);
    }

    public int Number { get; }

    public HelloRequest? Hello { get; private set; }

    public Task Closed => _closed.Task;

    internal void Start() => _loop = Task.Run(RunAsync);

    private async Task RunAsync()
    {
        bool welcomed = false;
        try
        {
            while (true)
            {
                var result = await _input.ReadAsync();
                var buffer = result.Buffer;
                var frames = new List<ReceivedFrame>();
                while (FrameReader.TryReadFrame(ref buffer, _server.MaxFrameBytes, out var frame, out _) == FrameReadStatus.Complete)
                    frames.Add(new ReceivedFrame(Number, frame.Header.Type, frame.Header.Opcode, frame.Header.StreamId, frame.Body.ToArray()));
                _input.AdvanceTo(buffer.Start, buffer.End);
                foreach (var frame in frames)
                {
                    if (!welcomed)
                    {
                        Hello = MessagePackSerializer.Deserialize<HelloRequest>(frame.Body, WireOptions.Untrusted);
                        var refusal = _server.Authenticate(Hello);
                        if (refusal is not null)
                        {
                            await SendMessageAsync(FrameType.Error, Opcode.None, 0, refusal);
                            return;
                        }
                        await SendMessageAsync(FrameType.Welcome, Opcode.None, 0, new WelcomeResponse
                        {
                            ServerVersion = "fake-1",
                            ProtocolVersion = WireOptions.ProtocolVersion,
                            SessionId = "s" + Number,
                            MaxFrameBytes = _server.MaxFrameBytes,
                            MaxInFlight = 1024,
                            IdleTimeoutMs = 120_000,
                            TenantId = "system",
                            KeyId = "k1",
                            Roles = ["platform-admin"],
                            InitialStreamCredit = Hello.InitialStreamCredit == 0 ? 32 : Hello.InitialStreamCredit,
                        });
                        welcomed = true;
                        continue;
                    }
                    _server.Record(frame);
                    await _server.OnFrame(this, frame);
                }
                if (result.IsCompleted)
                    return;
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
        {
        }
        finally
        {
            Abort();
        }
    }

    public async Task SendAsync(FrameType type, Opcode opcode, uint streamId, byte[] body)
    {
        await _writeLock.WaitAsync();
        try
        {
            FrameWriter.Write(_output, type, opcode, streamId, body);
            await _output.FlushAsync();
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public Task SendMessageAsync<T>(FrameType type, Opcode opcode, uint streamId, T message) =>
        SendAsync(type, opcode, streamId, MessagePackSerializer.Serialize(message, WireOptions.Trusted));

    public Task SendErrorAsync(uint streamId, ErrorCode code, string message, long retryAfterMs = 0, Dictionary<string, string>? details = null) =>
        SendMessageAsync(FrameType.Error, Opcode.None, streamId, new ErrorBody
        {
            Code = (int)code,
            Name = ErrorRegistry.NameOf(code),
            Message = message,
            Retryable = ErrorRegistry.Get(code).Retryable,
            RetryAfterMs = retryAfterMs,
            Details = details ?? [],
        });

    public void Abort()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception)
        {
        }
        _socket.Dispose();
        _closed.TrySetResult();
    }

    public async ValueTask DisposeAsync()
    {
        Abort();
        await _loop;
    }
}

public static class Wait
{
    // Polls a condition against a deadline: tests wait on conditions, never on elapsed time alone.
    public static async Task UntilAsync(Func<bool> condition, TimeSpan? timeout = null, string? what = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("Condition not met in time" + (what is null ? "." : ": " + what));
            await Task.Delay(5);
        }
    }
}
