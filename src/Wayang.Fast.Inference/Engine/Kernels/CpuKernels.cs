using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Wayang.Fast.Inference.Engine.KvCache;

namespace Wayang.Fast.Inference.Engine.Kernels;

// The embedded default backend: Vector256 inner loops, the heavy kernels (matrix products, attention) spread over a
// KernelPool. The span overloads are the real entry points; the IKernels<Memory<float>> ones forward to them.
// Element-wise kernels stay on the calling thread: they touch a few KB per token and a hand-off would cost more.
public sealed unsafe class CpuKernels : IKernels<Memory<float>>, IDisposable
{
    // Below this many multiply-adds a job runs inline; waking workers costs a few microseconds.
    private const long DefaultParallelThreshold = 1 << 15;
    // Rows per MatVec/MatMul work item: enough to amortize the claim, few enough to balance.
    private const int RowsPerItem = 16;
    // The attention accumulators and one block's scores live on the stack.
    private const int MaxHeadDim = 1024;
    private const int MaxBlockSize = 256;
    // Query heads of one KV head attended together per work item: each K/V block is read once for all of them.
    private const int MaxHeadsPerItem = 8;

    private readonly KernelPool _pool;
    private readonly long _parallelThreshold;

    public CpuKernels()
        : this(Environment.ProcessorCount, DefaultParallelThreshold)
    {
    }

    public CpuKernels(int threads)
        : this(threads, DefaultParallelThreshold)
    {
    }

