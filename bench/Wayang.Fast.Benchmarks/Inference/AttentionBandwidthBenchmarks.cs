using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Wayang.Fast.Inference.Engine.Kernels;

namespace Wayang.Fast.Benchmarks.Inference;

// Issue 8: the paged attention decode kernel against the machine's memory bandwidth and against the same math on a
// contiguous K/V layout. 16 sequences x 512 tokens, 32 query heads of 128 dims (the KernelBenchmarks shape), with 32
// KV heads (multi-head, 268 MB of K+V) and 8 (grouped-query 4:1, 67 MB), far past the last-level cache either way.
//
//   PagedShuffled: CpuKernels.PagedAttentionDecode, block size 16, the blocks handed out in shuffled order as a
//                  long-running cache would (each 16-token block is one 8-32 KB island).
//   PagedInOrder:  the same kernel with blocks in order, so physically contiguous: the cost of the indirection alone.
//   Contiguous:    the baseline: CpuKernels.ContiguousAttentionDecode, the kernel's exact code (same work items, block
//                  by block online softmax) over K/V laid out [sequence, KV head, token, dim], one contiguous run per
//                  sequence and head, so the only difference is the block-table lookup and the blocks' scattering. The
//                  vLLM paper reports its paged kernel at 1.2-1.26x its contiguous one; the Ratio column is that here.
//   ReadProbe:     read-only memory bandwidth: a Vector256 sum over exactly the K and V buffers the attention reads,
//                  in 256 KB items on the same pool and thread count. Its GB/s is what the kernel is measured against:
//                  the goal is PagedShuffled at >= 50% of ReadProbe's GB/s.
//
// The "K/V GB/s" column is the K and V bytes (each token's K and V read once, counted once) over Mean. With 8 KV heads
// each KV head's data is read by 4 query heads, mostly from cache; the column still counts the bytes once, as the
// bandwidth the kernel needs from memory.
[MemoryDiagnoser]
[Config(typeof(BandwidthConfig))]
public unsafe class AttentionBandwidthBenchmarks
{
    internal const int Sequences = 16;
    internal const int Tokens = 512;
    internal const int Heads = 32;
    internal const int HeadDim = 128;
    private const int BlockSize = 16;
    private const int BlocksPerSequence = Tokens / BlockSize;
    // Floats per ReadProbe work item (256 KB).
    private const int ProbeChunk = 64 * 1024;

    private CpuKernels _kernels = null!;
    private KernelPool _pool = null!;
    private KvLayout _layout;
    private float[] _keyCache = null!;
    private float[] _valueCache = null!;
    private float[] _contiguousKeys = null!;
    private float[] _contiguousValues = null!;
    private float[] _queries = null!;
    private float[] _output = null!;
    private int[] _shuffledTables = null!;
    private int[] _orderedTables = null!;
    private int[] _lengths = null!;
    private float[] _probeSums = null!;
    private float[] _islandSums = null!;

    [Params(32, 8)]
    public int KvHeads { get; set; }

    internal static long KvBytes(int kvHeads) => 2L * Sequences * Tokens * kvHeads * HeadDim * sizeof(float);

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        var threads = Environment.ProcessorCount;
        _kernels = new CpuKernels(threads);
        // The engine's own pool (threads - 1 workers plus the caller), so the probe is threaded exactly like the kernel.
        _pool = new KernelPool(threads - 1);
        _layout = new KvLayout(BlockSize, KvHeads, HeadDim);
        var blocks = Sequences * BlocksPerSequence;
        _keyCache = Fill(rng, blocks * _layout.BlockStride);
        _valueCache = Fill(rng, blocks * _layout.BlockStride);
        _queries = Fill(rng, Sequences * Heads * HeadDim);
        _output = new float[_queries.Length];
        _orderedTables = [.. Enumerable.Range(0, blocks)];
        _shuffledTables = [.. _orderedTables];
        rng.Shuffle(_shuffledTables);
        _lengths = [.. Enumerable.Repeat(Tokens, Sequences)];
        _probeSums = new float[2 * ((_keyCache.Length + ProbeChunk - 1) / ProbeChunk)];
        _islandSums = new float[Sequences * KvHeads];

        // The contiguous copy of the same tokens: sequence s's token t of head h, gathered through the in-order table.
        _contiguousKeys = new float[_keyCache.Length];
        _contiguousValues = new float[_valueCache.Length];
        for (var seq = 0; seq < Sequences; seq++)
        {
            for (var t = 0; t < Tokens; t++)
            {
                var slot = (_orderedTables[(seq * BlocksPerSequence) + (t / BlockSize)] * BlockSize) + (t % BlockSize);
                for (var h = 0; h < KvHeads; h++)
                {
                    var to = ((((long)seq * KvHeads) + h) * Tokens + t) * HeadDim;
                    Array.Copy(_keyCache, _layout.Offset(slot, h), _contiguousKeys, to, HeadDim);
                    Array.Copy(_valueCache, _layout.Offset(slot, h), _contiguousValues, to, HeadDim);
                }
            }
        }

