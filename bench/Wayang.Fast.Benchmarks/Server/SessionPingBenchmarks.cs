using System.Buffers;
using System.IO.Pipelines;
using BenchmarkDotNet.Attributes;
using MessagePack;
using Microsoft.Extensions.Logging.Abstractions;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;
using Wayang.Fast.Server;
using Wayang.Fast.Server.Sessions;
using Wayang.Fast.Testing;

namespace Wayang.Fast.Benchmarks.Server;

// One authenticated session over in-memory pipes, no sockets: parse -> dispatch -> reply -> flush for Ping.
// Inline pipe schedulers make each round trip synchronous on the benchmark thread, so what is measured is
// the session's own work, and MemoryDiagnoser sees every allocation it makes (expected: 0 B per op).
[MemoryDiagnoser]
public class SessionPingBenchmarks
{
    private Pipe _toServer = null!;
    private Pipe _toClient = null!;
    private ServerCore _core = null!;
    private Task _session = null!;
    private byte[] _onePing = null!;
    private byte[] _sixteenPings = null!;

    [GlobalSetup]
    public void Setup()
    {
        var tenants = new TenantDirectory(new InMemoryStateStore());
        var key = tenants.EnsureBootstrapAdminAsync().AsTask().GetAwaiter().GetResult()!.Secret;
        var options = new WayangServerOptions { IdleTimeout = TimeSpan.FromHours(1), HandshakeTimeout = TimeSpan.FromHours(1) };
        _core = new ServerCore(options, tenants, NullLogger.Instance);

        var pipeOptions = new PipeOptions(readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, useSynchronizationContext: false);
        _toServer = new Pipe(pipeOptions);
        _toClient = new Pipe(pipeOptions);
        _session = _core.CreateSession(new DuplexPipe(_toServer.Reader, _toClient.Writer), "bench").RunAsync();

        var hello = new ArrayBufferWriter<byte>();
        FrameWriter.Write(hello, FrameType.Hello, Opcode.None, 0,
            MessagePackSerializer.Serialize(new HelloRequest { ProtocolVersion = WireOptions.ProtocolVersion, ClientName = "bench", ApiKey = key }, WireOptions.Trusted));
        Send(hello.WrittenSpan);
        var welcome = Receive(FrameHeader.Size + 1);
        if (welcome < FrameHeader.Size)
            throw new InvalidOperationException("No WELCOME from the session.");

        _onePing = Pings(1);
        _sixteenPings = Pings(16);
        // Warm the paths (first-use allocations: async state machine box, pipe segments).
        for (int i = 0; i < 1000; i++)
            SixteenPipelinedPings();
    }

    private static byte[] Pings(int count)
    {
        var buffer = new ArrayBufferWriter<byte>();
        for (int i = 0; i < count; i++)
            FrameWriter.Write(buffer, FrameType.Request, Opcode.Ping, (uint)(i + 1), default);
        return buffer.WrittenSpan.ToArray();
    }

    [Benchmark(Baseline = true)]
    public int OnePing()
    {
        Send(_onePing);
        return Receive(FrameHeader.Size);
    }

    // 16 pipelined Pings in one write: one read batch, 16 replies, one flush.
    [Benchmark]
    public int SixteenPipelinedPings()
    {
        Send(_sixteenPings);
        return Receive(16 * FrameHeader.Size);
    }

    private void Send(ReadOnlySpan<byte> bytes)
    {
        _toServer.Writer.Write(bytes);
        // Inline scheduling: the session's read loop runs to completion inside this flush.
        var flush = _toServer.Writer.FlushAsync();
        if (!flush.IsCompletedSuccessfully)
            flush.AsTask().GetAwaiter().GetResult();
    }

    private int Receive(int expected)
    {
        var reader = _toClient.Reader;
        if (!reader.TryRead(out var result))
            throw new InvalidOperationException("The session did not reply synchronously.");
        int length = (int)result.Buffer.Length;
        reader.AdvanceTo(result.Buffer.End);
        if (length < expected)
            throw new InvalidOperationException($"Expected {expected} reply bytes, got {length}.");
        return length;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _toServer.Writer.Complete();
        _session.GetAwaiter().GetResult();
        _core.Dispose();
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }
}
