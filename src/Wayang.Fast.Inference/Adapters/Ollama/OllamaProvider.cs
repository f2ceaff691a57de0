using System.Diagnostics;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Providers.Http;

namespace Wayang.Fast.Inference.Adapters.Ollama;

// An Ollama server through its native API (not its OpenAI-compatible one, which hides keep_alive, the load state and
// the timings): /api/chat unary and NDJSON-streamed, /api/embed, /api/tags with /api/ps for ListModels, /api/show for
// a model's context length, and /api/generate without a prompt to load (warm) or unload a model.
public sealed class OllamaProvider : IInferenceProvider, IWarmableProvider, IDisposable
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    private readonly ProviderHttp _http;

    // keepAlive: how long Ollama keeps a model loaded after each chat or embedding (null: the server's default, 5 min).
    public OllamaProvider(HttpProviderOptions options, TimeSpan? keepAlive = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _http = new ProviderHttp(options);
        KeepAlive = keepAlive;
        // An Ollama on this machine is a local runtime: routing prefers it and cache warming applies.
        Capabilities = ProviderCapabilities.Chat | ProviderCapabilities.Streaming | ProviderCapabilities.Embeddings | ProviderCapabilities.Tools
            | ProviderCapabilities.JsonMode | (options.BaseAddress.IsLoopback ? ProviderCapabilities.Local : ProviderCapabilities.None);
    }

    public string Name => _http.Provider;
    public string Kind => "ollama";
    public ProviderCapabilities Capabilities { get; }
    public TimeSpan? KeepAlive { get; }

    public event EventHandler<OllamaTimingsEventArgs>? TimingsReported;

    public async Task<ChatResponse> ChatAsync(ChatRequest request, string model, CancellationToken cancellationToken) =>
        (await ChatWithTimingsAsync(request, model, cancellationToken).ConfigureAwait(false)).Response;

    public async Task<OllamaChatResult> ChatWithTimingsAsync(ChatRequest request, string model, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var body = OllamaJson.ChatRequest(Name, request, model, stream: false, KeepAlive);
        string text = await PostForTextAsync("api/chat", body, cancellationToken).ConfigureAwait(false);
        int toolIndex = 0;
        OllamaChatChunk chunk;
        try
        {
            chunk = OllamaJson.ParseChatChunk(text, ref toolIndex);
        }
        catch (Exception ex) when (IsShapeError(ex))
        {
            throw BadResponse($"an unreadable chat answer: {ex.Message}");
        }
        if (chunk.Error is not null)
            throw StreamError(chunk.Error, yielded: false);
        if (!chunk.Done || chunk.Timings is null)
            throw BadResponse("a chat answer without done");
        var message = ChatMessage.Text(ChatRole.Assistant, chunk.Content ?? "");
        message.ToolCalls = chunk.ToolCalls;
        var response = new ChatResponse
        {
            Id = NewId(),
            Provider = Name,
            Model = model,
            Choices = [new ChatChoice { Index = 0, Message = message, FinishReason = OllamaJson.Finish(chunk.DoneReason, chunk.ToolCalls.Count > 0) }],
            Usage = new TokenUsage { PromptTokens = chunk.PromptEvalCount, CompletionTokens = chunk.EvalCount },
        };
        TimingsReported?.Invoke(this, new OllamaTimingsEventArgs(model, streamed: false, chunk.Timings));
        return new OllamaChatResult(response, chunk.Timings);
    }

    public async IAsyncEnumerable<ChatDelta> StreamChatAsync(ChatRequest request, string model, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var body = OllamaJson.ChatRequest(Name, request, model, stream: true, KeepAlive);
        // Disposing the response (the consumer stopped or cancelled) aborts the request: Ollama stops generating.
        using var response = await PostAsync("api/chat", body, cancellationToken).ConfigureAwait(false);
        Stream stream;
        try
        {
            stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsTransportError(ex) && !cancellationToken.IsCancellationRequested)
        {
            throw InferenceErrors.FromException(Name, ex);
        }
        // NDJSON: one object a line. StreamReader's decoder keeps a UTF-8 sequence split across reads whole.
        using var reader = new StreamReader(stream, Encoding.UTF8);
        bool yielded = false, calledTools = false;
        int toolIndex = 0;
        while (true)
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
            if (line is null)
                throw Broken("the stream ended before its final (done) object", ErrorCode.StreamBroken);
            if (string.IsNullOrWhiteSpace(line))
                continue;
            OllamaChatChunk chunk;
            try
            {
                chunk = OllamaJson.ParseChatChunk(line, ref toolIndex);
            }
            catch (Exception ex) when (IsShapeError(ex))
            {
                string what = $"an unreadable stream line: {ex.Message}";
                throw yielded ? Broken(what, ErrorCode.ProviderBadResponse) : BadResponse(what);
            }
            if (chunk.Error is not null)
                throw StreamError(chunk.Error, yielded);
            calledTools |= chunk.ToolCalls.Count > 0;
            var delta = new ChatDelta
            {
                Content = string.IsNullOrEmpty(chunk.Content) ? null : chunk.Content,
                ToolCalls = chunk.ToolCalls.Count == 0 ? null : [.. chunk.ToolCalls.Select((c, i) => new ToolCallDelta
                {
                    Index = toolIndex - chunk.ToolCalls.Count + i,
                    Id = c.Id,
                    Name = c.Name,
                    ArgumentsJson = c.ArgumentsJson,
                })],
            };
            if (chunk.Done)
            {
                delta.FinishReason = OllamaJson.Finish(chunk.DoneReason, calledTools);
                delta.Usage = new TokenUsage { PromptTokens = chunk.PromptEvalCount, CompletionTokens = chunk.EvalCount };
                TimingsReported?.Invoke(this, new OllamaTimingsEventArgs(model, streamed: true, chunk.Timings!));
                yield return delta;
                yield break;
            }
            if (delta.Content is null && delta.ToolCalls is null)
                continue;
            yielded = true;
            yield return delta;
        }
    }

    public async Task<EmbeddingResponse> EmbedAsync(EmbeddingRequest request, string model, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        string text = await PostForTextAsync("api/embed", OllamaJson.Embed(model, request.Inputs, KeepAlive), cancellationToken).ConfigureAwait(false);
        try
        {
            using var doc = JsonDocument.Parse(text);
            var root = doc.RootElement;
            var vectors = new List<float[]>();
            foreach (var v in root.GetProperty("embeddings").EnumerateArray())
            {
                var vector = new float[v.GetArrayLength()];
                int i = 0;
                foreach (var x in v.EnumerateArray())
                    vector[i++] = x.GetSingle();
                vectors.Add(vector);
            }
            if (vectors.Count != request.Inputs.Count)
                throw BadResponse($"{vectors.Count} embeddings for {request.Inputs.Count} inputs");
            int prompt = root.TryGetProperty("prompt_eval_count", out var p) && p.TryGetInt32(out int n) ? n : 0;
            return new EmbeddingResponse { Provider = Name, Model = model, Vectors = vectors, Usage = new TokenUsage { PromptTokens = prompt } };
        }
        catch (Exception ex) when (IsShapeError(ex))
        {
            throw BadResponse($"an unreadable embeddings answer: {ex.Message}");
        }
    }

    // The installed models (/api/tags) marked Loaded when /api/ps lists them; a loaded model's context length is the
    // one it runs with (ps's context_length, newer Ollama versions only).
    public async Task<IReadOnlyList<ProviderModel>> ListModelsAsync(CancellationToken cancellationToken)
    {
        var tagsTask = GetTextAsync("api/tags", cancellationToken);
        var psTask = GetTextAsync("api/ps", cancellationToken);
        string tags = await tagsTask.ConfigureAwait(false);
        string? ps;
        try
        {
            ps = await psTask.ConfigureAwait(false);
        }
        catch (WayangException ex) when (ex.Code == ErrorCode.ModelNotFound)
        {
            // An Ollama older than /api/ps answers 404: nothing is known to be loaded.
            ps = null;
        }
        try
        {
            var loaded = new Dictionary<string, int?>(StringComparer.Ordinal);
            if (ps is not null)
            {
                using var psDoc = JsonDocument.Parse(ps);
                foreach (var m in psDoc.RootElement.GetProperty("models").EnumerateArray())
                {
                    int? ctx = m.TryGetProperty("context_length", out var c) && c.TryGetInt32(out int n) ? n : null;
                    loaded[m.GetProperty("name").GetString() ?? ""] = ctx;
                }
            }
            using var doc = JsonDocument.Parse(tags);
            var models = new List<ProviderModel>();
            foreach (var m in doc.RootElement.GetProperty("models").EnumerateArray())
            {
                string name = m.GetProperty("name").GetString() ?? throw new JsonException("A model without a name.");
                long? size = m.TryGetProperty("size", out var s) && s.TryGetInt64(out long b) ? b : null;
                bool isLoaded = loaded.TryGetValue(name, out int? ctx);
                models.Add(new ProviderModel(name, size, ctx, isLoaded));
            }
            return models;
        }
        catch (Exception ex) when (IsShapeError(ex))
        {
            throw BadResponse($"an unreadable model list: {ex.Message}");
        }
    }

    public async Task<OllamaModelDetails> ShowAsync(string model, CancellationToken cancellationToken)
    {
        string text = await PostForTextAsync("api/show", OllamaJson.Show(model), cancellationToken).ConfigureAwait(false);
        try
        {
            using var doc = JsonDocument.Parse(text);
            var root = doc.RootElement;
            string? arch = null;
            int? context = null;
            if (root.TryGetProperty("model_info", out var info) && info.ValueKind == JsonValueKind.Object)
            {
                arch = info.TryGetProperty("general.architecture", out var a) ? a.GetString() : null;
                foreach (var p in info.EnumerateObject())
                {
                    // "<arch>.context_length"; without general.architecture, the one key of that form.
                    bool match = arch is not null ? p.Name == arch + ".context_length" : p.Name.EndsWith(".context_length", StringComparison.Ordinal);
                    if (match && p.Value.TryGetInt32(out int n))
                        context = n;
                }
            }
            var capabilities = root.TryGetProperty("capabilities", out var caps) && caps.ValueKind == JsonValueKind.Array
                ? caps.EnumerateArray().Select(c => c.GetString() ?? "").ToList()
                : [];
            string? parameterSize = null, quantization = null;
            if (root.TryGetProperty("details", out var details) && details.ValueKind == JsonValueKind.Object)
            {
                parameterSize = details.TryGetProperty("parameter_size", out var ps) ? ps.GetString() : null;
                quantization = details.TryGetProperty("quantization_level", out var q) ? q.GetString() : null;
            }
            return new OllamaModelDetails(model, arch, context, capabilities, parameterSize, quantization);
        }
        catch (Exception ex) when (IsShapeError(ex))
        {
            throw BadResponse($"an unreadable model description: {ex.Message}");
        }
    }

    // Loads the model and keeps it loaded for keepAlive (negative: until Ollama stops). The timings' Load is the time
    // the load took (zero when it was already loaded).
    public Task<OllamaTimings> WarmAsync(string model, TimeSpan keepAlive, CancellationToken cancellationToken)
    {
        if (keepAlive == TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(keepAlive), "A zero keep-alive unloads the model; call UnloadAsync.");
        return KeepAliveAsync(model, keepAlive, cancellationToken);
    }

    public Task UnloadAsync(string model, CancellationToken cancellationToken) => KeepAliveAsync(model, TimeSpan.Zero, cancellationToken);

    // The warmer decides when a model goes (UnloadAsync, keep_alive 0), so a warm keeps it loaded until then. The size
    // is the one /api/tags lists (the file; /api/ps's in-memory size is not in ProviderModel).
    async Task<ModelLoadResult> IWarmableProvider.LoadModelAsync(string model, CancellationToken cancellationToken)
    {
        var timings = await WarmAsync(model, Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false);
        var models = await ListModelsAsync(cancellationToken).ConfigureAwait(false);
        long size = models.FirstOrDefault(m => string.Equals(m.Name, model, StringComparison.Ordinal))?.SizeBytes ?? 0;
        return new ModelLoadResult(size, timings.Load, WasLoaded: timings.Load == TimeSpan.Zero);
    }

    Task IWarmableProvider.UnloadModelAsync(string model, CancellationToken cancellationToken) => UnloadAsync(model, cancellationToken);

    async Task<IReadOnlyList<ProviderModel>> IWarmableProvider.ListLoadedModelsAsync(CancellationToken cancellationToken) =>
        [.. (await ListModelsAsync(cancellationToken).ConfigureAwait(false)).Where(m => m.Loaded)];

    public Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken) =>
        AdapterSupport.ProbeAsync(Name, async ct =>
        {
            // GET / answers "Ollama is running" with 200 once the server is up.
            using var request = new HttpRequestMessage(HttpMethod.Get, (Uri?)null);
            using var response = await _http.SendAsync(request, ct, OllamaJson.ReadError).ConfigureAwait(false);
        }, cancellationToken);

    public void Dispose() => _http.Dispose();

    private async Task<OllamaTimings> KeepAliveAsync(string model, TimeSpan keepAlive, CancellationToken cancellationToken)
    {
        string text = await PostForTextAsync("api/generate", OllamaJson.GenerateKeepAlive(model, keepAlive), cancellationToken).ConfigureAwait(false);
        int toolIndex = 0;
        OllamaChatChunk chunk;
        try
        {
            chunk = OllamaJson.ParseChatChunk(text, ref toolIndex);
        }
        catch (Exception ex) when (IsShapeError(ex))
        {
            throw BadResponse($"an unreadable generate answer: {ex.Message}");
        }
        if (chunk.Error is not null)
            throw StreamError(chunk.Error, yielded: false);
        return chunk.Timings ?? throw BadResponse("a generate answer without done");
    }

    private async Task<HttpResponseMessage> PostAsync(string path, byte[] body, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path);
        request.Content = new ByteArrayContent(body);
        request.Content.Headers.ContentType = Json;
        return await _http.SendAsync(request, cancellationToken, OllamaJson.ReadError).ConfigureAwait(false);
    }

    private async Task<string> PostForTextAsync(string path, byte[] body, CancellationToken cancellationToken)
    {
        using var response = await PostAsync(path, body, cancellationToken).ConfigureAwait(false);
        return await ReadTextAsync(response, cancellationToken).ConfigureAwait(false);
    }

    private async Task<string> GetTextAsync(string path, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        using var response = await _http.SendAsync(request, cancellationToken, OllamaJson.ReadError).ConfigureAwait(false);
        return await ReadTextAsync(response, cancellationToken).ConfigureAwait(false);
    }

    private async Task<string> ReadTextAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            return await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsTransportError(ex) && !cancellationToken.IsCancellationRequested)
        {
            throw InferenceErrors.FromException(Name, ex);
        }
    }

    // An {"error": ...} object where an answer was expected (mid-stream, or with a 200): classified by its text;
    // after deltas were yielded it is STREAM_BROKEN (the caller cannot retry what it has partly shown).
    private WayangException StreamError(string text, bool yielded) => AdapterSupport.ErrorObject(Name, OllamaJson.Classify(text), text, yielded);

    private WayangException Broken(string message, ErrorCode cause) => AdapterSupport.Broken(Name, message, cause);

    private WayangException BadResponse(string what) => AdapterSupport.Malformed(Name, what);

    private static bool IsTransportError(Exception ex) => ex is IOException or HttpRequestException;

    private static bool IsShapeError(Exception ex) => ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException;

    private static string NewId() => "ollama-" + Guid.NewGuid().ToString("N");
}
