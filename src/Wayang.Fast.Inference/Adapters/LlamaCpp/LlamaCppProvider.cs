using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using LLama.Exceptions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Inference.Providers;

namespace Wayang.Fast.Inference.Adapters.LlamaCpp;

// llama.cpp in this process, through LLamaSharp's low-level API. Models are the GGUF files of one directory; a model is
// loaded on first use and kept until Unload (the gateway warms and evicts through LoadAsync, Unload and LoadedModels).
// Concurrent requests to one model are decoded together as separate sequences of one context (LlamaCppModel).
public sealed class LlamaCppProvider : IInferenceProvider, IWarmableProvider, IDisposable
{
    public const string KindName = "llamacpp";

    private readonly LlamaCppOptions _options;
    private readonly ConcurrentDictionary<string, Lazy<Task<LlamaCppModel>>> _models = new(StringComparer.Ordinal);

    public LlamaCppProvider(LlamaCppOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
    }

    public string Name => _options.Name;
    public string Kind => KindName;
    public ProviderCapabilities Capabilities => ProviderCapabilities.Chat | ProviderCapabilities.Streaming | ProviderCapabilities.Embeddings | ProviderCapabilities.Local;

    public bool IsLoaded(string model) =>
        _models.TryGetValue(model, out var lazy) && lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully;

    // The loaded models with the bytes their weights take, for the gateway's memory accounting and eviction.
    public IReadOnlyList<ProviderModel> LoadedModels =>
    [
        .. _models.Values.Where(l => l.IsValueCreated && l.Value.IsCompletedSuccessfully)
            .Select(l => l.Value.Result)
            .Select(m => new ProviderModel(m.Name, m.SizeBytes, m.ContextLength, Loaded: true))
            .OrderBy(m => m.Name, StringComparer.Ordinal),
    ];

    internal int PeakSequencesPerBatch(string model) =>
        _models.TryGetValue(model, out var lazy) && lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully ? lazy.Value.Result.PeakSequencesPerBatch : 0;

    public async Task LoadAsync(string model, CancellationToken cancellationToken) =>
        await GetModelAsync(model, cancellationToken).ConfigureAwait(false);

    // Frees the weights and the context. Requests still running on the model fail with PROVIDER_UNAVAILABLE.
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
            Id = "llamacpp-" + Guid.NewGuid().ToString("N"),
            Provider = Name,
            Model = model,
            Choices = [new ChatChoice { Index = 0, Message = ChatMessage.Text(ChatRole.Assistant, text.ToString()), FinishReason = finish }],
            Usage = usage,
        };
    }

    public async IAsyncEnumerable<ChatDelta> StreamChatAsync(ChatRequest request, string model, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        Validate(request);
        var loaded = await GetModelAsync(model, cancellationToken).ConfigureAwait(false);
        using var sequenceCancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sequence = loaded.Submit(LlamaChatTemplate.Render(request.Messages), request, _options.DefaultMaxTokens, sequenceCancel.Token);
        try
        {
            await foreach (var delta in sequence.Output.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                // Deltas already queued are not handed out after a cancellation: it takes effect at once.
                cancellationToken.ThrowIfCancellationRequested();
                yield return delta;
            }
        }
        finally
        {
            // The caller stopped reading (cancelled, broke out, failed): the decode thread frees the sequence at its
            // next step.
            await sequenceCancel.CancelAsync().ConfigureAwait(false);
        }
    }

    public async Task<EmbeddingResponse> EmbedAsync(EmbeddingRequest request, string model, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var loaded = await GetModelAsync(model, cancellationToken).ConfigureAwait(false);
        var response = new EmbeddingResponse { Provider = Name, Model = model };
        foreach (string input in request.Inputs)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // Native work off the caller's thread; llama.cpp does not take a token mid-call, so cancellation is per input.
            var (vector, tokens) = await Task.Run(() => (loaded.Embed(input, out int n, cancellationToken), n), cancellationToken).ConfigureAwait(false);
            response.Vectors.Add(vector);
            response.Usage.PromptTokens += tokens;
        }
        return response;
    }

    public Task<IReadOnlyList<ProviderModel>> ListModelsAsync(CancellationToken cancellationToken)
    {
        if (!Directory.Exists(_options.ModelsDirectory))
            return Task.FromResult<IReadOnlyList<ProviderModel>>([]);
        var list = new List<ProviderModel>();
        foreach (string file in Directory.EnumerateFiles(_options.ModelsDirectory, "*.gguf"))
        {
            string name = Path.GetFileNameWithoutExtension(file);
            var loaded = _models.TryGetValue(name, out var lazy) && lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully ? lazy.Value.Result : null;
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
            return new ProviderHealth(true, watch.Elapsed);
        }
        catch (Exception ex)
        {
            return new ProviderHealth(false, watch.Elapsed, ex.Message);
        }
    }

    private void Validate(ChatRequest request)
    {
        if (request.Tools.Count > 0)
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, Name, "The llama.cpp adapter does not support tools.");
        if (request.ResponseFormat != ResponseFormat.Text)
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, Name, "The llama.cpp adapter does not support JSON response formats yet.");
        if (request.Messages.Count == 0)
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, Name, "A chat request needs at least one message.");
        if (request.MaxTokens is < 0)
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, Name, "max_tokens must not be negative.");
    }

    private async Task<LlamaCppModel> GetModelAsync(string model, CancellationToken cancellationToken)
    {
        string path = ModelPath(model);
        var lazy = _models.GetOrAdd(model, name => new Lazy<Task<LlamaCppModel>>(() => LoadModelAsync(name, path)));
        try
        {
            // The load itself is not cancelled by one waiter's token: other requests may wait on the same load.
            return await lazy.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (lazy.Value.IsFaulted)
        {
            // A failed load is not cached: the next request tries again (the file may have been replaced).
            _models.TryRemove(new KeyValuePair<string, Lazy<Task<LlamaCppModel>>>(model, lazy));
            throw;
        }
    }

    private async Task<LlamaCppModel> LoadModelAsync(string name, string path)
    {
        try
        {
            return await LlamaCppModel.LoadAsync(_options, name, path, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is LoadWeightsFailedException or RuntimeError or TypeInitializationException or DllNotFoundException)
        {
            throw InferenceErrors.Create(ErrorCode.ProviderUnavailable, Name, $"llama.cpp could not load model '{name}': {ex.Message}");
        }
    }

    private string ModelPath(string model) => AdapterSupport.GgufModelPath(Name, _options.ModelsDirectory, model);

    public void Dispose()
    {
        foreach (string name in _models.Keys.ToList())
            Unload(name);
    }
}
