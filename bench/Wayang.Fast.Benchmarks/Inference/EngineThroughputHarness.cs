using System.Diagnostics;
using LLama;
using LLama.Common;
using LLama.Native;
using Wayang.Fast.Inference.Engine.Kernels;
using Wayang.Fast.Inference.Engine.KvCache;
using Wayang.Fast.Inference.Engine.Model;
using Wayang.Fast.Inference.Engine.Sampling;
using Wayang.Fast.Inference.Engine.Scheduling;

namespace Wayang.Fast.Benchmarks.Inference;

// One model file loaded by both engines, and the two generation loops the throughput benchmark compares. Both do the
// same work per run: n sequences, each a distinct prompt of PromptTokens tokens, each generating exactly
// GeneratedTokens tokens greedily (no EOS stop), on the same threads.
//
//   Ours: BatchScheduler with MaxSequences = n over LlamaForward + CpuKernels(threads), all n requests submitted at once
//   and Step() called until done (step 1 admits and prefills every prompt, whole prompt per sequence, and samples each
//   first token; every later step decodes the n sequences as one batch).
//   llama.cpp: LLamaSharp's raw API, one context with n sequences (SeqMax = n, a KV stream per sequence as our adapter
//   configures it), one llama_decode carrying all n prompts, then one llama_decode per step carrying the n next tokens,
//   greedy as an argmax over each sequence's logits (cheaper than a sampler chain; ours samples greedily too).
//
// Sequential decoding is the n = 1 case: n x (the n = 1 time) is what serving the n requests one after another costs,
// so tokens/s at n over tokens/s at 1 is the batching gain.
public sealed class EngineThroughputHarness : IDisposable
{
    public const int PromptTokens = 8;
    public const int GeneratedTokens = 32;
    // Per-sequence KV room in both engines: prompt plus generated, rounded up to whole 16-token blocks.
    private const int TokensPerSequence = 64;
    private const int BlockSize = 16;

    private readonly BenchModelFile _file;
    private readonly CpuKernels _kernels;
    private readonly LlamaForward _forward;
    private readonly PagedKvCache _cache;
    private readonly LLamaWeights _weights;
    private readonly int[][] _prompts;
    private readonly SamplerOptions _greedy = new() { Temperature = 0 };
    private readonly LLamaBatch _batch = new();
    private readonly ModelParams _llamaParams;
    private BatchScheduler? _scheduler;
    private LLamaContext? _context;
    private int[] _next = [];

    // llama.cpp logs every tensor and graph it builds; only its warnings and errors are worth a line here.
    static EngineThroughputHarness() =>
        NativeLogConfig.llama_log_set((level, message) =>
        {
            if (level is LLamaLogLevel.Warning or LLamaLogLevel.Error)
                Console.Error.Write(message);
        });

    public EngineThroughputHarness(int maxSequences, int threads)
    {
        MaxSequences = maxSequences;
        Threads = threads;
        _file = new BenchModelFile(BenchModel.Realistic);
        try
        {
            Model = LlamaModel.Load(_file.Path);
            _kernels = new CpuKernels(threads);
            var blocks = maxSequences * (TokensPerSequence / BlockSize);
            _forward = new LlamaForward(Model, _kernels, blocks, BlockSize);
            // No prefix caching: every prompt is distinct and llama.cpp keeps nothing across runs either, so this keeps
            // the runs of a benchmark independent of each other.
            _cache = new PagedKvCache(new KvCacheOptions { NumBlocks = blocks, BlockSize = BlockSize, EnablePrefixCaching = false });
            _llamaParams = new ModelParams(_file.Path)
            {
                GpuLayerCount = 0,
                Threads = threads,
                BatchThreads = threads,
                // As our adapter runs it (a KV stream per sequence), otherwise llama.cpp's defaults: f16 K/V (ours is f32;
                // at 40 tokens a sequence the K/V is ~0.2% of the bytes a step reads) and flash attention on auto.
                KVUnified = false,
            };
            _weights = LLamaWeights.LoadFromFile(_llamaParams);
            _prompts = BenchModel.DistinctPrompts(maxSequences, PromptTokens);
        }
        catch
        {
            _file.Dispose();
            throw;
        }
        Prepare(maxSequences);
    }

    public int MaxSequences { get; }

    public int Threads { get; }

    public int Sequences { get; private set; }

    public LlamaModel Model { get; }

    // Each sequence's first generated token from the latest run of each engine (a cheap check that both run one model).
    public int[] GollekFirstTokens { get; private set; } = [];

