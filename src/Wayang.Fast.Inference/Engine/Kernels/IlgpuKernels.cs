using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using Wayang.Fast.Inference.Engine.KvCache;

namespace Wayang.Fast.Inference.Engine.Kernels;

// The ILGPU backend: the same semantics as CpuKernels on device buffers, so one kernel set runs on CUDA where a GPU
// exists and on ILGPU's CPU accelerator (which emulates the thread grid) everywhere else, including every test run.
// Kernels are compiled once at construction and every call ends in Synchronize, because IKernels is synchronous.
// Host-side bookkeeping (positions, slot mapping, block tables, lengths, copies) goes through reusable device buffers
// that only grow. Parallelism is one thread per output element, row or (sequence, head): simple and correct first;
// cooperative (warp-reduced) kernels are the next step for GPU speed.
public sealed class IlgpuKernels : IKernels<ArrayView<float>>, IDisposable
{
    private readonly Context _context;
    private readonly Accelerator _accelerator;
    private readonly IntBuffer _ints;
    private readonly IntBuffer _lengths;
    private readonly FloatBuffer _ropeTable;
    // The rope table is a function of (positions, ropeDim, freqBase); every layer of a step passes the same ones.
    private int[] _ropePositions = [];
    private int _ropeDim = -1;
    private float _ropeBase = float.NaN;

    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> _matMul;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float> _rmsNorm;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>> _swiGlu;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, int, int> _rope;
    private readonly Action<Index1D, ArrayView<float>, int> _softmax;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>> _add;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, KvLayout> _appendKv;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int> _copyBlocks;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, KvLayout, int, int, float> _attention;

    private IlgpuKernels(Context context, Accelerator accelerator)
    {
        _context = context;
        _accelerator = accelerator;
        _ints = new IntBuffer(accelerator);
        _lengths = new IntBuffer(accelerator);
        _ropeTable = new FloatBuffer(accelerator);
        Memory = new IlgpuMemory(accelerator);
        _matMul = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(MatMulKernel);
        _rmsNorm = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float>(RmsNormKernel);
        _swiGlu = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(SwiGluKernel);
        _rope = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, int>(RopeKernel);
        _softmax = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int>(SoftmaxKernel);
        _add = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(AddKernel);
        _appendKv = accelerator
            .LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, KvLayout>(AppendKvKernel);
        _copyBlocks = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int>(CopyBlocksKernel);
        _attention = accelerator
            .LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, KvLayout, int, int, float>(
                AttentionKernel);
    }

