using System.Net.Http.Headers;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Providers.Http;

namespace Wayang.Fast.Inference.Adapters.Anthropic;

// Anthropic's Messages API: POST /v1/messages (SSE with "stream": true), GET /v1/models for the listing and the
// health probe. The key goes in x-api-key, with the anthropic-version header (an override in Options.Headers wins).
// No embeddings and no JSON response format.
public sealed class AnthropicProvider : IInferenceProvider, IDisposable
{
    public const string ApiVersion = "2023-06-01";
    // The API's largest page; the listing follows has_more for the rest.
    private const int ModelsPageSize = 1000;
    private const int MaxModelPages = 20;

    private readonly ProviderHttp _http;

    public AnthropicProvider(HttpProviderOptions options) => _http = new ProviderHttp(options, Authorize);

    public string Name => _http.Provider;
    public string Kind => "anthropic";
    public ProviderCapabilities Capabilities => ProviderCapabilities.Chat | ProviderCapabilities.Streaming | ProviderCapabilities.Tools;

    private static void Authorize(HttpRequestHeaders headers, string? apiKey)
    {
        if (!string.IsNullOrEmpty(apiKey))
            headers.TryAddWithoutValidation("x-api-key", apiKey);
        if (!headers.Contains("anthropic-version"))
            headers.TryAddWithoutValidation("anthropic-version", ApiVersion);
    }

    public async Task<ChatResponse> ChatAsync(ChatRequest request, string model, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var response = await SendMessagesAsync(request, model, stream: false, cancellationToken).ConfigureAwait(false);
        using var doc = await AdapterSupport.ReadJsonAsync(response, Name, cancellationToken).ConfigureAwait(false);
        return AnthropicJson.ReadMessage(doc.RootElement, Name, model);
    }

    public IAsyncEnumerable<ChatDelta> StreamChatAsync(ChatRequest request, string model, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        return SseStream.ReadAsync(Name, ct => SendMessagesAsync(request, model, stream: true, ct), new AnthropicStream(Name), cancellationToken);
    }

    private async Task<HttpResponseMessage> SendMessagesAsync(ChatRequest request, string model, bool stream, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, Endpoint("messages"))
        {
            Content = AdapterSupport.JsonContent(w => AnthropicJson.WriteMessagesRequest(w, Name, request, model, stream)),
        };
        return await _http.SendAsync(message, cancellationToken, AnthropicJson.ReadError, request.ApiKey).ConfigureAwait(false);
    }

    public Task<EmbeddingResponse> EmbedAsync(EmbeddingRequest request, string model, CancellationToken cancellationToken) =>
        Task.FromException<EmbeddingResponse>(InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, Name,
            $"Provider '{Name}' (Anthropic) does not offer embeddings; configure an embeddings model on another provider."));

    public async Task<IReadOnlyList<ProviderModel>> ListModelsAsync(CancellationToken cancellationToken)
    {
        var models = new List<ProviderModel>();
        string? after = null;
        for (int page = 0; page < MaxModelPages; page++)
        {
            string query = $"models?limit={ModelsPageSize}" + (after is null ? "" : "&after_id=" + Uri.EscapeDataString(after));
            using var doc = await GetAsync(query, cancellationToken).ConfigureAwait(false);
            var (batch, next) = AnthropicJson.ReadModels(doc.RootElement, Name);
            models.AddRange(batch);
            if (next is null)
                break;
            after = next;
        }
        return models;
    }

    public Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken) =>
        AdapterSupport.ProbeAsync(Name, async ct =>
        {
            using var doc = await GetAsync("models?limit=1", ct).ConfigureAwait(false);
        }, cancellationToken);

    private async Task<JsonDocument> GetAsync(string path, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Get, Endpoint(path));
        using var response = await _http.SendAsync(message, cancellationToken, AnthropicJson.ReadError).ConfigureAwait(false);
        return await AdapterSupport.ReadJsonAsync(response, Name, cancellationToken).ConfigureAwait(false);
    }

    private Uri Endpoint(string path) => AdapterSupport.Endpoint(_http.Options.BaseAddress, path);

    public void Dispose() => _http.Dispose();
}
