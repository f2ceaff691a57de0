using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Inference.Adapters.LlamaCpp;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Engine.Sampling;
using Wayang.Fast.Inference.Engine.Scheduling;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Inference.Providers;

namespace Wayang.Fast.Inference.Adapters.Gollek;

// Our own engine (issue 8) as a local provider: the GGUF files of one directory, each loaded on first use (or when
// the warmer asks) into a GollekModel whose batching scheduler decodes all of that model's requests together. The
// chat template, tokenization and stop strings are the llama.cpp adapter's, so both give the same text for the same
// greedy request; the engine matches llama.cpp token for token.
public sealed class GollekProvider : IInferenceProvider, IWarmableProvider, IDisposable
{
    public const string KindName = "gollek";

    private readonly GollekOptions _options;
    private readonly ConcurrentDictionary<string, Lazy<Task<GollekModel>>> _models = new(StringComparer.Ordinal);

    public GollekProvider(GollekOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
    }

    public string Name => _options.Name;
    public string Kind => KindName;
    public ProviderCapabilities Capabilities => ProviderCapabilities.Chat | ProviderCapabilities.Streaming | ProviderCapabilities.Local;

    public bool IsLoaded(string model) => TryGetLoaded(model, out _);

    // The loaded models with the bytes they hold (weights and KV buffers), for the gateway's memory accounting.
    public IReadOnlyList<ProviderModel> LoadedModels =>
    [
        .. Loaded().Select(m => new ProviderModel(m.Name, m.SizeBytes, m.ContextLength, Loaded: true)).OrderBy(m => m.Name, StringComparer.Ordinal),
    ];

    // Scheduler and KV cache metrics of every loaded model.
    public IReadOnlyList<GollekModelMetrics> GetMetrics() => [.. Loaded().Select(m => m.GetMetrics()).OrderBy(m => m.Model, StringComparer.Ordinal)];

    public async Task LoadAsync(string model, CancellationToken cancellationToken) =>
        await GetModelAsync(model, cancellationToken).ConfigureAwait(false);

