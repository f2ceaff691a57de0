using System.Buffers;
using BenchmarkDotNet.Attributes;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Benchmarks.Protocol;

// Writing replies into a reused buffer, as the per-connection writer does.
[MemoryDiagnoser]
public class FrameWriteBenchmarks
{
    private readonly ArrayBufferWriter<byte> _output = new(64 * 1024);
    private readonly ArrayBufferWriter<byte> _scratch = new(4 * 1024);
    private readonly byte[] _body64 = new byte[64];
    private readonly KeyCreateRequest _keyCreate = new() { TenantId = "acme", Name = "ci-bot", Roles = ["developer"] };

    [Benchmark(Baseline = true)]
    public int WritePingResponse()
    {
        _output.ResetWrittenCount();
        FrameWriter.Write(_output, FrameType.Response, Opcode.Ping, 1, ReadOnlySpan<byte>.Empty);
        return _output.WrittenCount;
    }

    [Benchmark]
    public int Write64ByteBody()
    {
        _output.ResetWrittenCount();
        FrameWriter.Write(_output, FrameType.Stream, Opcode.Tick, 5, _body64);
        return _output.WrittenCount;
    }

    // 16 replies into one buffer: what one flush carries under pipelining.
    [Benchmark(OperationsPerInvoke = 16)]
    public int WriteSixteenPingResponses()
    {
        _output.ResetWrittenCount();
        for (uint i = 1; i <= 16; i++)
            FrameWriter.Write(_output, FrameType.Response, Opcode.Ping, i, ReadOnlySpan<byte>.Empty);
        return _output.WrittenCount;
    }

    // Serialize into the scratch buffer, then frame: the path for every reply with a body.
    [Benchmark]
    public int WriteMessageKeyCreate()
    {
        _output.ResetWrittenCount();
        FrameWriter.WriteMessage(_output, _scratch, FrameType.Request, Opcode.KeyCreate, 7, _keyCreate, WireOptions.Trusted);
        return _output.WrittenCount;
    }
}
