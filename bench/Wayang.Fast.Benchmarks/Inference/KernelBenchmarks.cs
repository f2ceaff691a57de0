using BenchmarkDotNet.Attributes;
using Wayang.Fast.Inference.Engine.Kernels;

namespace Wayang.Fast.Benchmarks.Inference;

// The CPU kernels on decode-sized work. Both are memory-bound, so MemoryCopy (a plain copy of the K and V bytes the
// attention reads) is the yardstick: attention near it is limited by bandwidth, not by the kernel.
[MemoryDiagnoser]
public class KernelBenchmarks
{
    private const int Dim = 4096;
    private const int Sequences = 16;
    private const int Tokens = 512;
    private const int Heads = 32;
    private const int HeadDim = 128;
    private const int BlockSize = 16;
    private const int BlocksPerSequence = Tokens / BlockSize;
    private static readonly KvLayout Layout = new(BlockSize, Heads, HeadDim);

    private CpuKernels _kernels = null!;
    private float[] _weights = null!;
    private float[] _x = null!;
    private float[] _y = null!;
    private float[] _keyCache = null!;
    private float[] _valueCache = null!;
    private float[] _copy = null!;
    private float[] _queries = null!;
    private float[] _output = null!;
    private int[] _blockTables = null!;
    private int[] _lengths = null!;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        _kernels = new CpuKernels();
        _weights = Fill(rng, Dim * Dim);
        _x = Fill(rng, Dim);
        _y = new float[Dim];
        var blocks = Sequences * BlocksPerSequence;
        _keyCache = Fill(rng, blocks * Layout.BlockStride);
        _valueCache = Fill(rng, blocks * Layout.BlockStride);
        _copy = new float[_keyCache.Length];
        _queries = Fill(rng, Sequences * Heads * HeadDim);
        _output = new float[_queries.Length];
        // Blocks handed out in shuffled order, as a long-running cache would.
        _blockTables = [.. Enumerable.Range(0, blocks)];
        rng.Shuffle(_blockTables);
        _lengths = [.. Enumerable.Repeat(Tokens, Sequences)];
    }

    [GlobalCleanup]
    public void Cleanup() => _kernels.Dispose();

    [Benchmark]
    public void MatVec4096() => _kernels.MatVec(_weights, _x, _y, Dim, Dim);

    [Benchmark]
    public void PagedAttentionDecode() =>
        _kernels.PagedAttentionDecode(_queries, _keyCache, _valueCache, _output, _blockTables, BlocksPerSequence, _lengths, Heads, Layout);

    [Benchmark]
    public void MemoryCopy()
    {
        _keyCache.AsSpan().CopyTo(_copy);
        _valueCache.AsSpan().CopyTo(_copy);
    }

    private static float[] Fill(Random rng, int length)
    {
        var a = new float[length];
        for (var i = 0; i < length; i++)
            a[i] = (float)((rng.NextDouble() * 2) - 1);
        return a;
    }
}
