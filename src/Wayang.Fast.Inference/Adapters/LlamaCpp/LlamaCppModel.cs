using System.Collections.Concurrent;
using System.Text;
using System.Threading.Channels;
using LLama;
using LLama.Common;
using LLama.Native;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;

namespace Wayang.Fast.Inference.Adapters.LlamaCpp;

// One loaded GGUF model: its weights, one context whose KV cache is split into MaxSequences sequences, and one decode
// thread. Every step the thread builds one batch with the next token of each generating sequence and chunks of waiting
// prompts, calls llama_decode once and samples each sequence from its own logits, so concurrent requests share the
// matrix work instead of queueing. A sequence's KV cells are removed when it finishes, fails or is cancelled.
internal sealed class LlamaCppModel : ILocalModel
{
    private readonly string _provider;
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly LLamaBatch _batch = new();
    private readonly int _batchSize;
    private readonly ConcurrentQueue<LlamaSequence> _pending = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly Stack<int> _freeIds = new();
    private readonly List<LlamaSequence> _active = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private readonly object _embedLock = new();
    private readonly ModelParams _parameters;
    private LLamaEmbedder? _embedder;
    private int _disposed;

    private LlamaCppModel(string provider, string name, string path, LLamaWeights weights, LLamaContext context, ModelParams parameters, int contextPerSequence, int maxSequences, int batchSize)
    {
        _provider = provider;
        Name = name;
        Path = path;
        _weights = weights;
        _context = context;
        _parameters = parameters;
        ContextLength = contextPerSequence;
        _batchSize = batchSize;
        for (int i = maxSequences - 1; i >= 0; i--)
            _freeIds.Push(i);
        _thread = new Thread(Run) { IsBackground = true, Name = "llamacpp-decode-" + name };
        _thread.Start();
    }

    public string Name { get; }
    public string Path { get; }
    // Tokens one sequence may hold: prompt plus completion.
    public int ContextLength { get; }
    public long SizeBytes => (long)_weights.SizeInBytes;
    // A decode step that fails fails its requests, never the model: it is not reloaded.
    public bool Faulted => false;
    // The most sequences one llama_decode call carried: tests check that concurrent requests share batches.
    internal int PeakSequencesPerBatch { get; private set; }

