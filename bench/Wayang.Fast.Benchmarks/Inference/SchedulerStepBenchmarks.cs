using System.Threading.Channels;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using Wayang.Fast.Inference.Engine.Kernels;
using Wayang.Fast.Inference.Engine.KvCache;
using Wayang.Fast.Inference.Engine.Model;
using Wayang.Fast.Inference.Engine.Sampling;
using Wayang.Fast.Inference.Engine.Scheduling;
using Wayang.Fast.Inference.Tests.Gguf;

namespace Wayang.Fast.Benchmarks.Inference;

// Issue 8: one steady-state decode Step() of BatchScheduler with 16 running sequences, on the tiny test model
// (TinyGgufWriter's defaults: 64 wide, 2 blocks), so the kernels are cheap and the scheduler's own time and allocations
// show. Allocated is per step.
//
// The sequences must never finish (nor be preempted) while measured, and IterationSetup would distort an operation this
// small, so each has a MaxTokens larger than every step the job can run, and the cache holds all 16 at that length.
// That bounds the invocations: the job fixes them (InvocationsPerIteration, no pilot; 1 launch, 2 warmups, 8
// iterations, like ShortJobConfig), and Setup checks the room covers them with a margin; Cleanup throws if any sequence
// stopped running. Each step appends one token per sequence, so the context grows from 9 to ~1300 tokens over a run
// (the attention share of Mean grows with it; the allocation per step does not).
//
// The benchmark method also drains the 16 channels (TryRead until empty: one token each), counted as part of the
// operation: that is the cost a consumer adds per step, and draining keeps every channel's queue from growing (its
// segment is reused as a ring once emptied, so the writes after the first do not allocate).
//
// Allocated is 0: the forward pass grows its block-table array alone (by doubling) when the longest sequence crosses
// into a new KV block, and a sequence's token list is sized for prompt plus max tokens. Before those two changes this
// benchmark measured 31.5 KB per step (bench/RESULTS.md).
[MemoryDiagnoser]
[Config(typeof(SchedulerStepJobConfig))]
public class SchedulerStepBenchmarks
{
    public const int Sequences = 16;
    public const int InvocationsPerIteration = 128;
    private const int PromptTokens = 8;
    private const int BlockSize = 16;
    // Per-sequence room: prompt plus every step of a run (jitting, 2 warmups and 8 iterations of 128, ~1300) with a
    // margin for a dry or longer job.
    private const int TokensPerSequence = 2048;

    private BenchModelFile _file = null!;
    private CpuKernels _kernels = null!;
    private BatchScheduler _scheduler = null!;
    private ChannelReader<int>[] _readers = null!;

    [GlobalSetup]
    public void Setup()
    {
        _file = new BenchModelFile(new TinyGgufOptions());
        var model = LlamaModel.Load(_file.Path);
        _kernels = new CpuKernels(Environment.ProcessorCount);
        var blocks = Sequences * (TokensPerSequence / BlockSize);
        var cache = new PagedKvCache(new KvCacheOptions
        {
            NumBlocks = blocks,
            BlockSize = BlockSize,
            EnablePrefixCaching = false,
            MaxTokensPerSequence = TokensPerSequence,
        });
        _scheduler = new BatchScheduler(new LlamaForward(model, _kernels, blocks, BlockSize), cache,
            new SchedulerOptions { MaxSequences = Sequences, MaxBatchedTokens = 2048, EosTokenId = null });
        // The most a sequence can generate: its K/V holds prompt + MaxTokens - 1 tokens.
        var maxTokens = TokensPerSequence - PromptTokens + 1;
        var planned = (2 + 8 + 2) * InvocationsPerIteration;
        if (maxTokens < planned)
            throw new InvalidOperationException($"{maxTokens} tokens a sequence cannot cover the ~{planned} steps a run takes");
        var greedy = new SamplerOptions { Temperature = 0 };
        var prompts = BenchModel.DistinctPrompts(Sequences, PromptTokens);
        _readers = new ChannelReader<int>[Sequences];
        for (var i = 0; i < Sequences; i++)
            _readers[i] = _scheduler.Submit(new GenerationRequest { PromptTokens = prompts[i], MaxTokens = maxTokens, Sampler = greedy });
        // Until every sequence has its first token (then all are decoding): one step admits and prefills all 16.
        var started = new bool[Sequences];
        while (started.Contains(false))
        {
            _scheduler.Step();
            for (var i = 0; i < Sequences; i++)
            {
                while (_readers[i].TryRead(out _))
                    started[i] = true;
            }
        }
        var metrics = _scheduler.GetMetrics();
        if (metrics.Running != Sequences || metrics.Waiting != 0)
            throw new InvalidOperationException($"{metrics.Running} running and {metrics.Waiting} waiting after setup, expected {Sequences} running");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        var metrics = _scheduler.GetMetrics();
        _kernels.Dispose();
        _file.Dispose();
        if (metrics.Running != Sequences || metrics.Preemptions != 0)
            throw new InvalidOperationException($"{metrics.Running} sequences running and {metrics.Preemptions} preemptions at the end: the measured steps were not all {Sequences}-sequence decodes");
    }

    // One decode step of the 16, then their tokens read.
    [Benchmark]
    public int Step() => _scheduler.Step().Decoded + Drain();

    private int Drain()
    {
        var read = 0;
        foreach (var reader in _readers)
        {
            while (reader.TryRead(out _))
                read++;
        }
        return read;
    }
}

// ShortJobConfig's launch, warmup and iteration counts with a fixed invocation count, so the steps a run takes are known
// (see SchedulerStepBenchmarks); a job named on the command line replaces it.
internal sealed class SchedulerStepJobConfig : ManualConfig
{
    public SchedulerStepJobConfig()
    {
        if (!BenchJobs.CommandLineHasJob)
        {
            AddJob(Job.Default.WithLaunchCount(1).WithWarmupCount(2).WithIterationCount(8)
                .WithInvocationCount(SchedulerStepBenchmarks.InvocationsPerIteration).WithUnrollFactor(1));
        }
    }
}
