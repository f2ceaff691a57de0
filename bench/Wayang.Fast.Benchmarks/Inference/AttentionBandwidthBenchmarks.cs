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
//   Contiguous:    the baseline, a reference written here with the kernel's exact math (one pass, online softmax,
//                  Vector256 dot and axpy, one (sequence, head) per work item on a pool threaded like CpuKernels) but
//                  addressing each sequence's K/V as one contiguous run instead of through a block table. The vLLM paper
//                  reports its paged kernel at 1.2-1.26x the contiguous one; the Ratio column is that number here.
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
    private BenchWorkerPool _pool = null!;
    private KvLayout _layout;
    private float[] _keyCache = null!;
    private float[] _valueCache = null!;
    private float[] _queries = null!;
    private float[] _output = null!;
    private int[] _shuffledTables = null!;
    private int[] _orderedTables = null!;
    private int[] _lengths = null!;
    private float[] _probeSums = null!;

    [Params(32, 8)]
    public int KvHeads { get; set; }

    internal static long KvBytes(int kvHeads) => 2L * Sequences * Tokens * kvHeads * HeadDim * sizeof(float);

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(1);
        var threads = Environment.ProcessorCount;
        _kernels = new CpuKernels(threads);
        _pool = new BenchWorkerPool(threads);
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

        // The reference must compute what the kernel computes: over the in-order table both address the same floats.
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
    public void Contiguous()
    {
        fixed (float* q = _queries)
        fixed (float* k = _keyCache)
        fixed (float* v = _valueCache)
        fixed (float* o = _output)
        fixed (int* lengths = _lengths)
        {
            var state = new ContiguousState
            {
                Q = q,
                K = k,
                V = v,
                O = o,
                Lengths = lengths,
                SequenceStride = Tokens,
                NumHeads = Heads,
                NumKvHeads = KvHeads,
                HeadDim = HeadDim,
                Scale = 1f / MathF.Sqrt(HeadDim),
            };
            _pool.Run(&ContiguousItem, &state, Sequences * Heads);
        }
    }

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

    // The kernel's AttentionItem with the block-table lookup replaced by contiguous addressing.
    private static void ContiguousItem(void* p, int item)
    {
        ref var s = ref Unsafe.AsRef<ContiguousState>(p);
        var headDim = s.HeadDim;
        var slotStride = (long)s.NumKvHeads * headDim;
        var seq = item / s.NumHeads;
        var head = item % s.NumHeads;
        var kvHead = head / (s.NumHeads / s.NumKvHeads);
        ref var q = ref Unsafe.AsRef<float>(s.Q + ((long)item * headDim));
        var output = new Span<float>(s.O + ((long)item * headDim), headDim);
        Span<float> acc = stackalloc float[headDim];
        acc.Clear();
        var length = s.Lengths[seq];
        var baseOffset = ((long)seq * s.SequenceStride * slotStride) + ((long)kvHead * headDim);
        var max = float.NegativeInfinity;
        var sum = 0f;
        for (var t = 0; t < length; t++)
        {
            var offset = baseOffset + (t * slotStride);
            var score = Dot(ref q, ref Unsafe.AsRef<float>(s.K + offset), headDim) * s.Scale;
            ref var value = ref Unsafe.AsRef<float>(s.V + offset);
            if (score > max)
            {
                var correction = MathF.Exp(max - score);
                sum = (sum * correction) + 1f;
                ScaleInPlace(acc, correction);
                Axpy(1f, ref value, ref MemoryMarshal.GetReference(acc), headDim);
                max = score;
            }
            else
            {
                var weight = MathF.Exp(score - max);
                sum += weight;
                Axpy(weight, ref value, ref MemoryMarshal.GetReference(acc), headDim);
            }
        }
        if (length == 0)
        {
            output.Clear();
            return;
        }
        var inv = 1f / sum;
        for (var i = 0; i < headDim; i++)
            output[i] = acc[i] * inv;
    }

    private static void ProbeItem(void* p, int item)
    {
        ref var s = ref Unsafe.AsRef<ProbeState>(p);
        var buffer = item < s.Chunks ? s.K : s.V;
        var chunk = item % s.Chunks;
        var start = (long)chunk * ProbeChunk;
        var n = (int)Math.Min(ProbeChunk, s.Length - start);
        ref var x = ref Unsafe.AsRef<float>(buffer + start);
        // Four independent accumulators: the loads, not the add latency, must be the limit.
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        var acc2 = Vector256<float>.Zero;
        var acc3 = Vector256<float>.Zero;
        var w = Vector256<float>.Count;
        var i = 0;
        for (; i <= n - (4 * w); i += 4 * w)
        {
            acc0 += Vector256.LoadUnsafe(ref x, (nuint)i);
            acc1 += Vector256.LoadUnsafe(ref x, (nuint)(i + w));
            acc2 += Vector256.LoadUnsafe(ref x, (nuint)(i + (2 * w)));
            acc3 += Vector256.LoadUnsafe(ref x, (nuint)(i + (3 * w)));
        }
        var sum = Vector256.Sum(acc0 + acc1 + acc2 + acc3);
        for (; i < n; i++)
            sum += Unsafe.Add(ref x, i);
        s.Sums[item] = sum;
    }

    // CpuKernels' Dot, Axpy and ScaleInPlace (internal/private there), verbatim.
    private static float Dot(ref float a, ref float b, int n)
    {
        var i = 0;
        var sum = 0f;
        if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            var acc0 = Vector256<float>.Zero;
            var acc1 = Vector256<float>.Zero;
            for (; i <= n - (2 * Vector256<float>.Count); i += 2 * Vector256<float>.Count)
            {
                acc0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref a, (nuint)i), Vector256.LoadUnsafe(ref b, (nuint)i), acc0);
                acc1 = Vector256.FusedMultiplyAdd(
                    Vector256.LoadUnsafe(ref a, (nuint)(i + Vector256<float>.Count)), Vector256.LoadUnsafe(ref b, (nuint)(i + Vector256<float>.Count)), acc1);
            }
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
                acc0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref a, (nuint)i), Vector256.LoadUnsafe(ref b, (nuint)i), acc0);
            sum = Vector256.Sum(acc0 + acc1);
        }
        for (; i < n; i++)
            sum += Unsafe.Add(ref a, i) * Unsafe.Add(ref b, i);
        return sum;
    }

    private static void Axpy(float alpha, ref float x, ref float y, int n)
    {
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var a = Vector256.Create(alpha);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
                Vector256.FusedMultiplyAdd(a, Vector256.LoadUnsafe(ref x, (nuint)i), Vector256.LoadUnsafe(ref y, (nuint)i)).StoreUnsafe(ref y, (nuint)i);
        }
        for (; i < n; i++)
            Unsafe.Add(ref y, i) += alpha * Unsafe.Add(ref x, i);
    }

    private static void ScaleInPlace(Span<float> x, float factor)
    {
        for (var i = 0; i < x.Length; i++)
            x[i] *= factor;
    }

    private static float[] Fill(Random rng, int length)
    {
        var a = new float[length];
        for (var i = 0; i < length; i++)
            a[i] = (float)((rng.NextDouble() * 2) - 1);
        return a;
    }

    private struct ContiguousState
    {
        public float* Q;
        public float* K;
        public float* V;
        public float* O;
        public int* Lengths;
        public int SequenceStride;
        public int NumHeads;
        public int NumKvHeads;
        public int HeadDim;
        public float Scale;
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