    public static async Task<LlamaCppModel> LoadAsync(LlamaCppOptions options, string name, string path, CancellationToken cancellationToken)
    {
        int maxSequences = Math.Max(1, options.MaxSequences);
        var parameters = new ModelParams(path)
        {
            GpuLayerCount = 0,
            SeqMax = (uint)maxSequences,
            // Each sequence gets ContextSize / SeqMax cells of its own, so one long request cannot starve the others.
            KVUnified = false,
        };
        if (options.F32KvCacheForTests)
        {
            parameters.TypeK = GGMLType.GGML_TYPE_F32;
            parameters.TypeV = GGMLType.GGML_TYPE_F32;
            parameters.FlashAttention = false;
        }
        if (options.Threads > 0)
        {
            parameters.Threads = options.Threads;
            parameters.BatchThreads = options.Threads;
        }
        var weights = await LLamaWeights.LoadFromFileAsync(parameters, cancellationToken).ConfigureAwait(false);
        try
        {
            int trained = weights.ContextSize > 0 ? weights.ContextSize : 4096;
            int perSequence = options.ContextLength > 0 ? options.ContextLength : Math.Min(trained, 4096);
            int batch = Math.Max(Math.Max(1, options.BatchSize), maxSequences);
            parameters.ContextSize = (uint)(perSequence * maxSequences);
            parameters.BatchSize = (uint)batch;
            parameters.UBatchSize = (uint)batch;
            var context = weights.CreateContext(parameters);
            // llama.cpp may round the context; what a sequence really has is the share of what was allocated.
            int actual = (int)context.ContextSize / maxSequences;
            return new LlamaCppModel(options.Name, name, path, weights, context, parameters, Math.Min(perSequence, actual), maxSequences, batch)
            {
                AfterStepForTests = options.AfterStepForTests,
            };
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    public LLamaToken[] Tokenize(string text) => _context.Tokenize(text, addBos: true, special: false);

    // Queues a request; the caller reads the deltas from the returned sequence's channel. Throws the classified error
    // when the prompt does not fit.
    public LlamaSequence Submit(string prompt, ChatRequest request, int defaultMaxTokens, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _disposed) != 0)
            throw Unloaded();
        var tokens = Tokenize(prompt);
        if (tokens.Length >= ContextLength)
        {
            throw InferenceErrors.Create(ErrorCode.ContextLengthExceeded, _provider,
                $"The prompt has {tokens.Length} tokens; model '{Name}' holds {ContextLength} per request (prompt and completion).",
                extra: new Dictionary<string, string> { ["prompt_tokens"] = tokens.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        }
        int maxTokens = request.MaxTokens is int m and > 0 ? m : defaultMaxTokens;
        var sequence = new LlamaSequence(tokens, maxTokens, request, cancellationToken);
        _pending.Enqueue(sequence);
        _signal.Release();
        // Unloaded meanwhile: the decode thread may have drained the queue already, so nobody else would end this one.
        if (Volatile.Read(ref _disposed) != 0)
            FailPending(Unloaded());
        return sequence;
    }

    public float[] Embed(string text, out int tokenCount, CancellationToken cancellationToken)
    {
        tokenCount = Tokenize(text).Length;
        if (tokenCount > ContextLength)
        {
            throw InferenceErrors.Create(ErrorCode.ContextLengthExceeded, _provider,
                $"The input has {tokenCount} tokens; model '{Name}' embeds at most {ContextLength}.");
        }
        // A second context with pooling: embeddings and generation need different context settings. Created on first
        // use and kept; LLamaEmbedder is not thread-safe, hence the lock.
        lock (_embedLock)
        {
            if (Volatile.Read(ref _disposed) != 0)
                throw Unloaded();
            _embedder ??= new LLamaEmbedder(_weights, new ModelParams(Path)
            {
                ContextSize = (uint)ContextLength,
                BatchSize = (uint)ContextLength,
                UBatchSize = (uint)ContextLength,
                Embeddings = true,
                PoolingType = LLamaPoolingType.Mean,
                GpuLayerCount = 0,
                Threads = _parameters.Threads,
                BatchThreads = _parameters.BatchThreads,
            });
            var vectors = _embedder.GetEmbeddings(text, cancellationToken).GetAwaiter().GetResult();
            return vectors[0];
        }
    }

    internal Action<CancellationToken>? AfterStepForTests { get; init; }

    private void Run()
    {
        var stop = _stop.Token;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                Admit();
                if (_active.Count == 0)
                {
                    _signal.Wait(stop);
                    continue;
                }
                Step();
                AfterStepForTests?.Invoke(stop);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        var unloaded = Unloaded();
        foreach (var s in _active)
            s.Fail(unloaded);
        _active.Clear();
        FailPending(unloaded);
    }

    private WayangException Unloaded() => InferenceErrors.Create(ErrorCode.ProviderUnavailable, _provider, $"Model '{Name}' was unloaded.");

    private void FailPending(WayangException error)
    {
        while (_pending.TryDequeue(out var s))
            s.Fail(error);
    }

    private void Admit()
    {
        while (_freeIds.Count > 0 && _pending.TryDequeue(out var s))
        {
            if (s.CancellationToken.IsCancellationRequested)
            {
                s.Cancel();
                continue;
            }
            s.Start((LLamaSeqId)_freeIds.Pop(), new StreamingTokenDecoder(Encoding.UTF8, _weights));
            _active.Add(s);
        }
    }

    private void Step()
    {
        // Cancelled sequences leave before the batch is built: their cells are freed and no more work is spent on them.
        for (int i = _active.Count - 1; i >= 0; i--)
        {
            if (_active[i].CancellationToken.IsCancellationRequested)
            {
                var s = _active[i];
                Release(i);
                s.Cancel();
            }
        }
        if (_active.Count == 0)
            return;

        _batch.Clear();
        int budget = _batchSize;
        int batched = 0;
        // Generating sequences first, one token each: a long prompt arriving must not stall their streams.
        foreach (var s in _active)
        {
            s.BatchIndex = -1;
            if (s.PromptDone == s.Prompt.Length && s.Next is LLamaToken next)
            {
                s.BatchIndex = _batch.TokenCount;
                _batch.Add(next, s.Position, s.Id, true);
                s.Position++;
                s.Next = null;
                budget--;
                batched++;
            }
        }
        foreach (var s in _active)
        {
            if (budget == 0)
                break;
            int left = s.Prompt.Length - s.PromptDone;
            if (left == 0)
                continue;
            int n = Math.Min(left, budget);
            for (int k = 0; k < n; k++)
            {
                int p = s.PromptDone + k;
                bool last = p == s.Prompt.Length - 1;
                if (last)
                    s.BatchIndex = _batch.TokenCount;
                _batch.Add(s.Prompt[p], p, s.Id, last);
            }
            s.PromptDone += n;
            s.Position = s.PromptDone;
            budget -= n;
            batched++;
        }

        if (batched == 0)
            return;
        if (batched > PeakSequencesPerBatch)
            PeakSequencesPerBatch = batched;

        var result = _context.NativeHandle.Decode(_batch);
        if (result != DecodeResult.Ok)
        {
            var error = InferenceErrors.Create(ErrorCode.ProviderUnavailable, _provider, $"llama_decode failed for model '{Name}': {result}.");
            for (int i = _active.Count - 1; i >= 0; i--)
            {
                var s = _active[i];
                Release(i);
                s.Fail(error);
            }
            return;
        }

        var vocab = _weights.NativeHandle.Vocab;
        for (int i = _active.Count - 1; i >= 0; i--)
        {
            var s = _active[i];
            if (s.BatchIndex < 0)
                continue;
            var token = s.Sampler!.Sample(_context.NativeHandle, s.BatchIndex);
            FinishReason? finish = null;
            if (token.IsEndOfGeneration(vocab))
            {
                finish = FinishReason.Stop;
            }
            else
            {
                s.Accept(token);
                if (s.Stopped)
                    finish = FinishReason.Stop;
                // Prompt plus completion never exceed the context, as llama.cpp's server and OpenAI count it.
                else if (s.Generated >= s.MaxTokens || s.Prompt.Length + s.Generated >= ContextLength)
                    finish = FinishReason.Length;
                else
                    s.Next = token;
            }
            if (finish is FinishReason f)
            {
                Release(i);
                s.Finish(f);
            }
        }
    }

    private void Release(int index)
    {
        var s = _active[index];
        _active.RemoveAt(index);
        _context.NativeHandle.MemorySequenceRemove(s.Id, -1, -1);
        _freeIds.Push((int)s.Id);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _stop.Cancel();
        // The decode thread owns the context; it is freed only once the thread has left llama_decode.
        _thread.Join();
        lock (_embedLock)
            _embedder?.Dispose();
        _context.Dispose();
        _weights.Dispose();
        // _signal stays undisposed: a Submit racing with the unload may still release it (it holds no wait handle
        // unless one is asked for, so nothing leaks).
        _stop.Dispose();
    }
}

// One request on the decode thread. The thread writes deltas to Output; the caller reads them. Sampler and decoder
// belong to the thread from Start on.
internal sealed class LlamaSequence
{
    private readonly ChatRequest _request;
    private readonly StopMatcher _stop;
    private StreamingTokenDecoder? _decoder;

    public LlamaSequence(LLamaToken[] prompt, int maxTokens, ChatRequest request, CancellationToken cancellationToken)
    {
        Prompt = prompt;
        MaxTokens = maxTokens;
        _request = request;
        _stop = new StopMatcher(request.Stop);
        CancellationToken = cancellationToken;
    }

    public LLamaToken[] Prompt { get; }
    public int MaxTokens { get; }
    public CancellationToken CancellationToken { get; }
    public Channel<ChatDelta> Output { get; } = Channel.CreateUnbounded<ChatDelta>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    public LLamaSeqId Id { get; private set; }
    public SafeLLamaSamplerChainHandle? Sampler { get; private set; }
    public int PromptDone { get; set; }
    public int Position { get; set; }
    public LLamaToken? Next { get; set; }
    public int BatchIndex { get; set; } = -1;
    public int Generated { get; private set; }
    public bool Stopped => _stop.Stopped;

    public void Start(LLamaSeqId id, StreamingTokenDecoder decoder)
    {
        Id = id;
        _decoder = decoder;
        Sampler = CreateSampler(_request);
    }

    // Greedy at temperature 0 (or none given), so the same request gives the same text; else top-p, temperature and
    // a seeded distribution.
    private static SafeLLamaSamplerChainHandle CreateSampler(ChatRequest request)
    {
        var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        double temperature = request.Temperature ?? 0;
        if (temperature <= 0)
        {
            chain.AddGreedySampler();
            return chain;
        }
        if (request.TopP is double p and > 0 and < 1)
            chain.AddTopP((float)p, 1);
        chain.AddTemperature((float)temperature);
        uint seed = request.Seed is long s ? unchecked((uint)s) : (uint)Random.Shared.Next();
        chain.AddDistributionSampler(seed);
        return chain;
    }

    public void Accept(LLamaToken token)
    {
        Generated++;
        _decoder!.Add(token);
        Emit(_stop.Push(_decoder.Read()));
    }

    private void Emit(string text)
    {
        if (text.Length > 0)
            Output.Writer.TryWrite(new ChatDelta { Content = text });
    }

    public void Finish(FinishReason reason)
    {
        Emit(_stop.Flush());
        Output.Writer.TryWrite(new ChatDelta
        {
            FinishReason = reason,
            Usage = new TokenUsage { PromptTokens = Prompt.Length, CompletionTokens = Generated },
        });
        Output.Writer.TryComplete();
        Sampler?.Dispose();
    }

    public void Cancel()
    {
        Output.Writer.TryComplete(new OperationCanceledException(CancellationToken));
        Sampler?.Dispose();
    }

    public void Fail(Exception error)
    {
        Output.Writer.TryComplete(error);
        Sampler?.Dispose();
    }
}
