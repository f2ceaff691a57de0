using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.LoadGen.SelfTest;

// A minimal in-process stand-in for the server, enough for the generator to check itself: HELLO with one key ->
// WELCOME, REQUEST Ping -> empty RESPONSE (or an ERROR every failEvery-th request), anything else -> UNKNOWN_OPCODE.
internal sealed class FakeServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly string _key;
    private readonly int _failEvery;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _sessions = [];
    private readonly Task _accept;
    private long _requests;

    public FakeServer(string key, int failEvery = 0, int port = 0)
    {
        _key = key;
        _failEvery = failEvery;
        _listener = new TcpListener(IPAddress.Loopback, port);
        _listener.Start();
        _accept = AcceptLoopAsync();
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

    public long Requests => Interlocked.Read(ref _requests);

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var socket = await _listener.AcceptSocketAsync(_stop.Token);
                socket.NoDelay = true;
                lock (_sessions)
                    _sessions.Add(Task.Run(() => SessionAsync(socket)));
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (SocketException)
        {
        }
    }

    private async Task SessionAsync(Socket socket)
    {
        await using var stream = new NetworkStream(socket, ownsSocket: true);
        var input = PipeReader.Create(stream);
        var output = PipeWriter.Create(stream);
        var scratch = new ArrayBufferWriter<byte>(256);
        bool authenticated = false;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(_stop.Token);
                var buffer = result.Buffer;
                bool close = false;
                try
                {
                    while (!close && FrameReader.TryReadFrame(ref buffer, WireOptions.DefaultMaxFrameBytes, out var frame, out _) == FrameReadStatus.Complete)
                    {
                        var h = frame.Header;
                        if (!authenticated)
                        {
                            var hello = MessagePack.MessagePackSerializer.Deserialize<HelloRequest>(frame.Body, WireOptions.Untrusted);
                            if (h.Type == FrameType.Hello && hello.ApiKey == _key)
                            {
                                authenticated = true;
                                var welcome = new WelcomeResponse { ServerVersion = "fake", ProtocolVersion = 1, SessionId = "s", MaxFrameBytes = WireOptions.DefaultMaxFrameBytes, MaxInFlight = 1024 };
                                FrameWriter.WriteMessage(output, scratch, FrameType.Welcome, Opcode.None, 0, welcome, WireOptions.Trusted);
                            }
                            else
                            {
                                WriteError(output, scratch, 0, ErrorCode.Unauthenticated);
                                close = true;
                            }
                        }
                        else if (h.Type == FrameType.Request && h.Opcode == Opcode.Ping)
                        {
                            long n = Interlocked.Increment(ref _requests);
                            if (_failEvery > 0 && n % _failEvery == 0)
                                WriteError(output, scratch, h.StreamId, ErrorCode.Internal);
                            else
                                FrameWriter.Write(output, FrameType.Response, Opcode.Ping, h.StreamId, ReadOnlySpan<byte>.Empty);
                        }
                        else if (h.Type == FrameType.Request)
                        {
                            WriteError(output, scratch, h.StreamId, ErrorCode.UnknownOpcode);
                        }
                    }
                }
                finally
                {
                    input.AdvanceTo(buffer.Start, buffer.End);
                }
                await output.FlushAsync(_stop.Token);
                if (close || result.IsCompleted)
                    return;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException)
        {
        }
    }

    private static void WriteError(PipeWriter output, ArrayBufferWriter<byte> scratch, uint streamId, ErrorCode code)
    {
        var body = new ErrorBody { Code = (int)code, Name = code.ToString(), Message = "fake" };
        FrameWriter.WriteMessage(output, scratch, FrameType.Error, Opcode.None, streamId, body, WireOptions.Trusted);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accept;
        Task[] sessions;
        lock (_sessions)
            sessions = [.. _sessions];
        await Task.WhenAll(sessions);
        _stop.Dispose();
    }
}
