using System.Threading.Channels;
using ILGPU;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Engine.Gguf;
using Wayang.Fast.Inference.Engine.Kernels;
using Wayang.Fast.Inference.Engine.KvCache;
using Wayang.Fast.Inference.Engine.Model;
using Wayang.Fast.Inference.Engine.Scheduling;
using Wayang.Fast.Inference.Engine.Tokenization;
using Wayang.Fast.Inference.Providers;

namespace Wayang.Fast.Inference.Adapters.Gollek;

// One loaded GGUF model on our own engine: f32 weights, the forward pass with its K/V buffers, the paged KV cache's
// bookkeeping, the batching scheduler and the step loop that drives it. Callers submit token prompts and read sampled
// ids; everything about text (template, tokenizer, stop strings) stays on the caller's side, off the step loop.
internal sealed class GollekModel : ILocalModel
{
    private const int DefaultCacheTokensPerSequence = 4096;
    private const int DefaultBatchedTokens = 2048;

    private readonly string _provider;
    private readonly GollekBackend _backend;
    private readonly PagedKvCache _cache;
    private readonly BatchScheduler _scheduler;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private Exception? _failure;
    private int _disposed;

    private GollekModel(string provider, string name, GgufTokenizer tokenizer, LlamaModel model, GollekOptions options, GollekBackend backend, int contextLength, int numBlocks, int blockSize)
    {
        _provider = provider;
        _backend = backend;
        Name = name;
        Tokenizer = tokenizer;
        var forward = backend.Forward;
        _cache = new PagedKvCache(new KvCacheOptions { NumBlocks = numBlocks, BlockSize = blockSize, MaxTokensPerSequence = contextLength });
        ContextLength = contextLength;
        MaxSequences = Math.Max(1, options.MaxSequences);
        _scheduler = new BatchScheduler(forward, _cache, new SchedulerOptions
        {
            // Prompts are prefilled in chunks, so the budget bounds a step's length, not what can be admitted.
            MaxBatchedTokens = options.MaxBatchedTokens > 0 ? options.MaxBatchedTokens : Math.Max(MaxSequences, Math.Min(DefaultBatchedTokens, contextLength)),
            MaxBatchWait = options.MaxBatchWait,
            MaxSequences = MaxSequences,
            EosTokenId = tokenizer.EosId,
        });
        var p = model.Parameters;
        long weights = model.TokenEmbedding.LongLength + model.OutputNorm.LongLength
            + (ReferenceEquals(model.Output, model.TokenEmbedding) ? 0 : model.Output.LongLength)
            + model.Layers.Sum(l => l.AttentionNorm.LongLength + l.Query.LongLength + l.Key.LongLength + l.Value.LongLength
                + l.AttentionOutput.LongLength + l.FeedForwardNorm.LongLength + l.Gate.LongLength + l.Up.LongLength + l.Down.LongLength);
        long kv = 2L * p.BlockCount * numBlocks * blockSize * p.HeadCountKv * p.HeadDim;
        SizeBytes = (weights + kv) * sizeof(float);

        // The step loop runs on a thread of its own (BatchScheduler.RunAsync), never on the pool.
        _loop = _scheduler.RunAsync(_stop.Token);
        _ = _loop.ContinueWith(
            t =>
            {
                // A step that threw leaves its requests' channels open: stopping ends every reader with the failure.
                _failure = t.Exception!.GetBaseException();
                _stop.Cancel();
            },
            CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
    }

    public string Name { get; }
    public GgufTokenizer Tokenizer { get; }
    // Tokens one request may hold: prompt plus completion.
    public int ContextLength { get; }
    public int MaxSequences { get; }
    // Weights (f32) plus the K/V buffers: what the model holds in memory while loaded.
    public long SizeBytes { get; }
    // Cancelled when the model is unloaded or its step loop failed: readers stop waiting for tokens then.
    public CancellationToken Stopping => _stop.Token;
    public bool Faulted => _loop.IsFaulted;

    public static GollekModel Load(GollekOptions options, string name, string path)
    {
        GgufTokenizer tokenizer;
        LlamaModel model;
        int trained;
        using (var file = GgufFile.Open(path))
        {
            tokenizer = GgufTokenizer.FromGguf(file);
            model = LlamaModel.Load(file);
            trained = model.Parameters.ContextLength;
        }
        int blockSize = options.KvCacheBlockSize > 0 ? options.KvCacheBlockSize : 16;
        int context = options.ContextLength > 0 ? options.ContextLength : trained;
        int numBlocks = options.KvCacheBlocks > 0
            ? options.KvCacheBlocks
            : Math.Max(1, options.MaxSequences) * BlocksFor(Math.Min(context, DefaultCacheTokensPerSequence), blockSize);
        context = Math.Min(context, numBlocks * blockSize);
        var backend = GollekBackend.Create(options, model, numBlocks, blockSize);
        try
        {
            return new GollekModel(options.Name, name, tokenizer, model, options, backend, context, numBlocks, blockSize);
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    private static int BlocksFor(int tokens, int blockSize) => (tokens + blockSize - 1) / blockSize;

    // The sampled ids of one request (see BatchScheduler.Submit). The request's token must include Stopping.
    public ChannelReader<int> Submit(GenerationRequest request)
    {
        if (Volatile.Read(ref _disposed) != 0 || _stop.IsCancellationRequested)
            throw StoppedError();
        try
        {
            return _scheduler.Submit(request);
        }
        catch (WayangException ex)
        {
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, _provider, $"Model '{Name}' refused the request: {ex.Message}");
        }
    }

    // Why Stopping fired: an unload, or the step loop's failure.
    public WayangException StoppedError() => _failure is { } failure
        ? InferenceErrors.Create(ErrorCode.ProviderUnavailable, _provider, $"The engine failed on model '{Name}': {failure.Message}")
        : InferenceErrors.Create(ErrorCode.ProviderUnavailable, _provider, $"Model '{Name}' was unloaded.");

    // A snapshot read off the step loop's thread: the counters are single words, so each is sound, though scheduler and
    // cache may be one step apart.
    public GollekModelMetrics GetMetrics() => new(Name, _scheduler.GetMetrics(), _cache.GetMetrics()) { Backend = _backend.Name };

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _stop.Cancel();
        // The loop owns the forward pass's buffers and the kernels' threads: they go only once the current step ended.
        try
        {
            _loop.Wait();
        }
        catch (AggregateException)
        {
            // Cancelled (the normal end) or failed (already reported to the readers).
        }
        _backend.Dispose();
        // _stop stays undisposed: readers may still link to its token (it holds no wait handle, so nothing leaks).
    }
}

// The forward pass on the backend GollekOptions.Backend names, with what it owns (kernel threads, the accelerator and
// its buffers).
internal sealed class GollekBackend : IDisposable
{
    private readonly IDisposable[] _owned;

