using ILGPU;
using ILGPU.Runtime;
using Wayang.Fast.Inference.Engine.Kernels;
using Wayang.Fast.Inference.Engine.KvCache;
using Xunit.Abstractions;
using static Wayang.Fast.Inference.Tests.Kernels.KernelTestData;

namespace Wayang.Fast.Inference.Tests.Kernels;

// One accelerator for the class: creating a context and compiling the kernels is the slow part. ILGPU's CPU accelerator
// by default; WAYANG_ILGPU_DEVICE=cuda runs the same tests on the first CUDA device (and fails if there is none), which
// is how a machine with a GPU checks the CUDA path against the CPU kernels.
public sealed class IlgpuKernelsFixture : IDisposable
{
    public IlgpuKernels Kernels { get; } = Environment.GetEnvironmentVariable("WAYANG_ILGPU_DEVICE") is "cuda"
        ? IlgpuKernels.TryCreateCuda() ?? throw new InvalidOperationException("WAYANG_ILGPU_DEVICE=cuda, but ILGPU finds no CUDA device.")
        : IlgpuKernels.CreateCpu();

    public void Dispose() => Kernels.Dispose();
}

// Every ILGPU kernel, on ILGPU's CPU accelerator (the emulated thread grid), against CpuKernels (tested against scalar
// references in CpuKernelTests) on the same seeded random inputs: odd sizes, grouped-query heads, partial last blocks
// and blocks shared between sequences. Each test logs its largest relative error.
public sealed class IlgpuKernelTests(IlgpuKernelsFixture fixture, ITestOutputHelper output) : IClassFixture<IlgpuKernelsFixture>, IDisposable
{
    private const double Tolerance = 1e-4;
    private readonly IlgpuKernels _gpu = fixture.Kernels;
    private readonly CpuKernels _cpu = new(threads: 1);
    private readonly List<MemoryBuffer1D<float, Stride1D.Dense>> _buffers = [];

    public void Dispose()
    {
        foreach (var buffer in _buffers)
            buffer.Dispose();
        _cpu.Dispose();
    }

    private ArrayView<float> Upload(float[] data)
    {
        var buffer = _gpu.Accelerator.Allocate1D(data);
        _buffers.Add(buffer);
        return buffer.View;
    }

    private static float[] Download(ArrayView<float> view) => view.GetAsArray();

    private void Close(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        var worst = 0.0;
        for (var i = 0; i < expected.Length; i++)
        {
            var error = Math.Abs((double)expected[i] - actual[i]) / Math.Max(1.0, Math.Abs(expected[i]));
            Assert.True(error <= Tolerance, $"[{i}]: expected {expected[i]}, got {actual[i]}");
            worst = Math.Max(worst, error);
        }
        output.WriteLine($"max relative error {worst:E2}");
    }

    [Theory]
    [InlineData(13, 67)]
    [InlineData(1, 1)]
    [InlineData(37, 130)]
    public void MatVec_matches_the_cpu_kernels(int rows, int cols)
    {
        var rng = new Random((rows * 1000) + cols);
        var w = RandomArray(rng, rows * cols);
        var x = RandomArray(rng, cols);
        var expected = new float[rows];
        var y = Upload(new float[rows]);

        _cpu.MatVec(w, x, expected, rows, cols);
        _gpu.MatVec(Upload(w), Upload(x), y, rows, cols);

        Close(expected, Download(y));
    }

    [Theory]
    [InlineData(5, 13, 67)]
    [InlineData(3, 33, 17)]
    public void MatMul_matches_the_cpu_kernels(int batch, int rows, int cols)
    {
        var rng = new Random(7);
        var w = RandomArray(rng, rows * cols);
        var x = RandomArray(rng, batch * cols);
        var expected = new float[batch * rows];
        var y = Upload(new float[batch * rows]);

        _cpu.MatMul(w, x, expected, batch, rows, cols);
        _gpu.MatMul(Upload(w), Upload(x), y, batch, rows, cols);

        Close(expected, Download(y));
    }

