using System.Runtime.CompilerServices;
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
    private readonly LocalModelSet<LlamaCppModel> _models;

    public LlamaCppProvider(LlamaCppOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _models = new LocalModelSet<LlamaCppModel>(ModelPath, LoadModelAsync);
    }

    public string Name => _options.Name;
    public string Kind => KindName;
    public ProviderCapabilities Capabilities => ProviderCapabilities.Chat | ProviderCapabilities.Streaming | ProviderCapabilities.Embeddings | ProviderCapabilities.Local;

    public bool IsLoaded(string model) => _models.IsLoaded(model);

    // The loaded models with the bytes their weights take, for the gateway's memory accounting and eviction.
    public IReadOnlyList<ProviderModel> LoadedModels => _models.LoadedModels;

    internal int PeakSequencesPerBatch(string model) => _models.TryGetLoaded(model, out var loaded) ? loaded.PeakSequencesPerBatch : 0;

    public async Task LoadAsync(string model, CancellationToken cancellationToken) =>
        await _models.GetAsync(model, cancellationToken).ConfigureAwait(false);

    // Frees the weights and the context. Requests still running on the model fail with PROVIDER_UNAVAILABLE.
    public bool Unload(string model) => _models.Unload(model);

    Task<ModelLoadResult> IWarmableProvider.LoadModelAsync(string model, CancellationToken cancellationToken) => _models.WarmAsync(model, cancellationToken);

    Task IWarmableProvider.UnloadModelAsync(string model, CancellationToken cancellationToken)
    {
        Unload(model);
        return Task.CompletedTask;
    }

    Task<IReadOnlyList<ProviderModel>> IWarmableProvider.ListLoadedModelsAsync(CancellationToken cancellationToken) => Task.FromResult(LoadedModels);

    public Task<ChatResponse> ChatAsync(ChatRequest request, string model, CancellationToken cancellationToken) =>
        AdapterSupport.CollectChatAsync(StreamChatAsync(request, model, cancellationToken), Name, model, "llamacpp");

    public async IAsyncEnumerable<ChatDelta> StreamChatAsync(ChatRequest request, string model, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        AdapterSupport.ValidateLocalChat(Name, "The llama.cpp adapter", request);
        var loaded = await _models.GetAsync(model, cancellationToken).ConfigureAwait(false);
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
        var loaded = await _models.GetAsync(model, cancellationToken).ConfigureAwait(false);
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

    public Task<IReadOnlyList<ProviderModel>> ListModelsAsync(CancellationToken cancellationToken) =>
        Task.FromResult(_models.ListFiles(_options.ModelsDirectory));

    public Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken) =>
        Task.FromResult(_models.CheckHealth(_options.ModelsDirectory));

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

    public void Dispose() => _models.Dispose();
}