    // CUDA when a CUDA device exists, else ILGPU's CPU accelerator.
    public static IlgpuKernels Create()
    {
        var context = Context.Create(b => b.Cuda().CPU().EnableAlgorithms());
        try
        {
            var cuda = context.GetCudaDevices();
            var accelerator = cuda.Count > 0 ? cuda[0].CreateAccelerator(context) : context.CreateCPUAccelerator(0);
            return new IlgpuKernels(context, accelerator);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    // The first CUDA device, or null when there is none (no device, or no CUDA driver to find one with).
    public static IlgpuKernels? TryCreateCuda()
    {
        var context = Context.Create(b => b.Cuda().EnableAlgorithms());
        try
        {
            var cuda = context.GetCudaDevices();
            if (cuda.Count == 0)
            {
                context.Dispose();
                return null;
            }
            return new IlgpuKernels(context, cuda[0].CreateAccelerator(context));
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    // Always the CPU accelerator: tests, and hosts that want the emulated grid regardless of hardware.
    public static IlgpuKernels CreateCpu()
    {
        var context = Context.Create(b => b.CPU().EnableAlgorithms());
        try
        {
            return new IlgpuKernels(context, context.CreateCPUAccelerator(0));
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    public Accelerator Accelerator => _accelerator;

    // The buffers a forward pass on these kernels allocates; released with the kernels at the latest.
    public IlgpuMemory Memory { get; }

    public void Dispose()
    {
        Memory.Dispose();
        _ints.Dispose();
        _lengths.Dispose();
        _ropeTable.Dispose();
        _accelerator.Dispose();
        _context.Dispose();
    }

    public void MatVec(ArrayView<float> weights, ArrayView<float> x, ArrayView<float> y, int rows, int cols) =>
        MatMul(weights, x, y, 1, rows, cols);

    public void MatMul(ArrayView<float> weights, ArrayView<float> x, ArrayView<float> y, int batch, int rows, int cols)
    {
        KernelArguments.CheckMatMul(weights.Length, x.Length, y.Length, batch, rows, cols);
        if (batch == 0 || rows == 0)
            return;
        Bind(_accelerator);
        _matMul(batch * rows, weights, x, y, rows, cols);
        _accelerator.Synchronize();
    }

    public void RmsNorm(ArrayView<float> x, ArrayView<float> weight, ArrayView<float> y, int batch, int dim, float eps)
    {
        KernelArguments.RequireLength(x.Length, (long)batch * dim, nameof(x));
        KernelArguments.RequireLength(weight.Length, dim, nameof(weight));
        KernelArguments.RequireLength(y.Length, (long)batch * dim, nameof(y));
        if (batch <= 0 || dim <= 0)
            return;
        Bind(_accelerator);
        _rmsNorm(batch, x, weight, y, dim, eps);
        _accelerator.Synchronize();
    }

    public void SwiGlu(ArrayView<float> gate, ArrayView<float> up, ArrayView<float> y, int length)
    {
        KernelArguments.RequireLength(gate.Length, length, nameof(gate));
        KernelArguments.RequireLength(up.Length, length, nameof(up));
        KernelArguments.RequireLength(y.Length, length, nameof(y));
        if (length <= 0)
            return;
        Bind(_accelerator);
        _swiGlu(length, gate, up, y);
        _accelerator.Synchronize();
    }

    public void Rope(ArrayView<float> x, ReadOnlySpan<int> positions, int numHeads, int headDim, int ropeDim, float freqBase)
    {
        KernelArguments.CheckRope(x.Length, positions.Length, numHeads, headDim, ropeDim);
        var pairs = ropeDim / 2;
        if (positions.Length == 0 || numHeads <= 0 || pairs == 0)
            return;
        Bind(_accelerator);
        // The (cos, sin) table is computed on the host in double, exactly as CpuKernels does: positions reach the tens
        // of thousands, where device f32 angles drift, and device double sin/cos is slow or emulated.
        if (_ropeDim != ropeDim || !_ropeBase.Equals(freqBase) || !positions.SequenceEqual(_ropePositions))
        {
            var table = new float[positions.Length * pairs * 2];
            for (var t = 0; t < positions.Length; t++)
            {
                var pos = (double)positions[t];
                for (var i = 0; i < pairs; i++)
                {
                    var (sin, cos) = Math.SinCos(pos * Math.Pow(freqBase, -2.0 * i / ropeDim));
                    table[(((t * pairs) + i) * 2) + 0] = (float)cos;
                    table[(((t * pairs) + i) * 2) + 1] = (float)sin;
                }
            }
            _ropeTable.Upload(table);
            _ropePositions = positions.ToArray();
            _ropeDim = ropeDim;
            _ropeBase = freqBase;
        }
        _rope(positions.Length * numHeads * pairs, x, _ropeTable.View, numHeads, headDim, pairs);
        _accelerator.Synchronize();
    }

    public void Softmax(ArrayView<float> x, int batch, int length)
    {
        KernelArguments.RequireLength(x.Length, (long)batch * length, nameof(x));
        if (batch <= 0 || length <= 0)
            return;
        Bind(_accelerator);
        _softmax(batch, x, length);
        _accelerator.Synchronize();
    }

    public void Add(ArrayView<float> x, ArrayView<float> y, int length)
    {
        KernelArguments.RequireLength(x.Length, length, nameof(x));
        KernelArguments.RequireLength(y.Length, length, nameof(y));
        if (length <= 0)
            return;
        Bind(_accelerator);
        _add(length, x, y);
        _accelerator.Synchronize();
    }

    public void AppendKv(
        ArrayView<float> keyCache, ArrayView<float> valueCache, ArrayView<float> keys, ArrayView<float> values, ReadOnlySpan<int> slotMapping, KvLayout layout)
    {
        // Checked on the host so the kernel runs unchecked; -1 marks padding tokens, which store nothing.
        KernelArguments.CheckAppendKv(keyCache.Length, valueCache.Length, keys.Length, values.Length, slotMapping, layout);
        var stride = layout.SlotStride;
        if (slotMapping.Length == 0 || stride == 0)
            return;
        Bind(_accelerator);
        _ints.Upload(slotMapping);
        _appendKv(slotMapping.Length * stride, keyCache, valueCache, keys, values, _ints.View, layout);
        _accelerator.Synchronize();
    }

    public void CopyBlocks(ArrayView<float> keyCache, ArrayView<float> valueCache, ReadOnlySpan<BlockCopy> copies, KvLayout layout)
    {
        var stride = layout.BlockStride;
        var blocks = Math.Min(keyCache.Length, valueCache.Length) / Math.Max(stride, 1);
        Span<int> pairs = copies.Length <= 128 ? stackalloc int[copies.Length * 2] : new int[copies.Length * 2];
        for (var i = 0; i < copies.Length; i++)
        {
            var copy = copies[i];
            if ((uint)copy.Source >= (ulong)blocks || (uint)copy.Destination >= (ulong)blocks)
                throw new ArgumentOutOfRangeException(nameof(copies), copy, "block outside the cache");
            pairs[2 * i] = copy.Source;
            pairs[(2 * i) + 1] = copy.Destination;
        }
        if (copies.Length == 0 || stride == 0)
            return;
        Bind(_accelerator);
        _ints.Upload(pairs);
        _copyBlocks(copies.Length * stride, keyCache, valueCache, _ints.View, stride);
        _accelerator.Synchronize();
    }

    public void PagedAttentionDecode(
        ArrayView<float> queries,
        ArrayView<float> keyCache,
        ArrayView<float> valueCache,
        ArrayView<float> output,
        ReadOnlySpan<int> blockTables,
        int maxBlocksPerSequence,
        ReadOnlySpan<int> sequenceLengths,
        int numHeads,
        KvLayout layout)
    {
        var sequences = sequenceLengths.Length;
        KernelArguments.CheckPagedAttention(queries.Length, output.Length, keyCache.Length, valueCache.Length, blockTables, maxBlocksPerSequence,
            sequenceLengths, numHeads, layout);
        if (sequences == 0)
            return;
        Bind(_accelerator);
        _ints.Upload(blockTables[..(sequences * maxBlocksPerSequence)]);
        _lengths.Upload(sequenceLengths);
        var scale = 1f / MathF.Sqrt(layout.HeadDim);
        _attention(sequences * numHeads, queries, keyCache, valueCache, output, _ints.View, _lengths.View, layout, maxBlocksPerSequence, numHeads, scale);
        _accelerator.Synchronize();
    }

    // A CUDA context is current per thread, and a forward pass may be created on one thread and stepped on others (the
    // scheduler's loop resumes on the pool): every entry point makes the accelerator current first. A thread-static
    // read when it already is.
    internal static void Bind(Accelerator accelerator)
    {
        if (!ReferenceEquals(Accelerator.Current, accelerator))
            accelerator.Bind();
    }

    // One output element: sequential f32 accumulation, the same order as CpuKernels' scalar tail.
    private static void MatMulKernel(Index1D index1D, ArrayView<float> w, ArrayView<float> x, ArrayView<float> y, int rows, int cols)
    {
        var index = (int)index1D;
        var b = index / rows;
        var r = index % rows;
        var wRow = (long)r * cols;
        var xRow = (long)b * cols;
        var sum = 0f;
        for (var c = 0; c < cols; c++)
            sum += w[wRow + c] * x[xRow + c];
        y[index] = sum;
    }

    // One row. y may alias x: each element is read before it is written, by the same thread.
    private static void RmsNormKernel(Index1D row1D, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> y, int dim, float eps)
    {
        var row = (int)row1D;
        var start = (long)row * dim;
        var sum = 0f;
        for (var i = 0; i < dim; i++)
        {
            var v = x[start + i];
            sum += v * v;
        }
        var inv = XMath.Rsqrt((sum / dim) + eps);
        for (var i = 0; i < dim; i++)
            y[start + i] = x[start + i] * inv * weight[i];
    }

    private static void SwiGluKernel(Index1D i1D, ArrayView<float> gate, ArrayView<float> up, ArrayView<float> y)
    {
        var i = (int)i1D;
        var g = gate[i];
        y[i] = g / (1f + XMath.Exp(-g)) * up[i];
    }

    // One (token, head, pair): table holds (cos, sin) per (token, pair).
    private static void RopeKernel(Index1D index1D, ArrayView<float> x, ArrayView<float> table, int numHeads, int headDim, int pairs)
    {
        var index = (int)index1D;
        var i = index % pairs;
        var th = index / pairs;
        var t = th / numHeads;
        var at = ((long)th * headDim) + (2 * i);
        var c = table[(((long)t * pairs) + i) * 2];
        var s = table[((((long)t * pairs) + i) * 2) + 1];
        var x0 = x[at];
        var x1 = x[at + 1];
        x[at] = (x0 * c) - (x1 * s);
        x[at + 1] = (x0 * s) + (x1 * c);
    }

    private static void SoftmaxKernel(Index1D row1D, ArrayView<float> x, int length)
    {
        var row = (int)row1D;
        var start = (long)row * length;
        var max = float.NegativeInfinity;
        for (var i = 0; i < length; i++)
            max = XMath.Max(max, x[start + i]);
        var sum = 0f;
        for (var i = 0; i < length; i++)
        {
            var e = XMath.Exp(x[start + i] - max);
            x[start + i] = e;
            sum += e;
        }
        var inv = 1f / sum;
        for (var i = 0; i < length; i++)
            x[start + i] *= inv;
    }

    private static void AddKernel(Index1D i1D, ArrayView<float> x, ArrayView<float> y) => x[i1D] += y[i1D];

    // One element of one token's [NumKvHeads, HeadDim] row, stored at its KV head's row of the slot's block.
    private static void AppendKvKernel(
        Index1D index1D, ArrayView<float> keyCache, ArrayView<float> valueCache, ArrayView<float> keys, ArrayView<float> values, ArrayView<int> slots, KvLayout layout)
    {
        var index = (int)index1D;
        var stride = layout.NumKvHeads * layout.HeadDim;
        var token = index / stride;
        var slot = slots[token];
        if (slot < 0)
            return;
        var element = index % stride;
        var at = layout.Offset(slot, element / layout.HeadDim) + (element % layout.HeadDim);
        keyCache[at] = keys[index];
        valueCache[at] = values[index];
    }

    // One element of one copied block; pairs holds (source, destination) per copy.
    private static void CopyBlocksKernel(Index1D index1D, ArrayView<float> keyCache, ArrayView<float> valueCache, ArrayView<int> pairs, int stride)
    {
        var index = (int)index1D;
        var copy = index / stride;
        var offset = index % stride;
        var from = ((long)pairs[2 * copy] * stride) + offset;
        var to = ((long)pairs[(2 * copy) + 1] * stride) + offset;
        keyCache[to] = keyCache[from];
        valueCache[to] = valueCache[from];
    }

    // One (sequence, head), the online softmax of CpuKernels.AttentionItem; the output row doubles as the accumulator,
    // since a thread has no dynamically sized local array.
    private static void AttentionKernel(
        Index1D item1D,
        ArrayView<float> queries,
        ArrayView<float> keyCache,
        ArrayView<float> valueCache,
        ArrayView<float> output,
        ArrayView<int> tables,
        ArrayView<int> lengths,
        KvLayout layout,
        int maxBlocks,
        int numHeads,
        float scale)
    {
        var item = (int)item1D;
        var headDim = layout.HeadDim;
        var seq = item / numHeads;
        var head = item % numHeads;
        var kvHead = head / (numHeads / layout.NumKvHeads);
        var q = (long)item * headDim;
        for (var d = 0; d < headDim; d++)
            output[q + d] = 0f;
        var length = lengths[seq];
        var table = (long)seq * maxBlocks;
        var max = float.NegativeInfinity;
        var sum = 0f;
        for (var t = 0; t < length; t++)
        {
            var slot = ((long)tables[table + (t / layout.BlockSize)] * layout.BlockSize) + (t % layout.BlockSize);
            var offset = layout.Offset(slot, kvHead);
            var score = 0f;
            for (var d = 0; d < headDim; d++)
                score += queries[q + d] * keyCache[offset + d];
            score *= scale;
            if (score > max)
            {
                var correction = XMath.Exp(max - score);
                sum = (sum * correction) + 1f;
                for (var d = 0; d < headDim; d++)
                    output[q + d] = (output[q + d] * correction) + valueCache[offset + d];
                max = score;
            }
            else
            {
                var weight = XMath.Exp(score - max);
                sum += weight;
                for (var d = 0; d < headDim; d++)
                    output[q + d] += weight * valueCache[offset + d];
            }
        }
        if (length == 0)
            return;
        var inv = 1f / sum;
        for (var d = 0; d < headDim; d++)
            output[q + d] *= inv;
    }

    // A device buffer for per-call host data that grows (doubling) and is never shrunk, so steady-state steps allocate
    // no device memory.
    private sealed class IntBuffer(Accelerator accelerator) : IDisposable
    {
        private MemoryBuffer1D<int, Stride1D.Dense>? _buffer;

        public ArrayView<int> View { get; private set; }

        public void Upload(ReadOnlySpan<int> data)
        {
            if (_buffer is null || _buffer.Length < data.Length)
            {
                _buffer?.Dispose();
                _buffer = accelerator.Allocate1D<int>(Math.Max(64, (long)data.Length * 2));
            }
            View = _buffer.View.SubView(0, data.Length);
            View.CopyFromCPU(data);
        }

        public void Dispose() => _buffer?.Dispose();
    }

    private sealed class FloatBuffer(Accelerator accelerator) : IDisposable
    {
        private MemoryBuffer1D<float, Stride1D.Dense>? _buffer;

        public ArrayView<float> View { get; private set; }

        public void Upload(ReadOnlySpan<float> data)
        {
            if (_buffer is null || _buffer.Length < data.Length)
            {
                _buffer?.Dispose();
                _buffer = accelerator.Allocate1D<float>(Math.Max(64, (long)data.Length * 2));
            }
            View = _buffer.View.SubView(0, data.Length);
            View.CopyFromCPU(data);
        }

        public void Dispose() => _buffer?.Dispose();
    }
}