    // Tests pass parallelThreshold 0 so the small, odd-sized inputs still go through the pool.
    internal CpuKernels(int threads, long parallelThreshold)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(threads);
        _pool = new KernelPool(threads - 1);
        _parallelThreshold = parallelThreshold;
    }

    public int Parallelism => _pool.Parallelism;

    public void Dispose() => _pool.Dispose();

    public void MatVec(ReadOnlySpan<float> weights, ReadOnlySpan<float> x, Span<float> y, int rows, int cols) =>
        MatMul(weights, x, y, 1, rows, cols);

    public void MatMul(ReadOnlySpan<float> weights, ReadOnlySpan<float> x, Span<float> y, int batch, int rows, int cols)
    {
        KernelArguments.CheckMatMul(weights.Length, x.Length, y.Length, batch, rows, cols);
        if (batch == 0 || rows == 0)
            return;
        fixed (float* w = weights)
        fixed (float* px = x)
        fixed (float* py = y)
        {
            var state = new MatMulState { W = w, X = px, Y = py, Batch = batch, Rows = rows, Cols = cols };
            var items = (rows + RowsPerItem - 1) / RowsPerItem;
            if ((long)batch * rows * cols < _parallelThreshold)
            {
                for (var i = 0; i < items; i++)
                    MatMulItem(&state, i);
            }
            else
            {
                _pool.Run(&MatMulItem, &state, items);
            }
        }
    }

    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, int batch, int dim, float eps)
    {
        KernelArguments.RequireLength(x.Length, (long)batch * dim, nameof(x));
        KernelArguments.RequireLength(weight.Length, dim, nameof(weight));
        KernelArguments.RequireLength(y.Length, (long)batch * dim, nameof(y));
        for (var b = 0; b < batch; b++)
        {
            var row = x.Slice(b * dim, dim);
            var sum = Dot(ref MemoryMarshal.GetReference(row), ref MemoryMarshal.GetReference(row), dim);
            var inv = 1f / MathF.Sqrt((sum / dim) + eps);
            var dst = y.Slice(b * dim, dim);
            var i = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                var scale = Vector256.Create(inv);
                for (; i <= dim - Vector256<float>.Count; i += Vector256<float>.Count)
                {
                    var v = Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(row), (nuint)i) * scale;
                    (v * Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(weight), (nuint)i)).StoreUnsafe(ref MemoryMarshal.GetReference(dst), (nuint)i);
                }
            }
            for (; i < dim; i++)
                dst[i] = row[i] * inv * weight[i];
        }
    }

    public static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y, int length)
    {
        KernelArguments.RequireLength(gate.Length, length, nameof(gate));
        KernelArguments.RequireLength(up.Length, length, nameof(up));
        KernelArguments.RequireLength(y.Length, length, nameof(y));
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            // The feed-forward's exponentials are the largest element-wise cost of a step (batch x feed-forward width
            // per layer); Vector256.Exp keeps them off the scalar path.
            ref var g0 = ref MemoryMarshal.GetReference(gate);
            ref var u0 = ref MemoryMarshal.GetReference(up);
            ref var y0 = ref MemoryMarshal.GetReference(y);
            for (; i <= length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var g = Vector256.LoadUnsafe(ref g0, (nuint)i);
                (g / (Vector256<float>.One + Vector256.Exp(-g)) * Vector256.LoadUnsafe(ref u0, (nuint)i)).StoreUnsafe(ref y0, (nuint)i);
            }
        }
        for (; i < length; i++)
        {
            var g = gate[i];
            y[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }

    public static void Rope(Span<float> x, ReadOnlySpan<int> positions, int numHeads, int headDim, int ropeDim, float freqBase)
    {
        KernelArguments.CheckRope(x.Length, positions.Length, numHeads, headDim, ropeDim);
        for (var t = 0; t < positions.Length; t++)
        {
            var pos = (double)positions[t];
            for (var i = 0; i < ropeDim / 2; i++)
            {
                // Angles are computed in double: positions reach the tens of thousands, where f32 angles drift.
                var theta = pos * Math.Pow(freqBase, -2.0 * i / ropeDim);
                var (sin, cos) = Math.SinCos(theta);
                var s = (float)sin;
                var c = (float)cos;
                for (var h = 0; h < numHeads; h++)
                {
                    var at = (((t * numHeads) + h) * headDim) + (2 * i);
                    var x0 = x[at];
                    var x1 = x[at + 1];
                    x[at] = (x0 * c) - (x1 * s);
                    x[at + 1] = (x0 * s) + (x1 * c);
                }
            }
        }
    }

    public static void Softmax(Span<float> x, int batch, int length)
    {
        KernelArguments.RequireLength(x.Length, (long)batch * length, nameof(x));
        for (var b = 0; b < batch; b++)
        {
            var row = x.Slice(b * length, length);
            var max = float.NegativeInfinity;
            foreach (var v in row)
                max = MathF.Max(max, v);
            var sum = 0f;
            for (var i = 0; i < row.Length; i++)
            {
                var e = MathF.Exp(row[i] - max);
                row[i] = e;
                sum += e;
            }
            var inv = 1f / sum;
            for (var i = 0; i < row.Length; i++)
                row[i] *= inv;
        }
    }

    public static void Add(Span<float> x, ReadOnlySpan<float> y, int length)
    {
        KernelArguments.RequireLength(x.Length, length, nameof(x));
        KernelArguments.RequireLength(y.Length, length, nameof(y));
        Axpy(1f, ref MemoryMarshal.GetReference(y), ref MemoryMarshal.GetReference(x), length);
    }

    public static void AppendKv(
        Span<float> keyCache, Span<float> valueCache, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, ReadOnlySpan<int> slotMapping, KvLayout layout)
    {
        KernelArguments.CheckAppendKv(keyCache.Length, valueCache.Length, keys.Length, values.Length, slotMapping, layout);
        var stride = layout.SlotStride;
        var headDim = layout.HeadDim;
        for (var t = 0; t < slotMapping.Length; t++)
        {
            var slot = slotMapping[t];
            // vLLM marks padding tokens with slot -1; they have nothing to store.
            if (slot < 0)
                continue;
            for (var h = 0; h < layout.NumKvHeads; h++)
            {
                var at = (int)layout.Offset(slot, h);
                keys.Slice((t * stride) + (h * headDim), headDim).CopyTo(keyCache.Slice(at, headDim));
                values.Slice((t * stride) + (h * headDim), headDim).CopyTo(valueCache.Slice(at, headDim));
            }
        }
    }

    public static void CopyBlocks(Span<float> keyCache, Span<float> valueCache, ReadOnlySpan<BlockCopy> copies, KvLayout layout)
    {
        var stride = layout.BlockStride;
        foreach (var copy in copies)
        {
            keyCache.Slice(copy.Source * stride, stride).CopyTo(keyCache.Slice(copy.Destination * stride, stride));
            valueCache.Slice(copy.Source * stride, stride).CopyTo(valueCache.Slice(copy.Destination * stride, stride));
        }
    }

    public void PagedAttentionDecode(
        ReadOnlySpan<float> queries,
        ReadOnlySpan<float> keyCache,
        ReadOnlySpan<float> valueCache,
        Span<float> output,
        ReadOnlySpan<int> blockTables,
        int maxBlocksPerSequence,
        ReadOnlySpan<int> sequenceLengths,
        int numHeads,
        KvLayout layout)
    {
        KernelArguments.CheckPagedAttention(queries.Length, output.Length, keyCache.Length, valueCache.Length, blockTables, maxBlocksPerSequence,
            sequenceLengths, numHeads, layout);
        fixed (float* q = queries)
        fixed (float* k = keyCache)
        fixed (float* v = valueCache)
        fixed (float* o = output)
        fixed (int* tables = blockTables)
        fixed (int* lengths = sequenceLengths)
        {
            var state = new AttentionState { Q = q, K = k, V = v, O = o, Tables = tables, Lengths = lengths, MaxBlocks = maxBlocksPerSequence };
            RunAttention(ref state, sequenceLengths, numHeads, layout);
        }
    }

    // The same math over a contiguous cache laid out [sequences, NumKvHeads, capacity, HeadDim] (no block table, the
    // sequence's tokens of one KV head in one run): the baseline the paged kernel's indirection is measured against.
    internal void ContiguousAttentionDecode(
        ReadOnlySpan<float> queries, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, Span<float> output, ReadOnlySpan<int> sequenceLengths,
        int capacity, int numHeads, KvLayout layout)
    {
        var sequences = sequenceLengths.Length;
        KernelArguments.RequireLength(queries.Length, (long)sequences * numHeads * layout.HeadDim, nameof(queries));
        KernelArguments.RequireLength(output.Length, (long)sequences * numHeads * layout.HeadDim, nameof(output));
        KernelArguments.RequireLength(Math.Min(keys.Length, values.Length), (long)sequences * layout.NumKvHeads * capacity * layout.HeadDim, nameof(keys));
        foreach (var length in sequenceLengths)
            ArgumentOutOfRangeException.ThrowIfGreaterThan(length, capacity, nameof(sequenceLengths));
        fixed (float* q = queries)
        fixed (float* k = keys)
        fixed (float* v = values)
        fixed (float* o = output)
        fixed (int* lengths = sequenceLengths)
        {
            var state = new AttentionState { Q = q, K = k, V = v, O = o, Lengths = lengths, Capacity = capacity };
            RunAttention(ref state, sequenceLengths, numHeads, layout);
        }
    }

    private void RunAttention(ref AttentionState state, ReadOnlySpan<int> sequenceLengths, int numHeads, KvLayout layout)
    {
        // The per-item accumulators and scores live on the stack.
        ArgumentOutOfRangeException.ThrowIfGreaterThan(layout.HeadDim, MaxHeadDim);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(layout.BlockSize, MaxBlockSize);
        var sequences = sequenceLengths.Length;
        if (sequences == 0)
            return;
        var group = numHeads / layout.NumKvHeads;
        state.NumHeads = numHeads;
        state.Group = group;
        state.Chunks = (group + MaxHeadsPerItem - 1) / MaxHeadsPerItem;
        state.Layout = layout;
        state.Scale = 1f / MathF.Sqrt(layout.HeadDim);
        var items = sequences * layout.NumKvHeads * state.Chunks;
        long work = 0;
        foreach (var length in sequenceLengths)
            work += (long)length * numHeads * layout.HeadDim;
        fixed (AttentionState* p = &state)
        {
            if (work < _parallelThreshold)
            {
                for (var i = 0; i < items; i++)
                    AttentionItem(p, i);
            }
            else
            {
                _pool.Run(&AttentionItem, p, items);
            }
        }
    }

    private static void MatMulItem(void* p, int item)
    {
        ref var s = ref Unsafe.AsRef<MatMulState>(p);
        var first = item * RowsPerItem;
        var last = Math.Min(first + RowsPerItem, s.Rows);
        var r = first;
        // 4 weight rows x 4 batch rows per tile: each loaded vector feeds four multiply-adds instead of one, so the
        // loop is bound by the FMA units rather than by loads. The weight rows stay in L1 across the batch.
        for (; r <= last - 4; r += 4)
        {
            var b = 0;
            for (; b <= s.Batch - 4; b += 4)
                Tile4x4(ref s, r, b);
            for (; b < s.Batch; b++)
                Tile4x1(ref s, r, b);
        }
        for (; r < last; r++)
        {
            ref var w = ref Unsafe.AsRef<float>(s.W + ((long)r * s.Cols));
            for (var b = 0; b < s.Batch; b++)
                s.Y[((long)b * s.Rows) + r] = Dot(ref w, ref Unsafe.AsRef<float>(s.X + ((long)b * s.Cols)), s.Cols);
        }
    }

    // Y[b..b+3, r..r+3] = W[r..r+3] . X[b..b+3], sixteen accumulators (AVX-512 machines give the JIT 32 registers).
    private static void Tile4x4(ref MatMulState s, int r, int b)
    {
        var cols = s.Cols;
        float* w0 = s.W + ((long)r * cols), w1 = w0 + cols, w2 = w1 + cols, w3 = w2 + cols;
        float* x0 = s.X + ((long)b * cols), x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector256<float> a30 = default, a31 = default, a32 = default, a33 = default;
        var c = 0;
        for (; c <= cols - Vector256<float>.Count; c += Vector256<float>.Count)
        {
            var v0 = Vector256.Load(w0 + c);
            var v1 = Vector256.Load(w1 + c);
            var v2 = Vector256.Load(w2 + c);
            var v3 = Vector256.Load(w3 + c);
            var x = Vector256.Load(x0 + c);
            a00 = Vector256.FusedMultiplyAdd(v0, x, a00);
            a10 = Vector256.FusedMultiplyAdd(v1, x, a10);
            a20 = Vector256.FusedMultiplyAdd(v2, x, a20);
            a30 = Vector256.FusedMultiplyAdd(v3, x, a30);
            x = Vector256.Load(x1 + c);
            a01 = Vector256.FusedMultiplyAdd(v0, x, a01);
            a11 = Vector256.FusedMultiplyAdd(v1, x, a11);
            a21 = Vector256.FusedMultiplyAdd(v2, x, a21);
            a31 = Vector256.FusedMultiplyAdd(v3, x, a31);
            x = Vector256.Load(x2 + c);
            a02 = Vector256.FusedMultiplyAdd(v0, x, a02);
            a12 = Vector256.FusedMultiplyAdd(v1, x, a12);
            a22 = Vector256.FusedMultiplyAdd(v2, x, a22);
            a32 = Vector256.FusedMultiplyAdd(v3, x, a32);
            x = Vector256.Load(x3 + c);
            a03 = Vector256.FusedMultiplyAdd(v0, x, a03);
            a13 = Vector256.FusedMultiplyAdd(v1, x, a13);
            a23 = Vector256.FusedMultiplyAdd(v2, x, a23);
            a33 = Vector256.FusedMultiplyAdd(v3, x, a33);
        }
        var rows = (long)s.Rows;
        float* y0 = s.Y + (b * rows) + r, y1 = y0 + rows, y2 = y1 + rows, y3 = y2 + rows;
        y0[0] = Finish(a00, w0, x0, c, cols);
        y0[1] = Finish(a10, w1, x0, c, cols);
        y0[2] = Finish(a20, w2, x0, c, cols);
        y0[3] = Finish(a30, w3, x0, c, cols);
        y1[0] = Finish(a01, w0, x1, c, cols);
        y1[1] = Finish(a11, w1, x1, c, cols);
        y1[2] = Finish(a21, w2, x1, c, cols);
        y1[3] = Finish(a31, w3, x1, c, cols);
        y2[0] = Finish(a02, w0, x2, c, cols);
        y2[1] = Finish(a12, w1, x2, c, cols);
        y2[2] = Finish(a22, w2, x2, c, cols);
        y2[3] = Finish(a32, w3, x2, c, cols);
        y3[0] = Finish(a03, w0, x3, c, cols);
        y3[1] = Finish(a13, w1, x3, c, cols);
        y3[2] = Finish(a23, w2, x3, c, cols);
        y3[3] = Finish(a33, w3, x3, c, cols);
    }

    // The batch rows left over from the 4x4 tiles: four weight rows against one batch row.
    private static void Tile4x1(ref MatMulState s, int r, int b)
    {
        var cols = s.Cols;
        float* w0 = s.W + ((long)r * cols), w1 = w0 + cols, w2 = w1 + cols, w3 = w2 + cols;
        var x0 = s.X + ((long)b * cols);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var c = 0;
        for (; c <= cols - Vector256<float>.Count; c += Vector256<float>.Count)
        {
            var x = Vector256.Load(x0 + c);
            a0 = Vector256.FusedMultiplyAdd(Vector256.Load(w0 + c), x, a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Load(w1 + c), x, a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Load(w2 + c), x, a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Load(w3 + c), x, a3);
        }
        var y = s.Y + ((long)b * s.Rows) + r;
        y[0] = Finish(a0, w0, x0, c, cols);
        y[1] = Finish(a1, w1, x0, c, cols);
        y[2] = Finish(a2, w2, x0, c, cols);
        y[3] = Finish(a3, w3, x0, c, cols);
    }

    // The accumulator's lanes plus the columns past the last whole vector.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Finish(Vector256<float> acc, float* w, float* x, int from, int cols)
    {
        var sum = Vector256.Sum(acc);
        for (var c = from; c < cols; c++)
            sum += w[c] * x[c];
        return sum;
    }

    // One (sequence, KV head, up to MaxHeadsPerItem of its query heads), one pass over the sequence block by block with
    // online softmax: per block, each head's scores (a dot product per token), the block's max, one rescale of the
    // running sum and accumulator if the max grew, the exponentials (vectorized), then the weighted V rows added into
    // the accumulator a vector of dimensions at a time across the block's tokens, so the accumulator stays in a
    // register instead of being loaded and stored per token. Each K/V block run is read from memory once for all the
    // item's heads (grouped-query attention shares it) and stays in L1 between them.
    private static void AttentionItem(void* p, int item)
    {
        ref var s = ref Unsafe.AsRef<AttentionState>(p);
        var layout = s.Layout;
        var headDim = layout.HeadDim;
        var blockSize = layout.BlockSize;
        var perSequence = layout.NumKvHeads * s.Chunks;
        var seq = item / perSequence;
        var kvHead = item % perSequence / s.Chunks;
        var chunk = item % s.Chunks;
        var firstHead = (kvHead * s.Group) + (chunk * MaxHeadsPerItem);
        var heads = Math.Min(MaxHeadsPerItem, s.Group - (chunk * MaxHeadsPerItem));
        var queries = s.Q + ((((long)seq * s.NumHeads) + firstHead) * headDim);
        var outputs = s.O + ((((long)seq * s.NumHeads) + firstHead) * headDim);
        var length = s.Lengths[seq];
        if (length == 0)
        {
            new Span<float>(outputs, heads * headDim).Clear();
            return;
        }

        var accumulators = stackalloc float[heads * headDim];
        var scores = stackalloc float[heads * blockSize];
        var maxes = stackalloc float[heads];
        var sums = stackalloc float[heads];
        new Span<float>(accumulators, heads * headDim).Clear();
        for (var g = 0; g < heads; g++)
        {
            maxes[g] = float.NegativeInfinity;
            sums[g] = 0f;
        }
        var table = s.Tables + ((long)seq * s.MaxBlocks);
        var contiguous = ((((long)seq * layout.NumKvHeads) + kvHead) * s.Capacity) * headDim;
        var blocks = (length + blockSize - 1) / blockSize;
        for (var b = 0; b < blocks; b++)
        {
            var n = Math.Min(blockSize, length - (b * blockSize));
            var offset = s.Tables != null
                ? ((long)table[b] * layout.BlockStride) + ((long)kvHead * layout.HeadStride)
                : contiguous + ((long)b * layout.HeadStride);
            var keys = s.K + offset;
            var values = s.V + offset;
            if (b == 0 && blocks > 1)
                PrefetchBlock(ref s, table, 1, kvHead, contiguous);
            if (b + 2 < blocks)
                PrefetchBlock(ref s, table, b + 2, kvHead, contiguous);
            for (var g = 0; g < heads; g++)
            {
                var row = scores + (g * blockSize);
                Scores(queries + (g * headDim), keys, row, n, headDim, s.Scale);
                var blockMax = float.NegativeInfinity;
                for (var t = 0; t < n; t++)
                    blockMax = MathF.Max(blockMax, row[t]);
                if (blockMax > maxes[g])
                {
                    // exp(-inf) is 0 on the first block, where the accumulator and sum are still zero anyway.
                    var correction = MathF.Exp(maxes[g] - blockMax);
                    sums[g] *= correction;
                    ScaleInPlace(new Span<float>(accumulators + (g * headDim), headDim), correction);
                    maxes[g] = blockMax;
                }
                sums[g] += ExpShifted(row, n, maxes[g]);
                AccumulateRows(accumulators + (g * headDim), row, values, n, headDim);
            }
        }
        for (var g = 0; g < heads; g++)
        {
            var inv = 1f / sums[g];
            var acc = accumulators + (g * headDim);
            var output = outputs + (g * headDim);
            for (var d = 0; d < headDim; d++)
                output[d] = acc[d] * inv;
        }
    }

    private static void PrefetchBlock(ref AttentionState s, int* table, int block, int kvHead, long contiguous)
    {
        var layout = s.Layout;
        var offset = s.Tables != null
            ? ((long)table[block] * layout.BlockStride) + ((long)kvHead * layout.HeadStride)
            : contiguous + ((long)block * layout.HeadStride);
        Prefetch(s.K + offset, s.V + offset, layout.HeadStride);
    }

    // The next block's runs are scattered islands the hardware prefetcher cannot predict: ask for them while this
    // block computes, one request per cache line.
    private static void Prefetch(float* keys, float* values, int floats)
    {
        if (!Sse.IsSupported)
            return;
        const int lineFloats = 64 / sizeof(float);
        for (var i = 0; i < floats; i += lineFloats)
        {
            Sse.Prefetch0(keys + i);
            Sse.Prefetch0(values + i);
        }
    }

    // x[i] = exp(x[i] - shift) for i < n; returns their sum.
    private static float ExpShifted(float* x, int n, float shift)
    {
        var i = 0;
        var sum = 0f;
        if (Vector256.IsHardwareAccelerated)
        {
            var by = Vector256.Create(shift);
            var total = Vector256<float>.Zero;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var e = Vector256.Exp(Vector256.Load(x + i) - by);
                e.Store(x + i);
                total += e;
            }
            sum = Vector256.Sum(total);
        }
        for (; i < n; i++)
        {
            var e = MathF.Exp(x[i] - shift);
            x[i] = e;
            sum += e;
        }
        return sum;
    }

    // scores[t] = scale * (q . keys[t]) for t < n: four key rows per pass over q, four independent FMA chains, so the
    // loop runs at the FMA units' throughput rather than one chain's latency.
    private static void Scores(float* q, float* keys, float* scores, int n, int dim, float scale)
    {
        var t = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; t <= n - 4; t += 4)
            {
                float* k0 = keys + ((long)t * dim), k1 = k0 + dim, k2 = k1 + dim, k3 = k2 + dim;
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                var d = 0;
                for (; d <= dim - Vector256<float>.Count; d += Vector256<float>.Count)
                {
                    var x = Vector256.Load(q + d);
                    a0 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k0 + d), a0);
                    a1 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k1 + d), a1);
                    a2 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k2 + d), a2);
                    a3 = Vector256.FusedMultiplyAdd(x, Vector256.Load(k3 + d), a3);
                }
                scores[t] = Finish(a0, q, k0, d, dim) * scale;
                scores[t + 1] = Finish(a1, q, k1, d, dim) * scale;
                scores[t + 2] = Finish(a2, q, k2, d, dim) * scale;
                scores[t + 3] = Finish(a3, q, k3, d, dim) * scale;
            }
        }
        for (; t < n; t++)
            scores[t] = Dot(ref Unsafe.AsRef<float>(q), ref Unsafe.AsRef<float>(keys + ((long)t * dim)), dim) * scale;
    }

    // acc[d] += sum over t < n of weights[t] * rows[t * dim + d]: four vectors of d at a time (four independent FMA
    // chains) across the block's tokens, the accumulators held in registers for the whole block.
    private static void AccumulateRows(float* acc, float* weights, float* rows, int n, int dim)
    {
        var d = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            const int width = 4 * 8;
            for (; d <= dim - width; d += width)
            {
                var a0 = Vector256.Load(acc + d);
                var a1 = Vector256.Load(acc + d + 8);
                var a2 = Vector256.Load(acc + d + 16);
                var a3 = Vector256.Load(acc + d + 24);
                for (var t = 0; t < n; t++)
                {
                    var w = Vector256.Create(weights[t]);
                    var row = rows + ((long)t * dim) + d;
                    a0 = Vector256.FusedMultiplyAdd(w, Vector256.Load(row), a0);
                    a1 = Vector256.FusedMultiplyAdd(w, Vector256.Load(row + 8), a1);
                    a2 = Vector256.FusedMultiplyAdd(w, Vector256.Load(row + 16), a2);
                    a3 = Vector256.FusedMultiplyAdd(w, Vector256.Load(row + 24), a3);
                }
                a0.Store(acc + d);
                a1.Store(acc + d + 8);
                a2.Store(acc + d + 16);
                a3.Store(acc + d + 24);
            }
            for (; d <= dim - Vector256<float>.Count; d += Vector256<float>.Count)
            {
                var a = Vector256.Load(acc + d);
                for (var t = 0; t < n; t++)
                    a = Vector256.FusedMultiplyAdd(Vector256.Create(weights[t]), Vector256.Load(rows + ((long)t * dim) + d), a);
                a.Store(acc + d);
            }
        }
        for (; d < dim; d++)
        {
            var a = acc[d];
            for (var t = 0; t < n; t++)
                a += weights[t] * rows[((long)t * dim) + d];
            acc[d] = a;
        }
    }

    internal static float Dot(ref float a, ref float b, int n)
    {
        var i = 0;
        var sum = 0f;
        if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            // Two accumulators hide the add latency of the dependent chain.
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

    // y += alpha * x.
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

    void IKernels<Memory<float>>.MatVec(Memory<float> weights, Memory<float> x, Memory<float> y, int rows, int cols) =>
        MatVec(weights.Span, x.Span, y.Span, rows, cols);

    void IKernels<Memory<float>>.MatMul(Memory<float> weights, Memory<float> x, Memory<float> y, int batch, int rows, int cols) =>
        MatMul(weights.Span, x.Span, y.Span, batch, rows, cols);

    void IKernels<Memory<float>>.RmsNorm(Memory<float> x, Memory<float> weight, Memory<float> y, int batch, int dim, float eps) =>
        RmsNorm(x.Span, weight.Span, y.Span, batch, dim, eps);

    void IKernels<Memory<float>>.SwiGlu(Memory<float> gate, Memory<float> up, Memory<float> y, int length) =>
        SwiGlu(gate.Span, up.Span, y.Span, length);

    void IKernels<Memory<float>>.Rope(Memory<float> x, ReadOnlySpan<int> positions, int numHeads, int headDim, int ropeDim, float freqBase) =>
        Rope(x.Span, positions, numHeads, headDim, ropeDim, freqBase);

    void IKernels<Memory<float>>.Softmax(Memory<float> x, int batch, int length) => Softmax(x.Span, batch, length);

    void IKernels<Memory<float>>.Add(Memory<float> x, Memory<float> y, int length) => Add(x.Span, y.Span, length);

    void IKernels<Memory<float>>.AppendKv(
        Memory<float> keyCache, Memory<float> valueCache, Memory<float> keys, Memory<float> values, ReadOnlySpan<int> slotMapping, KvLayout layout) =>
        AppendKv(keyCache.Span, valueCache.Span, keys.Span, values.Span, slotMapping, layout);

    void IKernels<Memory<float>>.CopyBlocks(Memory<float> keyCache, Memory<float> valueCache, ReadOnlySpan<BlockCopy> copies, KvLayout layout) =>
        CopyBlocks(keyCache.Span, valueCache.Span, copies, layout);

    void IKernels<Memory<float>>.PagedAttentionDecode(
        Memory<float> queries,
        Memory<float> keyCache,
        Memory<float> valueCache,
        Memory<float> output,
        ReadOnlySpan<int> blockTables,
        int maxBlocksPerSequence,
        ReadOnlySpan<int> sequenceLengths,
        int numHeads,
        KvLayout layout) =>
        PagedAttentionDecode(queries.Span, keyCache.Span, valueCache.Span, output.Span, blockTables, maxBlocksPerSequence, sequenceLengths, numHeads, layout);

    private struct MatMulState
    {
        public float* W;
        public float* X;
        public float* Y;
        public int Batch;
        public int Rows;
        public int Cols;
    }

    private struct AttentionState
    {
        public float* Q;
        public float* K;
        public float* V;
        public float* O;
        public int* Tables;
        public int* Lengths;
        public int MaxBlocks;
        // Tokens per (sequence, KV head) run when Tables is null (ContiguousAttentionDecode).
        public int Capacity;
        public int NumHeads;
        // Query heads per KV head, and the work items each KV head's group is split into.
        public int Group;
        public int Chunks;
        public KvLayout Layout;
        public float Scale;
    }
}