    public int[] LlamaCppFirstTokens { get; private set; } = [];

    // Sizes both engines for n concurrent sequences: a scheduler with MaxSequences = n, and a llama.cpp context with
    // SeqMax = n and room for n sequences (its batch holds all n prompts at once). llama.cpp pads each sequence's KV
    // stream to 256 cells whatever is asked ("n_ctx is not divisible by n_seq_max" on stderr is that rounding); the
    // smallest context is asked for, which is what favours it most (a server would give each sequence thousands).
    public void Prepare(int sequences)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(sequences, MaxSequences);
        Sequences = sequences;
        _scheduler = new BatchScheduler(_forward, _cache, new SchedulerOptions
        {
            MaxSequences = sequences,
            MaxBatchedTokens = Math.Max(2048, sequences * PromptTokens),
            EosTokenId = null,
        });
        _context?.Dispose();
        _llamaParams.SeqMax = (uint)sequences;
        _llamaParams.ContextSize = (uint)(sequences * TokensPerSequence);
        var batch = (uint)Math.Max(512, sequences * PromptTokens);
        _llamaParams.BatchSize = batch;
        _llamaParams.UBatchSize = batch;
        _context = _weights.CreateContext(_llamaParams);
        _next = new int[sequences];
        GollekFirstTokens = new int[sequences];
        LlamaCppFirstTokens = new int[sequences];
    }

    // Generates GeneratedTokens for each of the prepared sequences; returns the tokens generated.
    // firstStep gets the time of the step that admitted and prefilled the prompts (and sampled the first tokens).
    public int RunGollek(out TimeSpan firstStep)
    {
        var scheduler = _scheduler!;
        var n = Sequences;
        var readers = new System.Threading.Channels.ChannelReader<int>[n];
        var start = Stopwatch.GetTimestamp();
        for (var s = 0; s < n; s++)
            readers[s] = scheduler.Submit(new GenerationRequest { PromptTokens = _prompts[s], MaxTokens = GeneratedTokens, Sampler = _greedy });
        scheduler.Step();
        firstStep = Stopwatch.GetElapsedTime(start);
        while (scheduler.HasWork)
            scheduler.Step();
        var total = 0;
        for (var s = 0; s < n; s++)
        {
            var first = true;
            while (readers[s].TryRead(out var token))
            {
                if (first)
                    GollekFirstTokens[s] = token;
                first = false;
                total++;
            }
        }
        if (total != n * GeneratedTokens)
            throw new InvalidOperationException($"our engine generated {total} tokens, expected {n * GeneratedTokens}");
        // The cache holds every sequence whole, so nothing may have been recomputed.
        if (scheduler.GetMetrics().Preemptions != 0)
            throw new InvalidOperationException("the scheduler preempted a sequence; the benchmark's cache is too small");
        return total;
    }

    public int RunLlamaCpp(out TimeSpan firstStep)
    {
        var context = _context!.NativeHandle;
        var n = Sequences;
        var start = Stopwatch.GetTimestamp();
        context.MemoryClear(true);
        _batch.Clear();
        for (var s = 0; s < n; s++)
        {
            var prompt = _prompts[s];
            for (var j = 0; j < prompt.Length; j++)
                _batch.Add(prompt[j], j, (LLamaSeqId)s, j == prompt.Length - 1);
        }
        Decode(context);
        for (var s = 0; s < n; s++)
        {
            _next[s] = ArgMax(context.GetLogitsIth((s * PromptTokens) + PromptTokens - 1));
            LlamaCppFirstTokens[s] = _next[s];
        }
        firstStep = Stopwatch.GetElapsedTime(start);
        var total = n;
        for (var step = 1; step < GeneratedTokens; step++)
        {
            _batch.Clear();
            var position = PromptTokens + step - 1;
            for (var s = 0; s < n; s++)
                _batch.Add(_next[s], position, (LLamaSeqId)s, true);
            Decode(context);
            for (var s = 0; s < n; s++)
                _next[s] = ArgMax(context.GetLogitsIth(s));
            total += n;
        }
        return total;
    }

    private void Decode(SafeLLamaContextHandle context)
    {
        var result = context.Decode(_batch);
        if (result != DecodeResult.Ok)
            throw new InvalidOperationException($"llama_decode failed: {result}");
    }

    private static int ArgMax(ReadOnlySpan<float> logits)
    {
        var best = 0;
        for (var i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
                best = i;
        }
        return best;
    }

    public void Dispose()
    {
        _context?.Dispose();
        _weights.Dispose();
        _kernels.Dispose();
        _file.Dispose();
    }
}
