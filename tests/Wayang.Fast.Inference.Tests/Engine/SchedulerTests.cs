using System.Threading.Channels;
using Wayang.Fast.Inference.Engine.Gguf;
using Wayang.Fast.Inference.Engine.Kernels;
using Wayang.Fast.Inference.Engine.KvCache;
using Wayang.Fast.Inference.Engine.Model;
using Wayang.Fast.Inference.Engine.Sampling;
using Wayang.Fast.Inference.Engine.Scheduling;
using Wayang.Fast.Inference.Tests.Gguf;

namespace Wayang.Fast.Inference.Tests.Engine;

// The continuous batching scheduler (issue 8) on the tiny model, greedy, driven step by step so every assertion is
// about a known point in the schedule. Greedy output is the oracle: batching, preemption and recompute must not change it.
public sealed class SchedulerTests : IDisposable
{
    private const int BlockSize = 4;
    // Far more steps than any test needs; reaching it means the scheduler stopped making progress.
    private const int StepLimit = 1000;
    private static readonly SamplerOptions Greedy = new() { Temperature = 0f };

    private readonly TempDirectory _dir = new("scheduler");
    private readonly LlamaModel _model;
    private readonly CpuKernels _kernels = new(2);

    public SchedulerTests()
    {
        string path = TinyGgufWriter.Write(Path.Combine(_dir.Path, "tiny.gguf"), new TinyGgufOptions { HeadCountKv = 2 });
        using var file = GgufFile.Open(path);
        _model = LlamaModel.Load(file);
    }

    public void Dispose()
    {
        _kernels.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public void Requests_batched_together_give_the_tokens_each_gives_alone()
    {
        int[][] prompts = [[1, 270, 250, 260, 271, 275, 200], [1, 270, 271, 272], [1, 101, 273, 262, 199, 30]];
        var (scheduler, _) = Create(numBlocks: 64);
        var readers = prompts.Select(p => scheduler.Submit(Request(p, 8))).ToArray();
        RunToCompletion(scheduler);

        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(Alone(prompts[i], 8), Drain(readers[i]));
        var metrics = scheduler.GetMetrics();
        Assert.Equal(3 * 8, metrics.TokensGenerated);
        Assert.Equal(0, metrics.Running);
        Assert.Equal(0, metrics.Waiting);
    }

    private (BatchScheduler Scheduler, PagedKvCache Cache) Create(int numBlocks, int maxBatchedTokens = 256)
    {
        var forward = new LlamaForward(_model, _kernels, numBlocks, BlockSize);
        var cache = new PagedKvCache(new KvCacheOptions { NumBlocks = numBlocks, BlockSize = BlockSize });
        // No EOS: every request runs to its max tokens, so the schedules the tests reason about are fixed.
        var scheduler = new BatchScheduler(forward, cache, new SchedulerOptions { MaxBatchedTokens = maxBatchedTokens, MaxSequences = 8 });
        return (scheduler, cache);
    }

    private static GenerationRequest Request(int[] prompt, int maxTokens, int priority = 0, CancellationToken cancellation = default) => new()
    {
        PromptTokens = prompt,
        MaxTokens = maxTokens,
        Sampler = Greedy,
        Priority = priority,
        CancellationToken = cancellation,
    };

    private List<int> Alone(int[] prompt, int maxTokens)
    {
        var (scheduler, _) = Create(numBlocks: 64);
        var reader = scheduler.Submit(Request(prompt, maxTokens));
        RunToCompletion(scheduler);
        return Drain(reader);
    }

    private static void RunToCompletion(BatchScheduler scheduler)
    {
        for (int i = 0; i < StepLimit && scheduler.HasWork; i++)
            scheduler.Step();
        Assert.False(scheduler.HasWork, $"work left after {StepLimit} steps");
    }

    private static List<int> Drain(ChannelReader<int> reader)
    {
        var tokens = new List<int>();
        while (reader.TryRead(out int token))
            tokens.Add(token);
        return tokens;
    }
}