    [Fact]
    public void RmsNorm_matches_the_cpu_kernels_also_in_place()
    {
        const int batch = 3, dim = 67;
        const float eps = 1e-5f;
        var rng = new Random(3);
        var x = RandomArray(rng, batch * dim);
        var w = RandomArray(rng, dim);
        var expected = new float[batch * dim];
        CpuKernels.RmsNorm(x, w, expected, batch, dim, eps);

        var y = Upload(new float[batch * dim]);
        _gpu.RmsNorm(Upload(x), Upload(w), y, batch, dim, eps);
        Close(expected, Download(y));

        var inPlace = Upload(x);
        _gpu.RmsNorm(inPlace, Upload(w), inPlace, batch, dim, eps);
        Close(expected, Download(inPlace));
    }

    [Fact]
    public void SwiGlu_matches_the_cpu_kernels()
    {
        var rng = new Random(4);
        var gate = RandomArray(rng, 67).Select(g => g * 6).ToArray();
        var up = RandomArray(rng, 67);
        var expected = new float[67];
        CpuKernels.SwiGlu(gate, up, expected, 67);

        var y = Upload(new float[67]);
        _gpu.SwiGlu(Upload(gate), Upload(up), y, 67);

        Close(expected, Download(y));
    }

    [Theory]
    [InlineData(16, 16)]
    [InlineData(24, 16)]
    [InlineData(24, 24)]
    public void Rope_matches_the_cpu_kernels_and_recomputes_its_table_when_positions_change(int headDim, int ropeDim)
    {
        const int heads = 3;
        const float freqBase = 10000f;
        int[] positions = [3, 17, 1234];
        var rng = new Random(headDim + ropeDim);
        var x = RandomArray(rng, positions.Length * heads * headDim);

        // Twice with the same positions (the cached table), then with others (a fresh one).
        var expected = (float[])x.Clone();
        var device = Upload(x);
        foreach (var p in new[] { positions, positions, [40000, 0, 5] })
        {
            CpuKernels.Rope(expected, p, heads, headDim, ropeDim, freqBase);
            _gpu.Rope(device, p, heads, headDim, ropeDim, freqBase);
            Close(expected, Download(device));
        }
    }