    // Stops the model's step loop and frees it. Requests still running on it fail with PROVIDER_UNAVAILABLE.
    public bool Unload(string model)
    {
        if (!_models.TryRemove(model, out var lazy) || !lazy.IsValueCreated)
            return false;
        if (lazy.Value.IsCompletedSuccessfully)
        {
            lazy.Value.Result.Dispose();
            return true;
        }
        // Still loading: whoever awaits the load gets the model; it is disposed when the load ends.
        _ = lazy.Value.ContinueWith(t => t.Result.Dispose(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        return true;
    }

    async Task<ModelLoadResult> IWarmableProvider.LoadModelAsync(string model, CancellationToken cancellationToken)
    {
        bool was = IsLoaded(model);
        long start = Stopwatch.GetTimestamp();
        var loaded = await GetModelAsync(model, cancellationToken).ConfigureAwait(false);
        return new ModelLoadResult(loaded.SizeBytes, was ? TimeSpan.Zero : Stopwatch.GetElapsedTime(start), was);
    }

    Task IWarmableProvider.UnloadModelAsync(string model, CancellationToken cancellationToken)
    {
        Unload(model);
        return Task.CompletedTask;
    }

    Task<IReadOnlyList<ProviderModel>> IWarmableProvider.ListLoadedModelsAsync(CancellationToken cancellationToken) => Task.FromResult(LoadedModels);

    public async Task<ChatResponse> ChatAsync(ChatRequest request, string model, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        FinishReason finish = FinishReason.Unspecified;
        TokenUsage usage = new();
        await foreach (var delta in StreamChatAsync(request, model, cancellationToken).ConfigureAwait(false))
        {
            text.Append(delta.Content);
            if (delta.FinishReason is FinishReason f)
                finish = f;
            if (delta.Usage is not null)
                usage = delta.Usage;
        }
        return new ChatResponse
        {
            Id = "gollek-" + Guid.NewGuid().ToString("N"),
            Provider = Name,
            Model = model,
            Choices = [new ChatChoice { Index = 0, Message = ChatMessage.Text(ChatRole.Assistant, text.ToString()), FinishReason = finish }],
            Usage = usage,
        };
    }

    public async IAsyncEnumerable<ChatDelta> StreamChatAsync(ChatRequest request, string model, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var sampler = Validate(request);
        var loaded = await GetModelAsync(model, cancellationToken).ConfigureAwait(false);
        var prompt = loaded.Tokenizer.Encode(LlamaChatTemplate.Render(request.Messages));
        int maxTokens = MaxTokens(loaded, prompt.Length, request.MaxTokens);

        // The generation's own token: the caller's (its cancellation and the gateway's timeouts) and the model's stop.
        // It is cancelled however the stream ends, so the scheduler frees the request's KV blocks at its next step.
        using var generation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, loaded.Stopping);
        var tokens = loaded.Submit(new GenerationRequest
        {
            PromptTokens = prompt,
            MaxTokens = maxTokens,
            Sampler = sampler,
            Priority = Priority(request.Priority),
            CancellationToken = generation.Token,
        });
        var decoder = loaded.Tokenizer.CreateStreamingDecoder();
        var stop = new StopMatcher(request.Stop);
        int eos = loaded.Tokenizer.EosId;
        int generated = 0;
        var finish = FinishReason.Length;
        try
        {
            while (await WaitForTokensAsync(loaded, tokens, generation.Token, cancellationToken).ConfigureAwait(false))
            {
                while (tokens.TryRead(out int token))
                {
                    // Tokens already sampled are not handed out after a cancellation: it takes effect at once.
                    cancellationToken.ThrowIfCancellationRequested();
                    if (token == eos)
                    {
                        // As llama.cpp: the end-of-generation token is neither text nor counted.
                        finish = FinishReason.Stop;
                        break;
                    }
                    generated++;
                    string text = stop.Push(decoder.Push(token));
                    if (text.Length > 0)
                        yield return new ChatDelta { Content = text };
                    if (stop.Stopped)
                    {
                        finish = FinishReason.Stop;
                        break;
                    }
                }
                if (finish == FinishReason.Stop)
                    break;
            }
            // A character left incomplete becomes U+FFFD; text held back for a possible stop string is text after all.
            string rest = stop.Push(decoder.Flush()) + stop.Flush();
            if (rest.Length > 0)
                yield return new ChatDelta { Content = rest };
            yield return new ChatDelta
            {
                FinishReason = finish,
                Usage = new TokenUsage { PromptTokens = prompt.Length, CompletionTokens = generated },
            };
        }
        finally
        {
            await generation.CancelAsync().ConfigureAwait(false);
        }
    }

    // False once the scheduler has sent the last token. A cancelled caller gets its OperationCanceledException; a
    // model that stopped underneath (unloaded, failed) gives PROVIDER_UNAVAILABLE.
    private static async ValueTask<bool> WaitForTokensAsync(GollekModel model, ChannelReader<int> tokens, CancellationToken generation, CancellationToken caller)
    {
        try
        {
            return await tokens.WaitToReadAsync(generation).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!caller.IsCancellationRequested && model.Stopping.IsCancellationRequested)
        {
            throw model.StoppedError();
        }
    }

    private int MaxTokens(GollekModel model, int promptTokens, int? requested)
    {
        // Prompt plus completion within the context, as llama.cpp's server and OpenAI count it.
        int room = model.ContextLength - promptTokens;
        if (room <= 0 || requested is int r && r > room)
        {
            string asked = requested is int m and > 0 ? $" plus {m} completion tokens" : "";
            throw InferenceErrors.Create(ErrorCode.ContextLengthExceeded, Name,
                $"The prompt has {promptTokens} tokens{asked}; model '{model.Name}' holds {model.ContextLength} per request (prompt and completion).",
                extra: new Dictionary<string, string> { ["prompt_tokens"] = promptTokens.ToString(CultureInfo.InvariantCulture) });
        }
        return requested is int n and > 0 ? n : Math.Min(Math.Max(1, _options.DefaultMaxTokens), room);
    }

    // The request's SLA class (SlaPriority) as the scheduler's priority: higher first; none given is NORMAL.
    internal static int Priority(int sla) => sla switch
    {
        <= (int)SlaPriority.Unspecified => (int)SlaPriority.Normal,
        > (int)SlaPriority.Critical => (int)SlaPriority.Critical,
        _ => sla,
    };

    public Task<EmbeddingResponse> EmbedAsync(EmbeddingRequest request, string model, CancellationToken cancellationToken) =>
        Task.FromException<EmbeddingResponse>(InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, Name,
            $"Provider '{Name}' (gollek) does not offer embeddings yet; configure an embeddings model on another provider."));