        // The baseline must compute what the paged kernel computes over the same tokens.
        PagedInOrder();
        var paged = _output.ToArray();
        Contiguous();
        var worst = 0f;
        for (var i = 0; i < paged.Length; i++)
            worst = Math.Max(worst, Math.Abs(paged[i] - _output[i]));
        if (worst > 1e-5f)
            throw new InvalidOperationException($"the contiguous reference differs from PagedAttentionDecode by {worst}");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _kernels.Dispose();
        _pool.Dispose();
    }

    [Benchmark]
    public void PagedShuffled() =>
        _kernels.PagedAttentionDecode(_queries, _keyCache, _valueCache, _output, _shuffledTables, BlocksPerSequence, _lengths, Heads, _layout);

    [Benchmark]
    public void PagedInOrder() =>
        _kernels.PagedAttentionDecode(_queries, _keyCache, _valueCache, _output, _orderedTables, BlocksPerSequence, _lengths, Heads, _layout);

    [Benchmark(Baseline = true)]
    public void Contiguous() =>
        _kernels.ContiguousAttentionDecode(_queries, _contiguousKeys, _contiguousValues, _output, _lengths, Tokens, Heads, _layout);

    [Benchmark]
    public float ReadProbe()
    {
        fixed (float* k = _keyCache)
        fixed (float* v = _valueCache)
        fixed (float* sums = _probeSums)
        {
            var chunks = (_keyCache.Length + ProbeChunk - 1) / ProbeChunk;
            var state = new ProbeState { K = k, V = v, Length = _keyCache.Length, Chunks = chunks, Sums = sums };
            _pool.Run(&ProbeItem, &state, 2 * chunks);
        }
        var total = 0f;
        foreach (var s in _probeSums)
            total += s;
        return total;
    }

    // The kernel's access pattern without its arithmetic: each (sequence, KV head) item sums its K run then its V run of
    // every block in the shuffled table's order, the same items on the same pool. What this reaches is the most the
    // paged layout's scattered 8-32 KB islands give on this machine, whatever the kernel does.
    [Benchmark]
    public float IslandProbe()
    {
        fixed (float* k = _keyCache)
        fixed (float* v = _valueCache)
        fixed (int* tables = _shuffledTables)
        fixed (float* sums = _islandSums)
        {
            var state = new IslandState { K = k, V = v, Tables = tables, Sums = sums, Layout = _layout };
            _pool.Run(&IslandItem, &state, Sequences * KvHeads);
        }
        var total = 0f;
        foreach (var s in _islandSums)
            total += s;
        return total;
    }

    private static void IslandItem(void* p, int item)
    {
        ref var s = ref Unsafe.AsRef<IslandState>(p);
        var layout = s.Layout;
        var seq = item / layout.NumKvHeads;
        var kvHead = item % layout.NumKvHeads;
        var sum = 0f;
        for (var b = 0; b < BlocksPerSequence; b++)
        {
            var offset = ((long)s.Tables[(seq * BlocksPerSequence) + b] * layout.BlockStride) + ((long)kvHead * layout.HeadStride);
            sum += Sum(s.K + offset, layout.HeadStride) + Sum(s.V + offset, layout.HeadStride);
        }
        s.Sums[item] = sum;
    }

    // Four independent accumulators: the loads, not the add latency, must be the limit.
    private static float Sum(float* x, int n)
    {
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        var acc2 = Vector256<float>.Zero;
        var acc3 = Vector256<float>.Zero;
        var w = Vector256<float>.Count;
        var i = 0;
        for (; i <= n - (4 * w); i += 4 * w)
        {
            acc0 += Vector256.Load(x + i);
            acc1 += Vector256.Load(x + i + w);
            acc2 += Vector256.Load(x + i + (2 * w));
            acc3 += Vector256.Load(x + i + (3 * w));
        }
        var sum = Vector256.Sum(acc0 + acc1 + acc2 + acc3);
        for (; i < n; i++)
            sum += x[i];
        return sum;
    }

    private static void ProbeItem(void* p, int item)
    {
        ref var s = ref Unsafe.AsRef<ProbeState>(p);
        var buffer = item < s.Chunks ? s.K : s.V;
        var start = (long)(item % s.Chunks) * ProbeChunk;
        s.Sums[item] = Sum(buffer + start, (int)Math.Min(ProbeChunk, s.Length - start));
    }

    private static float[] Fill(Random rng, int length)
    {
        var a = new float[length];
        for (var i = 0; i < length; i++)
            a[i] = (float)((rng.NextDouble() * 2) - 1);
        return a;
    }

    private struct IslandState
    {
        public float* K;
        public float* V;
        public int* Tables;
        public float* Sums;
        public KvLayout Layout;
    }

    private struct ProbeState
    {
        public float* K;
        public float* V;
        public long Length;
        public int Chunks;
        public float* Sums;
    }

    private sealed class BandwidthConfig : ShortJobConfig
    {
        public BandwidthConfig() => AddColumn(new KvBandwidthColumn());
    }
}

// K and V bytes of the case's shape over its Mean, in GB/s (10^9 bytes).
internal sealed class KvBandwidthColumn : IColumn
{
    public string Id => nameof(KvBandwidthColumn);

    public string ColumnName => "K/V GB/s";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "K and V bytes of the shape (each counted once) over Mean, 10^9 bytes/s";

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        var kvHeads = benchmarkCase.Parameters["KvHeads"];
        if (report?.ResultStatistics is not { } stats || kvHeads is not int heads)
            return "-";
        return (AttentionBandwidthBenchmarks.KvBytes(heads) / stats.Mean).ToString("F2", CultureInfo.InvariantCulture);
    }

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
}