    [Fact]
    public void Softmax_matches_the_cpu_kernels_for_large_logits()
    {
        const int batch = 3, length = 67;
        var rng = new Random(5);
        var x = RandomArray(rng, batch * length);
        for (var i = 0; i < x.Length; i++)
            x[i] = (x[i] * 50) + (i < length ? 1000 : 0);
        var expected = (float[])x.Clone();
        CpuKernels.Softmax(expected, batch, length);

        var device = Upload(x);
        _gpu.Softmax(device, batch, length);

        var actual = Download(device);
        Close(expected, actual);
        Assert.All(actual, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Add_matches_the_cpu_kernels()
    {
        var rng = new Random(6);
        var x = RandomArray(rng, 67);
        var y = RandomArray(rng, 67);
        var expected = (float[])x.Clone();
        CpuKernels.Add(expected, y, 67);

        var device = Upload(x);
        _gpu.Add(device, Upload(y), 67);

        Close(expected, Download(device));
    }

    [Fact]
    public void AppendKv_and_CopyBlocks_match_the_cpu_kernels()
    {
        var layout = new KvLayout(BlockSize: 5, NumKvHeads: 2, HeadDim: 24);
        const int blocks = 7;
        var rng = new Random(8);
        var keyCache = RandomArray(rng, blocks * layout.BlockStride);
        var valueCache = RandomArray(rng, blocks * layout.BlockStride);
        var deviceKeys = Upload(keyCache);
        var deviceValues = Upload(valueCache);
        // Scattered slots, a partial block and a padding token (-1); then a second, shorter call reusing the slot
        // buffer; then copy-on-write of two blocks and a divergent token in a copy.
        int[][] steps = [[12, 3, 34, -1, 20], [7]];
        foreach (var slots in steps)
        {
            var keys = RandomArray(rng, slots.Length * layout.SlotStride);
            var values = RandomArray(rng, slots.Length * layout.SlotStride);
            CpuKernels.AppendKv(keyCache, valueCache, keys, values, slots, layout);
            _gpu.AppendKv(deviceKeys, deviceValues, Upload(keys), Upload(values), slots, layout);
        }
        BlockCopy[] copies = [new(2, 5), new(0, 3)];
        CpuKernels.CopyBlocks(keyCache, valueCache, copies, layout);
        _gpu.CopyBlocks(deviceKeys, deviceValues, copies, layout);
        var key = RandomArray(rng, layout.SlotStride);
        var value = RandomArray(rng, layout.SlotStride);
        int[] divergent = [(5 * layout.BlockSize) + 3];
        CpuKernels.AppendKv(keyCache, valueCache, key, value, divergent, layout);
        _gpu.AppendKv(deviceKeys, deviceValues, Upload(key), Upload(value), divergent, layout);

        // Copies are exact.
        Assert.Equal(keyCache, Download(deviceKeys));
        Assert.Equal(valueCache, Download(deviceValues));
    }

    [Fact]
    public void AppendKv_rejects_a_slot_outside_the_cache()
    {
        var layout = new KvLayout(5, 2, 16);
        var cache = Upload(new float[2 * layout.BlockStride]);
        var token = Upload(new float[layout.SlotStride]);

        Assert.Throws<ArgumentOutOfRangeException>(() => _gpu.AppendKv(cache, cache, token, token, [10], layout));
    }

    [Theory]
    [InlineData(5, 16)]
    [InlineData(5, 24)]
    [InlineData(16, 16)]
    [InlineData(16, 24)]
    public void PagedAttentionDecode_matches_the_cpu_kernels(int blockSize, int headDim)
    {
        const int heads = 8, numBlocks = 24, maxBlocks = 6;
        var layout = new KvLayout(blockSize, NumKvHeads: 2, headDim);
        var rng = new Random((blockSize * 100) + headDim);
        var keyCache = RandomArray(rng, numBlocks * layout.BlockStride).Select(k => k * 3).ToArray();
        var valueCache = RandomArray(rng, numBlocks * layout.BlockStride);
        int[][] tables =
        [
            [17, 4, 9, 21, 2],       // partial last block
            [17, 4, 11],             // shares sequence 0's first two blocks, then its own partial block
            [6],                     // one token
            [13, 0],                 // exactly full blocks
            [],                      // nothing cached yet: zeros, as on the CPU
        ];
        int[] lengths = [(4 * blockSize) + 3, (2 * blockSize) + 1, 1, 2 * blockSize, 0];
        var blockTables = new int[tables.Length * maxBlocks];
        Array.Fill(blockTables, -1);
        for (var s = 0; s < tables.Length; s++)
            tables[s].CopyTo(blockTables, s * maxBlocks);
        var queries = RandomArray(rng, tables.Length * heads * headDim);
        var expected = new float[queries.Length];
        _cpu.PagedAttentionDecode(queries, keyCache, valueCache, expected, blockTables, maxBlocks, lengths, heads, layout);

        // The output starts as garbage: the kernel must not depend on it being zero.
        var result = Upload(RandomArray(rng, queries.Length));
        _gpu.PagedAttentionDecode(Upload(queries), Upload(keyCache), Upload(valueCache), result, blockTables, maxBlocks, lengths, heads, layout);

        Close(expected, Download(result));
    }

    [Fact]
    public void PagedAttentionDecode_rejects_a_length_beyond_the_block_table()
    {
        var layout = new KvLayout(5, 2, 16);
        var cache = Upload(new float[4 * layout.BlockStride]);
        var q = Upload(new float[8 * 16]);
        var o = Upload(new float[8 * 16]);

        Assert.Throws<ArgumentOutOfRangeException>(() => _gpu.PagedAttentionDecode(q, cache, cache, o, [0, 1], 2, [11], 8, layout));
        Assert.Throws<ArgumentOutOfRangeException>(() => _gpu.PagedAttentionDecode(q, cache, cache, o, [0, 4], 2, [10], 8, layout));
    }

    // The production entry point: CUDA where a device exists (never here), otherwise the CPU accelerator.
    [Fact]
    public void Create_falls_back_to_the_cpu_accelerator_without_cuda()
    {
        using var kernels = IlgpuKernels.Create();
        Assert.Contains(kernels.Accelerator.AcceleratorType, new[] { AcceleratorType.Cuda, AcceleratorType.CPU });
        using var x = kernels.Accelerator.Allocate1D(new float[] { 1, 2, 3 });
        using var y = kernels.Accelerator.Allocate1D(new float[] { 10, 20, 30 });

        kernels.Add(x.View, y.View, 3);

        Assert.Equal([11f, 22f, 33f], x.GetAsArray1D());
    }
}
