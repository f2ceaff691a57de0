using System.Buffers;
using BenchmarkDotNet.Attributes;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Benchmarks.Protocol;

// Header parse and slice: the first thing the read loop does with every frame. Single-segment buffers, the common
// case for a pipe read; Ping frames are header-only, so this is the header path without body noise.
[MemoryDiagnoser]
public class FrameReadBenchmarks
{
    private byte[] _one = [];
    private byte[] _sixteen = [];

    [GlobalSetup]
    public void Setup()
    {
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.Write(w, FrameType.Request, Opcode.Ping, 1, ReadOnlySpan<byte>.Empty);
        _one = w.WrittenSpan.ToArray();
        w.ResetWrittenCount();
        for (uint i = 1; i <= 16; i++)
            FrameWriter.Write(w, FrameType.Request, Opcode.Ping, i, ReadOnlySpan<byte>.Empty);
        _sixteen = w.WrittenSpan.ToArray();
    }

    [Benchmark(Baseline = true)]
    public uint ReadOnePing()
    {
        var buffer = new ReadOnlySequence<byte>(_one);
        FrameReader.TryReadFrame(ref buffer, WireOptions.DefaultMaxFrameBytes, out var frame, out _);
        return frame.Header.StreamId;
    }

    // 16 pipelined frames in one read: the loop a session runs before one AdvanceTo.
    [Benchmark(OperationsPerInvoke = 16)]
    public uint ReadSixteenPipelinedPings()
    {
        var buffer = new ReadOnlySequence<byte>(_sixteen);
        uint sum = 0;
        while (FrameReader.TryReadFrame(ref buffer, WireOptions.DefaultMaxFrameBytes, out var frame, out _) == FrameReadStatus.Complete)
            sum += frame.Header.StreamId;
        return sum;
    }
}