    private GollekBackend(string name, IForwardPass forward, params IDisposable[] owned)
    {
        Name = name;
        Forward = forward;
        _owned = owned;
    }

    public string Name { get; }

    public IForwardPass Forward { get; }

    public static GollekBackend Create(GollekOptions options, LlamaModel model, int numBlocks, int blockSize)
    {
        switch (GollekBackends.Normalize(options.Backend))
        {
            case GollekBackends.Cpu:
                var cpu = new CpuKernels(options.Threads > 0 ? options.Threads : Environment.ProcessorCount);
                try
                {
                    var kernels = options.KernelsForTests?.Invoke(cpu) ?? cpu;
                    return new GollekBackend(GollekBackends.Cpu, new LlamaForward(model, kernels, numBlocks, blockSize), cpu);
                }
                catch
                {
                    cpu.Dispose();
                    throw;
                }
            case GollekBackends.IlgpuCpu:
                return OnIlgpu(GollekBackends.IlgpuCpu, IlgpuKernels.CreateCpu(), model, numBlocks, blockSize);
            case GollekBackends.Cuda:
                IlgpuKernels? cuda;
                try
                {
                    cuda = IlgpuKernels.TryCreateCuda();
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // ILGPU reports a missing or broken driver in its own exception types.
                    throw Unavailable(options, $"CUDA could not be initialized: {ex.Message}");
                }
                return OnIlgpu(GollekBackends.Cuda, cuda ?? throw Unavailable(options, "the cuda backend needs a CUDA device, and none was found"), model, numBlocks, blockSize);
            default:
                throw new ArgumentException($"Unknown gollek backend '{options.Backend}'; known backends: {string.Join(", ", GollekBackends.All)}.", nameof(options));
        }
    }

    public void Dispose()
    {
        // The forward pass's buffers before the kernels (and the accelerator) they live on.
        (Forward as IDisposable)?.Dispose();
        foreach (var owned in _owned)
            owned.Dispose();
    }

    private static GollekBackend OnIlgpu(string name, IlgpuKernels kernels, LlamaModel model, int numBlocks, int blockSize)
    {
        try
        {
            return new GollekBackend(name, new LlamaForward<ArrayView<float>>(model, kernels, kernels.Memory, numBlocks, blockSize), kernels);
        }
        catch
        {
            kernels.Dispose();
            throw;
        }
    }

    private static WayangException Unavailable(GollekOptions options, string message) =>
        InferenceErrors.Create(ErrorCode.ProviderUnavailable, options.Name, message);
}

// Per loaded model: the scheduler's queue and counters and the KV cache's occupancy.
public sealed record GollekModelMetrics(string Model, SchedulerMetrics Scheduler, KvCacheMetrics KvCache)
{
    // Where its forward pass runs (GollekOptions.Backend).
    public string Backend { get; init; } = GollekBackends.Cpu;
}
