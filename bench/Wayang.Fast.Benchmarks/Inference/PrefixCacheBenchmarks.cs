using BenchmarkDotNet.Attributes;
using Wayang.Fast.Inference.Engine.Kernels;
using Wayang.Fast.Inference.Engine.KvCache;
using Wayang.Fast.Inference.Engine.Model;
using Wayang.Fast.Inference.Engine.Sampling;
using Wayang.Fast.Inference.Engine.Scheduling;

namespace Wayang.Fast.Benchmarks.Inference;

// Issue 8: time to first token for a request whose 512-token prompt prefix is already in the KV cache, against the same
// request with nothing cached. Each operation is Submit + Step() until the first token arrives (MaxTokens = 1, so that
// step also finishes the request and frees its blocks): the whole admission path, prefill and sampling included.
//
//   Cached:   a scheduler whose cache has prefix caching on and was warmed at setup by a request with the same 512-token
//             prefix and a different 8-token tail. The prefix's 32 full blocks are reused, only the 8 new tokens are
//             prefilled (attending over all 520).
//   Uncached: the baseline; the same request through a second scheduler whose cache has prefix caching off, i.e. what a
//             fresh cache costs every time (all 520 tokens prefilled), without allocating a cache per operation.
// The two schedulers have their own LlamaForward (own K/V buffers) over one loaded model, so the uncached runs cannot
// overwrite the K/V the cached scheduler's blocks hold. Setup checks both give the same first token and that the cached
// request hit all 512 prefix tokens.
//
// Model: "mid" (BenchModel.Mid, ~11M parameters) keeps the uncached prefill well under a second on 2 cores;
// "realistic" (the throughput benchmark's ~89M-parameter model) is the absolute number on the bigger shape.
[MemoryDiagnoser]
[Config(typeof(ShortJobConfig))]
public class PrefixCacheBenchmarks
{
    public const int PrefixTokens = 512;
    public const int NewTokens = 8;
    private const int BlockSize = 16;
    private const int NumBlocks = 128;

    private BenchModelFile _file = null!;
    private CpuKernels _kernels = null!;
    private PagedKvCache _cachedKv = null!;
    private BatchScheduler _cached = null!;
    private BatchScheduler _uncached = null!;
    private GenerationRequest _request = null!;

    [Params("mid", "realistic")]
    public string Model { get; set; } = "mid";

    [GlobalSetup]
    public void Setup()
    {
        _file = new BenchModelFile(BenchModel.ByName(Model));
        var model = LlamaModel.Load(_file.Path);
        _kernels = new CpuKernels(Environment.ProcessorCount);
        var options = new SchedulerOptions { MaxSequences = 4, MaxBatchedTokens = 2048, EosTokenId = null };
        _cachedKv = new PagedKvCache(new KvCacheOptions { NumBlocks = NumBlocks, BlockSize = BlockSize, EnablePrefixCaching = true });
        _cached = new BatchScheduler(new LlamaForward(model, _kernels, NumBlocks, BlockSize), _cachedKv, options);
        var uncachedKv = new PagedKvCache(new KvCacheOptions { NumBlocks = NumBlocks, BlockSize = BlockSize, EnablePrefixCaching = false });
        _uncached = new BatchScheduler(new LlamaForward(model, _kernels, NumBlocks, BlockSize), uncachedKv, options);

        var prompts = BenchModel.DistinctPrompts(3, PrefixTokens + NewTokens);
        var prefix = prompts[0].AsSpan(0, PrefixTokens).ToArray();
        int[] warm = [.. prefix, .. prompts[1].AsSpan(PrefixTokens, NewTokens)];
        int[] measured = [.. prefix, .. prompts[2].AsSpan(PrefixTokens, NewTokens)];
        var greedy = new SamplerOptions { Temperature = 0 };
        _request = new GenerationRequest { PromptTokens = measured, MaxTokens = 1, Sampler = greedy };

        FirstToken(_cached, new GenerationRequest { PromptTokens = warm, MaxTokens = 1, Sampler = greedy });
        var before = _cachedKv.GetMetrics().PrefixHitTokens;
        var cached = Cached();
        var hit = _cachedKv.GetMetrics().PrefixHitTokens - before;
        if (hit != PrefixTokens)
            throw new InvalidOperationException($"the cached request reused {hit} prompt tokens, expected {PrefixTokens}");
        var uncached = Uncached();
        if (cached != uncached)
            throw new InvalidOperationException($"cached and uncached prefills disagree on the first token ({cached} vs {uncached})");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _kernels.Dispose();
        _file.Dispose();
    }

    [Benchmark]
    public int Cached() => FirstToken(_cached, _request);

    [Benchmark(Baseline = true)]
    public int Uncached() => FirstToken(_uncached, _request);

    private static int FirstToken(BatchScheduler scheduler, GenerationRequest request)
    {
        var reader = scheduler.Submit(request);
        int token;
        while (!reader.TryRead(out token))
            scheduler.Step();
        while (scheduler.HasWork)
            scheduler.Step();
        return token;
    }
}