    public Task<IReadOnlyList<ProviderModel>> ListModelsAsync(CancellationToken cancellationToken)
    {
        if (!Directory.Exists(_options.ModelsDirectory))
            return Task.FromResult<IReadOnlyList<ProviderModel>>([]);
        var list = new List<ProviderModel>();
        foreach (string file in Directory.EnumerateFiles(_options.ModelsDirectory, "*.gguf"))
        {
            string name = Path.GetFileNameWithoutExtension(file);
            var loaded = TryGetLoaded(name, out var m) ? m : null;
            list.Add(new ProviderModel(name, new FileInfo(file).Length, loaded?.ContextLength, loaded is not null));
        }
        list.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return Task.FromResult<IReadOnlyList<ProviderModel>>(list);
    }

    public async Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        try
        {
            if (!Directory.Exists(_options.ModelsDirectory))
                return new ProviderHealth(false, watch.Elapsed, $"The models directory '{_options.ModelsDirectory}' does not exist.");
            await ListModelsAsync(cancellationToken).ConfigureAwait(false);
            var failed = Loaded().FirstOrDefault(m => m.Faulted);
            return failed is null ? new ProviderHealth(true, watch.Elapsed) : new ProviderHealth(false, watch.Elapsed, failed.StoppedError().Message);
        }
        catch (Exception ex)
        {
            return new ProviderHealth(false, watch.Elapsed, ex.Message);
        }
    }

    private SamplerOptions Validate(ChatRequest request)
    {
        if (request.Tools.Count > 0)
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, Name, "The gollek engine does not support tools.");
        if (request.ResponseFormat != ResponseFormat.Text)
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, Name, "The gollek engine does not support JSON response formats yet.");
        if (request.Messages.Count == 0)
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, Name, "A chat request needs at least one message.");
        if (request.MaxTokens is < 0)
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, Name, "max_tokens must not be negative.");
        if (request.Temperature is double t && double.IsNaN(t))
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, Name, "temperature must be a number.");
        if (request.TopP is double p && !(p > 0 && p <= 1))
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, Name, "top_p must be in (0, 1].");
        // Greedy at temperature 0 or none given (as the llama.cpp adapter), so the same request gives the same text.
        return new SamplerOptions
        {
            Temperature = request.Temperature is double temperature && temperature > 0 ? (float)temperature : 0f,
            TopP = request.TopP is double topP ? (float)topP : 1f,
            Seed = request.Seed is long seed ? unchecked((ulong)seed) : null,
        };
    }

    private IEnumerable<GollekModel> Loaded() =>
        _models.Values.Where(l => l.IsValueCreated && l.Value.IsCompletedSuccessfully).Select(l => l.Value.Result);

    private bool TryGetLoaded(string model, out GollekModel loaded)
    {
        if (_models.TryGetValue(model, out var lazy) && lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully)
        {
            loaded = lazy.Value.Result;
            return true;
        }
        loaded = null!;
        return false;
    }

    private async Task<GollekModel> GetModelAsync(string model, CancellationToken cancellationToken)
    {
        string path = AdapterSupport.GgufModelPath(Name, _options.ModelsDirectory, model);
        while (true)
        {
            var lazy = _models.GetOrAdd(model, name => new Lazy<Task<GollekModel>>(() => LoadModelAsync(name, path)));
            GollekModel loaded;
            try
            {
                // The load itself is not cancelled by one waiter's token: other requests may wait on the same load.
                loaded = await lazy.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception) when (lazy.Value.IsFaulted)
            {
                // A failed load is not cached: the next request tries again (the file may have been replaced).
                _models.TryRemove(new KeyValuePair<string, Lazy<Task<GollekModel>>>(model, lazy));
                throw;
            }
            if (!loaded.Faulted)
                return loaded;
            // Its step loop failed: the model is dropped and loaded afresh rather than failing every request.
            if (_models.TryRemove(new KeyValuePair<string, Lazy<Task<GollekModel>>>(model, lazy)))
                loaded.Dispose();
        }
    }

    private Task<GollekModel> LoadModelAsync(string name, string path) =>
        // Reading and dequantizing the weights is CPU work of seconds for a real model: off the caller's thread.
        Task.Run(() =>
        {
            try
            {
                return GollekModel.Load(_options, name, path);
            }
            catch (Exception ex) when (ex is WayangException or IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException or OutOfMemoryException)
            {
                throw InferenceErrors.Create(ErrorCode.ProviderUnavailable, Name, $"gollek could not load model '{name}': {ex.Message}");
            }
        });

    public void Dispose()
    {
        foreach (string name in _models.Keys.ToList())
            Unload(name);
    }
}
