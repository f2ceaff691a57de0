using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using MessagePack;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.LoadGen.Engine;

// One raw TCP connection: a Socket, a PipeReader over it for replies, and a PipeWriter for the closed model's sends.
// No SDK in between, so the generator costs as little CPU as possible on the cores it shares with the server.
internal sealed class LoadConnection : IAsyncDisposable
{
    private readonly NetworkStream _stream;
    private uint _setupStreamId;

    private LoadConnection(Socket socket)
    {
        Socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        // Large enough that a burst of replies for a deep pipeline lands in one read.
        Input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024, leaveOpen: true));
        Output = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: 16 * 1024, leaveOpen: true));
    }

    public Socket Socket { get; }

    public PipeReader Input { get; }

    public PipeWriter Output { get; }

    public WelcomeResponse Welcome { get; private set; } = new();

    public int MaxBody => Welcome.MaxFrameBytes > 0 ? Welcome.MaxFrameBytes : WireOptions.DefaultMaxFrameBytes;

    public static async Task<LoadConnection> ConnectAsync(IPEndPoint endPoint, string apiKey, string clientName, CancellationToken cancellationToken)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endPoint, cancellationToken);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var connection = new LoadConnection(socket);
        try
        {
            await connection.HandshakeAsync(apiKey, clientName, cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private async Task HandshakeAsync(string apiKey, string clientName, CancellationToken cancellationToken)
    {
        var hello = new HelloRequest { ProtocolVersion = WireOptions.ProtocolVersion, ClientName = clientName, ApiKey = apiKey };
        FrameWriter.WriteMessage(Output, new ArrayBufferWriter<byte>(256), FrameType.Hello, Opcode.None, 0, hello, WireOptions.Trusted);
        await Output.FlushAsync(cancellationToken);

        var (type, body) = await ReadOneFrameAsync(0, cancellationToken);
        switch (type)
        {
            case FrameType.Welcome:
                Welcome = MessagePackSerializer.Deserialize<WelcomeResponse>(body, WireOptions.Untrusted);
                return;
            case FrameType.Error:
                throw new InvalidOperationException("handshake refused: " + DescribeError(body));
            default:
                throw new InvalidOperationException($"handshake: expected WELCOME, got {type}");
        }
    }

    // Setup-path unary call (not the hot path: it allocates).
    public async Task<(FrameType Type, byte[] Body)> CallAsync(Opcode opcode, byte[] body, CancellationToken cancellationToken)
    {
        uint streamId = ++_setupStreamId;
        FrameWriter.Write(Output, FrameType.Request, opcode, streamId, body);
        await Output.FlushAsync(cancellationToken);
        return await ReadOneFrameAsync(streamId, cancellationToken);
    }

    // Reads frames until one for streamId arrives; copies its body out of the pipe.
    private async Task<(FrameType Type, byte[] Body)> ReadOneFrameAsync(uint streamId, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await Input.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            try
            {
                while (true)
                {
                    var status = FrameReader.TryReadFrame(ref buffer, MaxBody, out var frame, out var error);
                    if (status == FrameReadStatus.Error)
                        throw new InvalidOperationException($"bad frame from server: {error}");
                    if (status == FrameReadStatus.Incomplete)
                        break;
                    if (frame.Header.StreamId == streamId || frame.Header.Type == FrameType.Error)
                        return (frame.Header.Type, frame.Body.ToArray());
                }
            }
            finally
            {
                Input.AdvanceTo(buffer.Start, buffer.End);
            }
            if (result.IsCompleted)
                throw new InvalidOperationException("server closed the connection");
        }
    }

    public static string DescribeError(byte[] body)
    {
        try
        {
            var e = MessagePackSerializer.Deserialize<ErrorBody>(body, WireOptions.Untrusted);
            return $"{e.Name} ({e.Code}): {e.Message}";
        }
        catch (MessagePackSerializationException)
        {
            return "undecodable ERROR body";
        }
    }

    // Reads only the code (field 0) of an ERROR body, without allocating.
    public static int ReadErrorCode(in ReadOnlySequence<byte> body)
    {
        try
        {
            var reader = new MessagePackReader(body);
            if (reader.ReadArrayHeader() < 1)
                return -1;
            return reader.ReadInt32();
        }
        catch (MessagePackSerializationException)
        {
            return -1;
        }
        catch (EndOfStreamException)
        {
            return -1;
        }
    }

    public static string ErrorName(int code)
        => Enum.IsDefined(typeof(ErrorCode), code) ? ((ErrorCode)code).ToString() : code.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        try
        {
            Socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        await Input.CompleteAsync();
        await Output.CompleteAsync();
        await _stream.DisposeAsync();
    }
}
