using System.Globalization;
using System.Runtime.CompilerServices;
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
    private readonly LocalModelSet<GollekModel> _models;

    public GollekProvider(GollekOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _models = new LocalModelSet<GollekModel>(model => AdapterSupport.GgufModelPath(Name, _options.ModelsDirectory, model), LoadModelAsync);
    }

    public string Name => _options.Name;
    public string Kind => KindName;
    public ProviderCapabilities Capabilities => ProviderCapabilities.Chat | ProviderCapabilities.Streaming | ProviderCapabilities.Local;

    public bool IsLoaded(string model) => _models.IsLoaded(model);

    // The loaded models with the bytes they hold (weights and KV buffers), for the gateway's memory accounting.
    public IReadOnlyList<ProviderModel> LoadedModels => _models.LoadedModels;

    // Scheduler and KV cache metrics of every loaded model.
    public IReadOnlyList<GollekModelMetrics> GetMetrics() => [.. _models.Loaded.Select(m => m.GetMetrics()).OrderBy(m => m.Model, StringComparer.Ordinal)];

    public async Task LoadAsync(string model, CancellationToken cancellationToken) =>
        await _models.GetAsync(model, cancellationToken).ConfigureAwait(false);

    // Stops the model's step loop and frees it. Requests still running on it fail with PROVIDER_UNAVAILABLE.
    public bool Unload(string model) => _models.Unload(model);

    Task<ModelLoadResult> IWarmableProvider.LoadModelAsync(string model, CancellationToken cancellationToken) => _models.WarmAsync(model, cancellationToken);

    Task IWarmableProvider.UnloadModelAsync(string model, CancellationToken cancellationToken)
    {
        Unload(model);
        return Task.CompletedTask;
    }

    Task<IReadOnlyList<ProviderModel>> IWarmableProvider.ListLoadedModelsAsync(CancellationToken cancellationToken) => Task.FromResult(LoadedModels);

    public Task<ChatResponse> ChatAsync(ChatRequest request, string model, CancellationToken cancellationToken) =>
        AdapterSupport.CollectChatAsync(StreamChatAsync(request, model, cancellationToken), Name, model, "gollek");

    public async IAsyncEnumerable<ChatDelta> StreamChatAsync(ChatRequest request, string model, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var sampler = Validate(request);
        var loaded = await _models.GetAsync(model, cancellationToken).ConfigureAwait(false);
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

    public Task<IReadOnlyList<ProviderModel>> ListModelsAsync(CancellationToken cancellationToken) =>
        Task.FromResult(_models.ListFiles(_options.ModelsDirectory));

    public Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken) =>
        Task.FromResult(_models.CheckHealth(_options.ModelsDirectory, m => m.StoppedError().Message));

    private SamplerOptions Validate(ChatRequest request)
    {
        AdapterSupport.ValidateLocalChat(Name, "The gollek engine", request);
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

    public void Dispose() => _models.Dispose();
}
