using System.Diagnostics;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Providers.Http;

namespace Wayang.Fast.Inference.Adapters.Triton;

// TensorRT-LLM served by Triton, through Triton's generate extension: POST /v2/models/{model}/generate (one JSON
// answer) and /generate_stream (server-sent events, each with the text new since the previous). It takes a prompt, not
// messages (TritonJson.RenderPrompt), and has no tools, no JSON mode and no embeddings: such requests are refused as
// INFERENCE_REQUEST_INVALID before anything is sent.
public sealed class TritonProvider : IInferenceProvider, IDisposable
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    private readonly ProviderHttp _http;
    private readonly int _defaultMaxTokens;

    // defaultMaxTokens: sent when a request sets no MaxTokens (the ensemble requires max_tokens).
    public TritonProvider(HttpProviderOptions options, int defaultMaxTokens = 1024)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(defaultMaxTokens);
        _http = new ProviderHttp(options);
        _defaultMaxTokens = defaultMaxTokens;
        Capabilities = ProviderCapabilities.Chat | ProviderCapabilities.Streaming
            | (options.BaseAddress.IsLoopback ? ProviderCapabilities.Local : ProviderCapabilities.None);
    }

    public string Name => _http.Provider;
    public string Kind => "triton";
    public ProviderCapabilities Capabilities { get; }

    public async Task<ChatResponse> ChatAsync(ChatRequest request, string model, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        Refuse(request);
        using var response = await PostAsync(ModelPath(model, "generate"), TritonJson.Generate(request, stream: false, _defaultMaxTokens), cancellationToken).ConfigureAwait(false);
        string body;
        try
        {
            body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsTransportError(ex) && !cancellationToken.IsCancellationRequested)
        {
            throw InferenceErrors.FromException(Name, ex);
        }
        (string? Text, string? Error) output;
        try
        {
            output = TritonJson.ParseOutput(body);
        }
        catch (Exception ex) when (IsShapeError(ex))
        {
            throw BadResponse($"an unreadable generate answer: {ex.Message}");
        }
        if (output.Error is not null)
            throw EventError(output.Error, yielded: false);
        return new ChatResponse
        {
            Id = NewId(),
            Provider = Name,
            Model = model,
            // The generate extension says nothing of why generation ended.
            Choices = [new ChatChoice { Index = 0, Message = ChatMessage.Text(ChatRole.Assistant, output.Text ?? ""), FinishReason = FinishReason.Stop }],
            // Triton's generate extension reports no token counts: usage stays zero rather than an estimate.
            Usage = new TokenUsage(),
        };
    }

    public async IAsyncEnumerable<ChatDelta> StreamChatAsync(ChatRequest request, string model, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        Refuse(request);
        // Disposing the response (the consumer stopped or cancelled) aborts the request, and Triton cancels it.
        using var response = await PostAsync(ModelPath(model, "generate_stream"), TritonJson.Generate(request, stream: true, _defaultMaxTokens), cancellationToken).ConfigureAwait(false);
        Stream stream;
        try
        {
            stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsTransportError(ex) && !cancellationToken.IsCancellationRequested)
        {
            throw InferenceErrors.FromException(Name, ex);
        }
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var data = new StringBuilder();
        bool yielded = false, ended = false;
        while (!ended)
        {
            string? line;
            try
            {
                line = await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsTransportError(ex) && !cancellationToken.IsCancellationRequested)
            {
                // Broken after the answer started, deltas yielded or not (a reset can drop what was already sent).
                throw Broken($"the stream broke: {ex.Message}", InferenceErrors.FromException(Name, ex).Code);
            }
            // The stream has no final event: the response's clean end is the end of generation (a broken connection
            // is an exception above). A last event without its blank line is still dispatched.
            ended = line is null;
            if (line is { Length: > 0 })
            {
                // SSE fields: only data matters here; "event:", "id:", "retry:" and ":" comments are skipped.
                if (line.StartsWith("data:", StringComparison.Ordinal))
                {
                    if (data.Length > 0)
                        data.Append('\n');
                    data.Append(line.AsSpan(line.Length > 5 && line[5] == ' ' ? 6 : 5));
                }
                continue;
            }
            if (data.Length == 0)
                continue;
            string json = data.ToString();
            data.Clear();
            (string? Text, string? Error) output;
            try
            {
                output = TritonJson.ParseOutput(json);
            }
            catch (Exception ex) when (IsShapeError(ex))
            {
                string what = $"an unreadable stream event: {ex.Message}";
                throw yielded ? Broken(what, ErrorCode.ProviderBadResponse) : BadResponse(what);
            }
            if (output.Error is not null)
                throw EventError(output.Error, yielded);
            if (string.IsNullOrEmpty(output.Text))
                continue;
            yielded = true;
            yield return new ChatDelta { Content = output.Text };
        }
        // Triton reports no token counts, so the last delta carries no Usage.
        yield return new ChatDelta { FinishReason = FinishReason.Stop };
    }

    public Task<EmbeddingResponse> EmbedAsync(EmbeddingRequest request, string model, CancellationToken cancellationToken) =>
        Task.FromException<EmbeddingResponse>(Invalid("the Triton generate extension serves no embeddings"));

    // The model repository's index: every model Triton knows, Loaded when its state is READY.
    public async Task<IReadOnlyList<ProviderModel>> ListModelsAsync(CancellationToken cancellationToken)
    {
        using var response = await PostAsync("v2/repository/index", "{}"u8.ToArray(), cancellationToken).ConfigureAwait(false);
        string body;
        try
        {
            body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsTransportError(ex) && !cancellationToken.IsCancellationRequested)
        {
            throw InferenceErrors.FromException(Name, ex);
        }
        try
        {
            using var doc = JsonDocument.Parse(body);
            var models = new List<ProviderModel>();
            foreach (var m in doc.RootElement.EnumerateArray())
            {
                string name = m.GetProperty("name").GetString() ?? throw new JsonException("A model without a name.");
                bool ready = m.TryGetProperty("state", out var s) && s.ValueKind == JsonValueKind.String && s.GetString() == "READY";
                models.Add(new ProviderModel(name, Loaded: ready));
            }
            return models;
        }
        catch (Exception ex) when (IsShapeError(ex))
        {
            throw BadResponse($"an unreadable repository index: {ex.Message}");
        }
    }

    public Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken) =>
        AdapterSupport.ProbeAsync(Name, async ct =>
        {
            // 200 once the server and its models are ready to serve.
            using var request = new HttpRequestMessage(HttpMethod.Get, "v2/health/ready");
            using var response = await _http.SendAsync(request, ct, TritonJson.ReadError).ConfigureAwait(false);
        }, cancellationToken);

    public void Dispose() => _http.Dispose();

    private void Refuse(ChatRequest request)
    {
        if (request.Tools.Count > 0 || request.Messages.Any(m => m.ToolCalls.Count > 0))
            throw Invalid("the Triton generate extension has no tool calling");
        if (request.ResponseFormat != ResponseFormat.Text)
            throw Invalid("the Triton generate extension has no JSON mode");
    }

    private static string ModelPath(string model, string action) => $"v2/models/{Uri.EscapeDataString(model)}/{action}";

    private async Task<HttpResponseMessage> PostAsync(string path, byte[] body, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path);
        request.Content = new ByteArrayContent(body);
        request.Content.Headers.ContentType = Json;
        return await _http.SendAsync(request, cancellationToken, TritonJson.ReadError).ConfigureAwait(false);
    }

    // An {"error": ...} where output was expected: classified by its text (Triton fails a running request with 500,
    // so unrecognised text is PROVIDER_UNAVAILABLE); after deltas were yielded it is STREAM_BROKEN.
    private WayangException EventError(string text, bool yielded) => AdapterSupport.ErrorObject(Name, TritonJson.Classify(text), text, yielded);

    private WayangException Broken(string message, ErrorCode cause) => AdapterSupport.Broken(Name, message, cause);

    private WayangException BadResponse(string what) => AdapterSupport.Malformed(Name, what);

    private WayangException Invalid(string message) =>
        InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, Name, $"Provider '{Name}': {message}.");

    private static bool IsTransportError(Exception ex) => ex is IOException or HttpRequestException;

    private static bool IsShapeError(Exception ex) => ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException;

    private static string NewId() => "triton-" + Guid.NewGuid().ToString("N");
}
