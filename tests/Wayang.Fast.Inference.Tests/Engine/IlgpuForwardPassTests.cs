using System.Threading.Channels;
using ILGPU;
using Wayang.Fast.Inference.Engine.Kernels;
using Wayang.Fast.Inference.Engine.KvCache;
using Wayang.Fast.Inference.Engine.Model;
using Wayang.Fast.Inference.Engine.Sampling;
using Wayang.Fast.Inference.Engine.Scheduling;
using Wayang.Fast.Inference.Tests.Gguf;
using Wayang.Fast.Inference.Tests.Kernels;
using Xunit.Abstractions;

namespace Wayang.Fast.Inference.Tests.Engine;

// The whole forward pass on the ILGPU backend (ILGPU's CPU accelerator, which runs the same kernels as CUDA on an
// emulated grid) against the CPU backend on the tiny model: the same cache operations on both sides, so only the
// kernels' summation order differs. ForwardPassTests ties the CPU side to llama.cpp. Few steps: the emulated grid is slow.
public sealed class IlgpuForwardPassTests : IClassFixture<IlgpuKernelsFixture>, IDisposable
{
    // Relative error per logit against max(|expected|, Floor): logits near zero are compared absolutely at Floor * Tolerance.
    private const float Tolerance = 1e-4f;
    private const float Floor = 0.1f;
    private const int BlockSize = 4;
    private static readonly SamplerOptions Greedy = new() { Temperature = 0f };

    private readonly IlgpuKernels _gpu;
    private readonly ITestOutputHelper _output;
    private readonly TempDirectory _dir = new("ilgpu-forward");
    private readonly LlamaModel _model;
    private readonly CpuKernels _cpu = new(2);

    public IlgpuForwardPassTests(IlgpuKernelsFixture fixture, ITestOutputHelper output)
    {
        _gpu = fixture.Kernels;
        _output = output;
        string path = TinyGgufWriter.Write(Path.Combine(_dir.Path, "tiny.gguf"), new TinyGgufOptions { HeadCountKv = 2 });
        _model = LlamaModel.Load(path);
    }

    public void Dispose()
    {
        _cpu.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public void Prefill_and_batched_decode_with_shared_and_forked_blocks_give_the_cpu_backends_logits()
    {
        long before = _gpu.Memory.AllocatedBytes;
        using var cpu = new ForwardPassDriver(new LlamaForward(_model, _cpu, 32, BlockSize), 32, BlockSize);
        using var forward = new LlamaForward<ArrayView<float>>(_model, _gpu, _gpu.Memory, 32, BlockSize);
        using var gpu = new ForwardPassDriver(forward, 32, BlockSize);
        Assert.True(_gpu.Memory.AllocatedBytes > before, "weights, K/V and activations live on the accelerator");

        int[] first = [1, 270, 250, 260, 271, 275, 200, 101, 273, 262, 199];
        // Shares first's two full blocks (prefix caching), then differs.
        int[] second = [.. first[..(2 * BlockSize)], 30, 44, 55];
        int[] third = [1, 101, 273];
        float worst = 0;
        foreach (var (id, prompt) in new[] { (1L, first), (2L, second), (3L, third) })
        {
            float[] expected = cpu.Prefill(id, prompt);
            float[] actual = gpu.Prefill(id, prompt);
            Assert.Equal(id == 2 ? 2 * BlockSize : 0, gpu.LastCachedTokens);
            Assert.Equal(cpu.LastCachedTokens, gpu.LastCachedTokens);
            worst = Math.Max(worst, AssertClose(expected, actual));
        }

        // A fork shares sequence 1's partial last block: the first decode writes to it from both, a copy-on-write.
        cpu.Cache.Fork(1, 4);
        gpu.Cache.Fork(1, 4);
        long[] ids = [1, 2, 3, 4];
        int[] next = [274, 76, 30, 99];
        for (int step = 0; step < 3; step++)
        {
            float[] expected = cpu.Decode(ids, next);
            float[] actual = gpu.Decode(ids, next);
            worst = Math.Max(worst, AssertClose(expected, actual));
            next = [.. ids.Select((_, i) => Sampler.Greedy(expected.AsSpan(i * _model.Parameters.VocabSize, _model.Parameters.VocabSize)))];
        }
        Assert.True(cpu.Cache.GetBlockTable(1)[^1] != cpu.Cache.GetBlockTable(4)[^1], "the fork's last block was copied");
        _output.WriteLine($"max relative error {worst:E2} (floor {Floor})");
    }

    [Fact]
    public void Disposing_the_forward_pass_frees_its_device_buffers()
    {
        long before = _gpu.Memory.AllocatedBytes;
        using var side = new ForwardPassDriver(new LlamaForward<ArrayView<float>>(_model, _gpu, _gpu.Memory, 8, BlockSize), 8, BlockSize);
        side.Prefill(1, [1, 270, 250]);
        ((IDisposable)side.Forward).Dispose();
        Assert.Equal(before, _gpu.Memory.AllocatedBytes);
        Assert.Throws<ObjectDisposedException>(() => side.Decode([1], [5]));
    }

    [Fact]
    public void The_scheduler_on_ilgpu_gives_the_cpu_backends_greedy_tokens_for_concurrent_requests()
    {
        int[][] prompts = [[1, 270, 250, 260, 271, 275, 200], [1, 270, 250, 260, 271, 30], [1, 101, 273, 262, 199, 30]];
        var expected = Run(new LlamaForward(_model, _cpu, 32, BlockSize), prompts);
        using var forward = new LlamaForward<ArrayView<float>>(_model, _gpu, _gpu.Memory, 32, BlockSize);
        var actual = Run(forward, prompts);
        _output.WriteLine(string.Join(" | ", actual.Select(t => string.Join(' ', t))));
        Assert.Equal(expected, actual);
    }

    private static List<int>[] Run(IForwardPass forward, int[][] prompts)
    {
        var cache = new PagedKvCache(new KvCacheOptions { NumBlocks = 32, BlockSize = BlockSize });
        // A small token budget, so prompts are prefilled in chunks alongside the others' decodes.
        var scheduler = new BatchScheduler(forward, cache, new SchedulerOptions { MaxBatchedTokens = 8, MaxSequences = 4 });
        var readers = prompts.Select(p => scheduler.Submit(new GenerationRequest { PromptTokens = p, MaxTokens = 6, Sampler = Greedy })).ToArray();
        for (int i = 0; i < 200 && scheduler.HasWork; i++)
            scheduler.Step();
        Assert.False(scheduler.HasWork);
        return [.. readers.Select(Drain)];
    }

    private static List<int> Drain(ChannelReader<int> reader)
    {
        var tokens = new List<int>();
        while (reader.TryRead(out int token))
            tokens.Add(token);
        return tokens;
    }

    private static float AssertClose(float[] expected, float[] actual)
    {
        float max = ForwardPassDriver.MaxRelativeError(expected, actual, Floor);
        Assert.True(max <= Tolerance, $"max relative error {max} over {Tolerance}");
        return max;
    }
}
