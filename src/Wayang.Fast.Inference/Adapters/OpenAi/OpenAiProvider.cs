using System.Text.Json;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Providers.Http;

namespace Wayang.Fast.Inference.Adapters.OpenAi;

// Any server that speaks OpenAI's HTTP API: OpenAI itself, Mistral, vLLM, trtllm-serve, the llama.cpp server.
// Chat is POST /v1/chat/completions (SSE with "stream": true), embeddings POST /v1/embeddings, the models listing
// (and health probe) GET /v1/models; the key is sent as a Bearer token. capabilities narrows what a given server
// offers (a llama.cpp server started without --embeddings, a model without tool support).
public sealed class OpenAiProvider : IInferenceProvider, IDisposable
{
    public const ProviderCapabilities DefaultCapabilities =
        ProviderCapabilities.Chat | ProviderCapabilities.Streaming | ProviderCapabilities.Embeddings | ProviderCapabilities.Tools | ProviderCapabilities.JsonMode;

    private readonly ProviderHttp _http;

    public OpenAiProvider(HttpProviderOptions options, ProviderCapabilities capabilities = DefaultCapabilities)
    {
        _http = new ProviderHttp(options);
        Capabilities = capabilities;
    }

    public string Name => _http.Provider;
    public string Kind => "openai";
    public ProviderCapabilities Capabilities { get; }

    public async Task<ChatResponse> ChatAsync(ChatRequest request, string model, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var response = await SendChatAsync(request, model, stream: false, cancellationToken).ConfigureAwait(false);
        using var doc = await AdapterSupport.ReadJsonAsync(response, Name, cancellationToken).ConfigureAwait(false);
        return OpenAiJson.ReadChatResponse(doc.RootElement, Name, model);
    }

    public IAsyncEnumerable<ChatDelta> StreamChatAsync(ChatRequest request, string model, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        return SseStream.ReadAsync(Name, ct => SendChatAsync(request, model, stream: true, ct), new OpenAiStream(Name), cancellationToken);
    }

    private async Task<HttpResponseMessage> SendChatAsync(ChatRequest request, string model, bool stream, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, Endpoint("chat/completions"))
        {
            Content = AdapterSupport.JsonContent(w => OpenAiJson.WriteChatRequest(w, Name, request, model, stream)),
        };
        return await _http.SendAsync(message, cancellationToken, OpenAiJson.ReadError, request.ApiKey).ConfigureAwait(false);
    }

    public async Task<EmbeddingResponse> EmbedAsync(EmbeddingRequest request, string model, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Inputs.Count == 0)
            return new EmbeddingResponse { Provider = Name, Model = model };
        using var message = new HttpRequestMessage(HttpMethod.Post, Endpoint("embeddings"))
        {
            Content = AdapterSupport.JsonContent(w => OpenAiJson.WriteEmbeddingRequest(w, request, model)),
        };
        using var response = await _http.SendAsync(message, cancellationToken, OpenAiJson.ReadError).ConfigureAwait(false);
        using var doc = await AdapterSupport.ReadJsonAsync(response, Name, cancellationToken).ConfigureAwait(false);
        return OpenAiJson.ReadEmbeddingResponse(doc.RootElement, Name, model, request.Inputs.Count);
    }

    public async Task<IReadOnlyList<ProviderModel>> ListModelsAsync(CancellationToken cancellationToken)
    {
        using var doc = await GetModelsAsync(cancellationToken).ConfigureAwait(false);
        return OpenAiJson.ReadModels(doc.RootElement, Name);
    }

    public Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken) =>
        AdapterSupport.ProbeAsync(Name, async ct =>
        {
            using var doc = await GetModelsAsync(ct).ConfigureAwait(false);
        }, cancellationToken);

    private async Task<JsonDocument> GetModelsAsync(CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Get, Endpoint("models"));
        using var response = await _http.SendAsync(message, cancellationToken, OpenAiJson.ReadError).ConfigureAwait(false);
        return await AdapterSupport.ReadJsonAsync(response, Name, cancellationToken).ConfigureAwait(false);
    }

    private Uri Endpoint(string path) => AdapterSupport.Endpoint(_http.Options.BaseAddress, path);

    public void Dispose() => _http.Dispose();
}
