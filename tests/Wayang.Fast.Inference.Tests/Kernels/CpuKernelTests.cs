using Wayang.Fast.Inference.Engine.Kernels;
using Wayang.Fast.Inference.Engine.KvCache;
using static Wayang.Fast.Inference.Tests.Kernels.KernelTestData;

namespace Wayang.Fast.Inference.Tests.Kernels;

// Every kernel against a plain scalar reference (double accumulation) on seeded random inputs that are never zero,
// with odd sizes so the vector loops' tails run. The kernels run with a parallel threshold of 0 and three threads, so
// even these small inputs go through the worker pool.
public sealed class CpuKernelTests : IDisposable
{
    private const double Tolerance = 1e-4;
    private readonly CpuKernels _kernels = new(threads: 3, parallelThreshold: 0);

    public void Dispose() => _kernels.Dispose();

    private static void Close(double expected, float actual, string what)
    {
        var bound = Tolerance * Math.Max(1.0, Math.Abs(expected));
        Assert.True(Math.Abs(expected - actual) <= bound, $"{what}: expected {expected}, got {actual}");
    }

    private static void Close(double[] expected, ReadOnlySpan<float> actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
            Close(expected[i], actual[i], $"[{i}]");
    }

    [Theory]
    [InlineData(13, 67)]
    [InlineData(1, 1)]
    [InlineData(37, 130)]
    public void MatVec_matches_reference(int rows, int cols)
    {
        var rng = new Random(rows * 1000 + cols);
        var w = RandomArray(rng, rows * cols);
        var x = RandomArray(rng, cols);
        var y = new float[rows];

        _kernels.MatVec(w, x, y, rows, cols);

        var expected = new double[rows];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < cols; c++)
                expected[r] += (double)w[(r * cols) + c] * x[c];
        }
        Close(expected, y);
    }

    [Theory]
    [InlineData(5, 13, 67)]
    [InlineData(3, 33, 17)]
    // The 4x4 register tiles: whole tiles, leftover batch rows, leftover weight rows in a work item, and rows shorter
    // than one vector (only the scalar tail runs).
    [InlineData(9, 23, 35)]
    [InlineData(8, 4, 7)]
    [InlineData(17, 37, 64)]
    public void MatMul_matches_reference(int batch, int rows, int cols)
    {
        var rng = new Random(7);
        var w = RandomArray(rng, rows * cols);
        var x = RandomArray(rng, batch * cols);
        var y = new float[batch * rows];

        ((IKernels<Memory<float>>)_kernels).MatMul(w, x, y, batch, rows, cols);

        var expected = new double[batch * rows];
        for (var b = 0; b < batch; b++)
        {
            for (var r = 0; r < rows; r++)
            {
                for (var c = 0; c < cols; c++)
                    expected[(b * rows) + r] += (double)w[(r * cols) + c] * x[(b * cols) + c];
            }
        }
        Close(expected, y);
    }

    [Fact]
    public void MatMul_on_the_calling_thread_matches_the_pool()
    {
        var rng = new Random(11);
        var w = RandomArray(rng, 29 * 67);
        var x = RandomArray(rng, 3 * 67);
        var pooled = new float[3 * 29];
        var inline = new float[3 * 29];
        using var serial = new CpuKernels(threads: 1);

        _kernels.MatMul(w, x, pooled, 3, 29, 67);
        serial.MatMul(w, x, inline, 3, 29, 67);

        Assert.Equal(inline, pooled);
    }

    [Fact]
    public void RmsNorm_matches_reference()
    {
        const int batch = 3, dim = 67;
        const float eps = 1e-5f;
        var rng = new Random(3);
        var x = RandomArray(rng, batch * dim);
        var w = RandomArray(rng, dim);
        var y = new float[batch * dim];

        CpuKernels.RmsNorm(x, w, y, batch, dim, eps);

        var expected = new double[batch * dim];
        for (var b = 0; b < batch; b++)
        {
            var sum = 0.0;
            for (var i = 0; i < dim; i++)
                sum += (double)x[(b * dim) + i] * x[(b * dim) + i];
            var inv = 1 / Math.Sqrt((sum / dim) + eps);
            for (var i = 0; i < dim; i++)
                expected[(b * dim) + i] = x[(b * dim) + i] * inv * w[i];
        }
        Close(expected, y);
    }

    [Fact]
    public void SwiGlu_matches_reference()
    {
        var rng = new Random(4);
        var gate = RandomArray(rng, 67);
        var up = RandomArray(rng, 67);
        for (var i = 0; i < gate.Length; i++)
            gate[i] *= 6;
        var y = new float[67];

        CpuKernels.SwiGlu(gate, up, y, 67);

        Close([.. gate.Select((g, i) => g / (1 + Math.Exp(-g)) * up[i])], y);
    }

    [Theory]
    [InlineData(16, 16)]
    [InlineData(24, 16)]
    [InlineData(24, 24)]
    public void Rope_rotates_adjacent_pairs_of_the_first_rope_dims(int headDim, int ropeDim)
    {
        const int heads = 3;
        const float freqBase = 10000f;
        int[] positions = [3, 17, 1234];
        var rng = new Random(headDim + ropeDim);
        var x = RandomArray(rng, positions.Length * heads * headDim);
        var original = (float[])x.Clone();

        CpuKernels.Rope(x, positions, heads, headDim, ropeDim, freqBase);

        var expected = original.Select(v => (double)v).ToArray();
        for (var t = 0; t < positions.Length; t++)
        {
            for (var h = 0; h < heads; h++)
            {
                var head = ((t * heads) + h) * headDim;
                for (var i = 0; i < ropeDim / 2; i++)
                {
                    var theta = positions[t] * Math.Pow(freqBase, -2.0 * i / ropeDim);
                    double x0 = original[head + (2 * i)], x1 = original[head + (2 * i) + 1];
                    expected[head + (2 * i)] = (x0 * Math.Cos(theta)) - (x1 * Math.Sin(theta));
                    expected[head + (2 * i) + 1] = (x0 * Math.Sin(theta)) + (x1 * Math.Cos(theta));
                }
            }
        }
        Close(expected, x);
    }

    [Fact]
    public void Softmax_is_stable_for_large_logits()
    {
        const int batch = 3, length = 67;
        var rng = new Random(5);
        var x = RandomArray(rng, batch * length);
        for (var i = 0; i < x.Length; i++)
            x[i] = (x[i] * 50) + (i < length ? 1000 : 0);
        var original = (float[])x.Clone();

        CpuKernels.Softmax(x, batch, length);

        var expected = new double[batch * length];
        for (var b = 0; b < batch; b++)
        {
            var row = original.AsSpan(b * length, length);
            var max = double.NegativeInfinity;
            foreach (var v in row)
                max = Math.Max(max, v);
            var sum = 0.0;
            foreach (var v in row)
                sum += Math.Exp(v - max);
            for (var i = 0; i < length; i++)
                expected[(b * length) + i] = Math.Exp(row[i] - max) / sum;
        }
        Close(expected, x);
        Assert.All(x, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Add_accumulates_in_place()
    {
        var rng = new Random(6);
        var x = RandomArray(rng, 67);
        var y = RandomArray(rng, 67);
        var expected = x.Select((v, i) => (double)v + y[i]).ToArray();

        CpuKernels.Add(x, y, 67);

        Close(expected, x);
    }

    [Fact]
    public void AppendKv_writes_each_token_at_its_slot_and_nothing_else()
    {
        var layout = new KvLayout(BlockSize: 5, NumKvHeads: 2, HeadDim: 24);
        const int blocks = 7;
        var rng = new Random(8);
        var keyCache = RandomArray(rng, blocks * layout.BlockStride);
        var valueCache = RandomArray(rng, blocks * layout.BlockStride);
        var keyBefore = (float[])keyCache.Clone();
        var valueBefore = (float[])valueCache.Clone();
        // Scattered slots, a partial block, and a padding token (-1) that must be skipped.
        int[] slots = [12, 3, 34, -1, 20];
        var keys = RandomArray(rng, slots.Length * layout.SlotStride);
        var values = RandomArray(rng, slots.Length * layout.SlotStride);

        CpuKernels.AppendKv(keyCache, valueCache, keys, values, slots, layout);

        // Head-major blocks: token t's head h row lands at its slot's row of head h's run in the slot's block.
        var dim = layout.HeadDim;
        for (var slot = 0; slot < blocks * layout.BlockSize; slot++)
        {
            var token = Array.IndexOf(slots, slot);
            for (var h = 0; h < layout.NumKvHeads; h++)
            {
                var at = (int)layout.Offset(slot, h);
                Assert.Equal((slot / layout.BlockSize * layout.BlockStride) + (h * layout.BlockSize * dim) + (slot % layout.BlockSize * dim), at);
                var from = (token * layout.SlotStride) + (h * dim);
                var k = token < 0 ? keyBefore.AsSpan(at, dim) : keys.AsSpan(from, dim);
                var v = token < 0 ? valueBefore.AsSpan(at, dim) : values.AsSpan(from, dim);
                Assert.True(k.SequenceEqual(keyCache.AsSpan(at, dim)), $"key slot {slot} head {h}");
                Assert.True(v.SequenceEqual(valueCache.AsSpan(at, dim)), $"value slot {slot} head {h}");
            }
        }
    }

    [Fact]
    public void CopyBlocks_then_divergence_leaves_the_source_intact()
    {
        var layout = new KvLayout(BlockSize: 5, NumKvHeads: 2, HeadDim: 16);
        const int blocks = 6;
        var rng = new Random(9);
        var keyCache = RandomArray(rng, blocks * layout.BlockStride);
        var valueCache = RandomArray(rng, blocks * layout.BlockStride);
        var keyBefore = (float[])keyCache.Clone();
        var valueBefore = (float[])valueCache.Clone();
        var bs = layout.BlockStride;

        CpuKernels.CopyBlocks(keyCache, valueCache, [new BlockCopy(2, 5), new BlockCopy(0, 3)], layout);

        Assert.True(keyBefore.AsSpan(2 * bs, bs).SequenceEqual(keyCache.AsSpan(5 * bs, bs)));
        Assert.True(valueBefore.AsSpan(2 * bs, bs).SequenceEqual(valueCache.AsSpan(5 * bs, bs)));
        Assert.True(keyBefore.AsSpan(0, bs).SequenceEqual(keyCache.AsSpan(3 * bs, bs)));
        foreach (var untouched in new[] { 0, 1, 2, 4 })
        {
            Assert.True(keyBefore.AsSpan(untouched * bs, bs).SequenceEqual(keyCache.AsSpan(untouched * bs, bs)));
            Assert.True(valueBefore.AsSpan(untouched * bs, bs).SequenceEqual(valueCache.AsSpan(untouched * bs, bs)));
        }

        // The copy diverges: a new token at offset 3 of block 5 must not show through in block 2.
        var key = RandomArray(rng, layout.SlotStride);
        var value = RandomArray(rng, layout.SlotStride);
        CpuKernels.AppendKv(keyCache, valueCache, key, value, [(5 * layout.BlockSize) + 3], layout);

        Assert.True(keyBefore.AsSpan(2 * bs, bs).SequenceEqual(keyCache.AsSpan(2 * bs, bs)));
        Assert.True(valueBefore.AsSpan(2 * bs, bs).SequenceEqual(valueCache.AsSpan(2 * bs, bs)));
        for (var h = 0; h < layout.NumKvHeads; h++)
        {
            var at = (int)layout.Offset((5 * layout.BlockSize) + 3, h);
            Assert.True(key.AsSpan(h * layout.HeadDim, layout.HeadDim).SequenceEqual(keyCache.AsSpan(at, layout.HeadDim)));
            // The copied block's first three rows of each head are still the source's.
            var source = (int)layout.Offset(2 * layout.BlockSize, h);
            var copy = (int)layout.Offset(5 * layout.BlockSize, h);
            Assert.True(keyBefore.AsSpan(source, 3 * layout.HeadDim).SequenceEqual(keyCache.AsSpan(copy, 3 * layout.HeadDim)));
        }
    }

    [Theory]
    [InlineData(5, 16, 8)]
    [InlineData(5, 24, 8)]
    [InlineData(16, 16, 8)]
    [InlineData(16, 24, 8)]
    // Twelve query heads per KV head: more than one work item's worth, so a group is split across items.
    [InlineData(16, 20, 24)]
    [InlineData(3, 12, 2)]
    public void PagedAttentionDecode_matches_attention_over_a_contiguous_copy(int blockSize, int headDim, int heads)
    {
        const int numBlocks = 24, maxBlocks = 6;
        var layout = new KvLayout(blockSize, NumKvHeads: 2, headDim);
        var rng = new Random((blockSize * 100) + headDim);
        var keyCache = RandomArray(rng, numBlocks * layout.BlockStride);
        var valueCache = RandomArray(rng, numBlocks * layout.BlockStride);
        // Scores of a few units so the softmax is far from uniform and the running max moves.
        for (var i = 0; i < keyCache.Length; i++)
            keyCache[i] *= 3;
        int[][] tables =
        [
            [17, 4, 9, 21, 2],       // partial last block
            [17, 4, 11],             // shares sequence 0's first two blocks, then its own partial block
            [6],                     // one token
            [13, 0],                 // exactly full blocks
        ];
        int[] lengths = [(4 * blockSize) + 3, (2 * blockSize) + 1, 1, 2 * blockSize];
        var blockTables = new int[tables.Length * maxBlocks];
        Array.Fill(blockTables, -1); // padding the kernel must never read
        for (var s = 0; s < tables.Length; s++)
            tables[s].CopyTo(blockTables, s * maxBlocks);
        var queries = RandomArray(rng, tables.Length * heads * headDim);
        var output = new float[queries.Length];

        ((IKernels<Memory<float>>)_kernels).PagedAttentionDecode(
            queries, keyCache, valueCache, output, blockTables, maxBlocks, lengths, heads, layout);

        var expected = new double[output.Length];
        for (var s = 0; s < tables.Length; s++)
        {
            // The sequence's keys and values gathered into contiguous [length, kvHeads, headDim] arrays.
            var keys = new float[lengths[s] * layout.SlotStride];
            var values = new float[lengths[s] * layout.SlotStride];
            for (var t = 0; t < lengths[s]; t++)
            {
                var slot = (tables[s][t / blockSize] * blockSize) + (t % blockSize);
                for (var h = 0; h < layout.NumKvHeads; h++)
                {
                    Array.Copy(keyCache, layout.Offset(slot, h), keys, (t * layout.SlotStride) + (h * headDim), headDim);
                    Array.Copy(valueCache, layout.Offset(slot, h), values, (t * layout.SlotStride) + (h * headDim), headDim);
                }
            }
            for (var h = 0; h < heads; h++)
            {
                var kvHead = h / (heads / layout.NumKvHeads);
                var q = ((s * heads) + h) * headDim;
                var scores = new double[lengths[s]];
                for (var t = 0; t < lengths[s]; t++)
                {
                    for (var d = 0; d < headDim; d++)
                        scores[t] += (double)queries[q + d] * keys[(t * layout.SlotStride) + (kvHead * headDim) + d];
                    scores[t] /= Math.Sqrt(headDim);
                }
                var max = scores.Max();
                var weights = scores.Select(x => Math.Exp(x - max)).ToArray();
                var sum = weights.Sum();
                for (var t = 0; t < lengths[s]; t++)
                {
                    for (var d = 0; d < headDim; d++)
                        expected[q + d] += weights[t] / sum * values[(t * layout.SlotStride) + (kvHead * headDim) + d];
                }
            }
        }
        Close(expected, output);

        // The two sequences sharing blocks differ only by their own tail: if they had the same length and blocks the
        // kernel would give the same result, so a different answer shows the tail was read.
        Assert.False(output.AsSpan(0, heads * headDim).SequenceEqual(output.AsSpan(heads * headDim, heads * headDim)));
    }

    [Fact]
    public void ContiguousAttentionDecode_gives_what_the_paged_kernel_gives_over_the_same_tokens()
    {
        // The benchmarks' baseline for the paged kernel's indirection must compute the same thing.
        const int heads = 8, blockSize = 4, capacity = 13, maxBlocks = 4;
        var layout = new KvLayout(blockSize, NumKvHeads: 2, HeadDim: 20);
        var rng = new Random(31);
        int[] lengths = [13, 6, 1];
        int[][] tables = [[9, 2, 7, 0], [4, 8], [1]];
        var keyCache = RandomArray(rng, 10 * layout.BlockStride);
        var valueCache = RandomArray(rng, 10 * layout.BlockStride);
        var blockTables = new int[lengths.Length * maxBlocks];
        var keys = new float[lengths.Length * layout.NumKvHeads * capacity * layout.HeadDim];
        var values = new float[keys.Length];
        for (var s = 0; s < lengths.Length; s++)
        {
            tables[s].CopyTo(blockTables, s * maxBlocks);
            for (var t = 0; t < lengths[s]; t++)
            {
                var slot = (tables[s][t / blockSize] * blockSize) + (t % blockSize);
                for (var h = 0; h < layout.NumKvHeads; h++)
                {
                    var to = ((((s * layout.NumKvHeads) + h) * capacity) + t) * layout.HeadDim;
                    Array.Copy(keyCache, layout.Offset(slot, h), keys, to, layout.HeadDim);
                    Array.Copy(valueCache, layout.Offset(slot, h), values, to, layout.HeadDim);
                }
            }
        }
        var queries = RandomArray(rng, lengths.Length * heads * layout.HeadDim);
        var paged = new float[queries.Length];
        var contiguous = new float[queries.Length];

        _kernels.PagedAttentionDecode(queries, keyCache, valueCache, paged, blockTables, maxBlocks, lengths, heads, layout);
        _kernels.ContiguousAttentionDecode(queries, keys, values, contiguous, lengths, capacity, heads, layout);

        Assert.Equal(paged, contiguous);
    }

    [Fact]
    public void PagedAttentionDecode_rejects_a_length_beyond_the_block_table()
    {
        var layout = new KvLayout(5, 2, 16);
        var cache = new float[4 * layout.BlockStride];
        var q = new float[8 * 16];

        Assert.Throws<ArgumentOutOfRangeException>(() =>
            _kernels.PagedAttentionDecode(q, cache, cache, new float[q.Length], [0, 1], 2, [11], 8, layout));
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            _kernels.PagedAttentionDecode(q, cache, cache, new float[q.Length], [0, 4], 2, [10], 8, layout));
    }

    [Fact]
    public void Hot_kernels_allocate_nothing_on_the_calling_thread()
    {
        var layout = new KvLayout(16, 2, 24);
        var rng = new Random(10);
        var w = RandomArray(rng, 64 * 67);
        var x = RandomArray(rng, 67);
        var y = new float[64];
        var cache = RandomArray(rng, 4 * layout.BlockStride);
        var q = RandomArray(rng, 8 * 24);
        var o = new float[q.Length];
        int[] table = [2, 0, 3];
        int[] length = [40];
        void Step()
        {
            _kernels.MatVec(w, x, y, 64, 67);
            _kernels.PagedAttentionDecode(q, cache, cache, o, table, 3, length, 8, layout);
        }
        Step();

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 20; i++)
            Step();

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
