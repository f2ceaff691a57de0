using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using MessagePack;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Server.Tests;

public sealed record ReceivedFrame(FrameType Type, Opcode Opcode, uint StreamId, byte[] Body)
{
    public T Decode<T>() => MessagePackSerializer.Deserialize<T>(Body, WireOptions.Untrusted);

    public ErrorCode ErrorCode => Type == FrameType.Error ? (ErrorCode)Decode<ErrorBody>().Code : ErrorCode.None;

    public override string ToString() => Type == FrameType.Error
        ? $"ERROR {ErrorRegistry.NameOf(ErrorCode)} stream={StreamId} op={Opcode}"
        : $"{Type} stream={StreamId} op={Opcode} len={Body.Length}";
}

// A raw-bytes protocol client: frames built with FrameWriter, replies sliced with FrameReader.
public sealed class RawClient : IAsyncDisposable
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _reader;

    private RawClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = PipeReader.Create(_stream);
    }

    public static async Task<RawClient> ConnectAsync(IPEndPoint endPoint)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endPoint);
        return new RawClient(socket);
    }

    public static byte[] Frame(FrameType type, Opcode opcode, uint streamId, ReadOnlySpan<byte> body = default)
    {
        var buffer = new ArrayBufferWriter<byte>();
        FrameWriter.Write(buffer, type, opcode, streamId, body);
        return buffer.WrittenSpan.ToArray();
    }

    public static byte[] MessageFrame<T>(FrameType type, Opcode opcode, uint streamId, T message) =>
        Frame(type, opcode, streamId, MessagePackSerializer.Serialize(message, WireOptions.Trusted));

    public static byte[] Hello(string key, uint credit = 0) =>
        MessageFrame(FrameType.Hello, Opcode.None, 0, new HelloRequest { ProtocolVersion = WireOptions.ProtocolVersion, ClientName = "tests", ApiKey = key, InitialStreamCredit = credit });

    public async Task SendAsync(byte[] bytes)
    {
        try
        {
            await _stream.WriteAsync(bytes);
        }
        catch (IOException)
        {
            // The server closed first; the test asserts on what it read.
        }
    }

    public Task SendAsync(FrameType type, Opcode opcode, uint streamId, ReadOnlySpan<byte> body = default) => SendAsync(Frame(type, opcode, streamId, body));

    public Task SendMessageAsync<T>(FrameType type, Opcode opcode, uint streamId, T message) => SendAsync(MessageFrame(type, opcode, streamId, message));

    public Task RequestAsync<T>(Opcode opcode, uint streamId, T message) => SendMessageAsync(FrameType.Request, opcode, streamId, message);

    public void ShutdownSend() => _socket.Shutdown(SocketShutdown.Send);

    public async Task<WelcomeResponse> HandshakeAsync(string key, uint credit = 0)
    {
        await SendAsync(Hello(key, credit));
        var frame = await ReadFrameAsync() ?? throw new InvalidOperationException("closed during handshake");
        Assert.True(frame.Type == FrameType.Welcome, $"expected WELCOME, got {frame}");
        return frame.Decode<WelcomeResponse>();
    }

    // Null when the server closed the connection. Throws TimeoutException past the deadline (a failure guard).
    public async Task<ReceivedFrame?> ReadFrameAsync(TimeSpan? deadline = null)
    {
        using var cts = new CancellationTokenSource(deadline ?? Deadline);
        while (true)
        {
            ReadResult result;
            try
            {
                result = await _reader.ReadAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException("No frame from the server before the deadline.");
            }
            catch (IOException)
            {
                return null;
            }
            var buffer = result.Buffer;
            var status = FrameReader.TryReadFrame(ref buffer, int.MaxValue, out var frame, out var error);
            if (status == FrameReadStatus.Complete)
            {
                var received = new ReceivedFrame(frame.Header.Type, frame.Header.Opcode, frame.Header.StreamId, frame.Body.ToArray());
                _reader.AdvanceTo(buffer.Start);
                return received;
            }
            if (status == FrameReadStatus.Error)
                throw new InvalidOperationException($"Server sent an invalid frame header: {error}");
            if (result.IsCompleted)
            {
                _reader.AdvanceTo(buffer.Start, buffer.End);
                return null;
            }
            _reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    public async Task<ReceivedFrame> ExpectFrameAsync()
    {
        var frame = await ReadFrameAsync();
        Assert.True(frame is not null, "The server closed the connection; a frame was expected.");
        return frame;
    }

    // Reads everything until the server closes: the frames that came first.
    public async Task<List<ReceivedFrame>> ReadUntilClosedAsync()
    {
        var frames = new List<ReceivedFrame>();
        while (await ReadFrameAsync() is { } frame)
            frames.Add(frame);
        return frames;
    }

    public async Task<ReceivedFrame> ExpectErrorAsync(ErrorCode code, uint streamId)
    {
        var frame = await ExpectFrameAsync();
        Assert.True(frame.Type == FrameType.Error && frame.ErrorCode == code && frame.StreamId == streamId,
            $"expected ERROR {ErrorRegistry.NameOf(code)} on stream {streamId}, got {frame}");
        return frame;
    }

    // The fatal pattern: one ERROR on stream 0, then the connection closes.
    public async Task ExpectFatalAsync(ErrorCode code)
    {
        var frames = await ReadUntilClosedAsync();
        Assert.True(frames.Count == 1 && frames[0].Type == FrameType.Error && frames[0].StreamId == 0 && frames[0].ErrorCode == code,
            $"expected exactly ERROR {ErrorRegistry.NameOf(code)} then close, got [{string.Join(", ", frames)}]");
    }

    public async Task PingAsync(uint streamId)
    {
        await SendAsync(FrameType.Request, Opcode.Ping, streamId);
        var reply = await ExpectFrameAsync();
        Assert.True(reply.Type == FrameType.Response && reply.StreamId == streamId && reply.Opcode == Opcode.Ping, $"expected Ping RESPONSE on {streamId}, got {reply}");
    }

    public async ValueTask DisposeAsync()
    {
        await _reader.CompleteAsync();
        await _stream.DisposeAsync();
    }
}

// One server per test, in its own temp data directory, on 127.0.0.1 port 0.
public sealed class TestServer : IAsyncDisposable
{
    private readonly bool _ownsDirectory;

    private TestServer(WayangServer server, string dataDirectory, bool ownsDirectory, string adminKey)
    {
        Server = server;
        DataDirectory = dataDirectory;
        _ownsDirectory = ownsDirectory;
        AdminKey = adminKey;
    }

    public WayangServer Server { get; }
    public string DataDirectory { get; }
    public string AdminKey { get; }
    public IPEndPoint EndPoint => Server.ProtocolEndPoint;

    public static string NewDataDirectory() => Path.Combine(Path.GetTempPath(), "wayang-server-tests", Guid.NewGuid().ToString("N"));

    public static WayangServerOptions Options(string dataDirectory, Action<WayangServerOptions>? configure = null)
    {
        var options = new WayangServerOptions
        {
            DataDirectory = dataDirectory,
            Port = 0,
            HttpPort = 0,
            Durability = DurabilityMode.Fsync,
            PrintBootstrapKey = false,
            ShutdownDrainTimeout = TimeSpan.FromSeconds(10),
            ConfigureStorage = SmallStorage,
        };
        configure?.Invoke(options);
        return options;
    }

    // Tests run several servers at once on a small machine: keep FASTER's memory small.
    public static void SmallStorage(StorageOptions s)
    {
        s.JournalPageBits = 18;
        s.JournalMemoryBits = 20;
        s.StorePageBits = 18;
        s.StoreMemoryBits = 20;
        s.IndexBuckets = 1 << 10;
        s.MaxValueBytes = 64 * 1024;
    }

    public static async Task<TestServer> StartAsync(Action<WayangServerOptions>? configure = null, string? dataDirectory = null, string? adminKey = null)
    {
        bool owns = dataDirectory is null;
        dataDirectory ??= NewDataDirectory();
        var server = await WayangServer.StartAsync(Options(dataDirectory, configure));
        return new TestServer(server, dataDirectory, owns, server.BootstrapAdminKey ?? adminKey ?? throw new InvalidOperationException("no admin key"));
    }

    public async Task<RawClient> ConnectAsync(string? key = null, uint credit = 0)
    {
        var client = await RawClient.ConnectAsync(EndPoint);
        await client.HandshakeAsync(key ?? AdminKey, credit);
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        Assert.Equal(0, Volatile.Read(ref Server.Core.Metrics.SessionFaults));
        if (_ownsDirectory)
        {
            try
            {
                Directory.Delete(DataDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}

public static class Wait
{
    // Polls a condition until it holds; the deadline is only a failure guard.
    public static async Task UntilAsync(Func<bool> condition, string what, TimeSpan? deadline = null)
    {
        var until = DateTime.UtcNow + (deadline ?? RawClient.Deadline);
        while (!condition())
        {
            if (DateTime.UtcNow > until)
                throw new TimeoutException("Timed out waiting until " + what);
            await Task.Delay(10);
        }
    }
}
