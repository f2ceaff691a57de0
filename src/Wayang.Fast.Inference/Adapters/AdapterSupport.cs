using System.Buffers;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Providers.Http;

namespace Wayang.Fast.Inference.Adapters;

// What the HTTP/JSON adapters share beyond ProviderHttp: endpoint addresses, JSON bodies written with Utf8JsonWriter
// and read with JsonDocument (no reflection serialization), and the stream-failure rule of IInferenceProvider.
internal static class AdapterSupport
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    // {base}/v1/{path} (path may carry a query). Built by hand rather than by HttpClient's relative resolution, which drops a base path without
    // a trailing slash ("http://gw/openai" + "v1/models" would lose "openai"); a base that already ends in /v1 (the
    // form OpenAI and Mistral document) is not given a second one.
    public static Uri Endpoint(Uri baseAddress, string path)
    {
        string root = baseAddress.GetLeftPart(UriPartial.Path).TrimEnd('/');
        if (!root.EndsWith("/v1", StringComparison.OrdinalIgnoreCase))
            root += "/v1";
        return new Uri(root + "/" + path);
    }

    public static HttpContent JsonContent(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }
        var content = new ReadOnlyMemoryContent(buffer.WrittenMemory);
        content.Headers.ContentType = Json;
        return content;
    }

    // Writes JSON text that came from the caller (a tool's parameter schema, tool arguments) as a value; text that is
    // not one JSON object is refused as an invalid request rather than sent for the provider to reject.
    public static void WriteRawObject(Utf8JsonWriter writer, string provider, string json, string what)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, provider, $"{what} is not a JSON object.");
            doc.RootElement.WriteTo(writer);
        }
        catch (JsonException ex)
        {
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, provider, $"{what} is not valid JSON: {ex.Message}");
        }
    }

    // Reads a successful answer's body as one JSON document; transport failures and malformed JSON are classified,
    // the caller's cancellation passes untouched.
    public static async Task<JsonDocument> ReadJsonAsync(HttpResponseMessage response, string provider, CancellationToken cancellationToken)
    {
        try
        {
            var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                return await JsonDocument.ParseAsync(stream, default, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw InferenceErrors.FromException(provider, ex);
        }
    }

    // A stream that failed: once deltas went out the caller holds a partial answer (STREAM_BROKEN), before that the
    // failure is classified as any other (a malformed event is PROVIDER_BAD_RESPONSE). An error the provider itself
    // reported in the stream (an error event) is not a failure of the stream: adapters throw it as it is.
    public static WayangException StreamFailure(string provider, Exception ex, bool yielded)
    {
        if (yielded)
            return InferenceErrors.Create(ErrorCode.StreamBroken, provider, $"Provider '{provider}' broke the stream mid-answer: {ex.Message}");
        return ex switch
        {
            WayangException known => known,
            JsonException => InferenceErrors.Create(ErrorCode.ProviderBadResponse, provider, $"Provider '{provider}' sent a malformed stream event: {ex.Message}"),
            _ => InferenceErrors.FromException(provider, ex),
        };
    }

    public static WayangException StreamEndedEarly(string provider, bool yielded) =>
        yielded
            ? InferenceErrors.Create(ErrorCode.StreamBroken, provider, $"Provider '{provider}' ended the stream before the completion finished.")
            : InferenceErrors.Create(ErrorCode.ProviderBadResponse, provider, $"Provider '{provider}' ended the stream without an answer.");

    // An error event inside a 200 stream, classified by the provider's error type.
    public static WayangException InStreamError(string provider, ErrorCode code, string message) =>
        InferenceErrors.Create(code, provider, $"Provider '{provider}' reported an error in the stream: {message}");

    // STREAM_BROKEN with the class of what broke it in Details.cause.
    public static WayangException Broken(string provider, string message, ErrorCode cause) =>
        InferenceErrors.Create(ErrorCode.StreamBroken, provider, $"Provider '{provider}': {message}",
            extra: new Dictionary<string, string>(StringComparer.Ordinal) { ["cause"] = cause.ToString() });

    // PROVIDER_BAD_RESPONSE: "Provider 'x' sent <what>." (a malformed line, an answer without done...).
    public static WayangException Malformed(string provider, string what) =>
        InferenceErrors.Create(ErrorCode.ProviderBadResponse, provider, $"Provider '{provider}' sent {what}.");

    // An {"error": text} object where an answer was expected (Ollama, Triton): its classified code (unrecognised text:
    // PROVIDER_UNAVAILABLE, a failing server), or STREAM_BROKEN once deltas were yielded (the caller cannot retry what
    // it has partly shown).
    public static WayangException ErrorObject(string provider, ErrorCode classified, string text, bool yielded)
    {
        var code = classified == ErrorCode.None ? ErrorCode.ProviderUnavailable : classified;
        return yielded ? Broken(provider, $"the stream failed: {text}", code)
            : InferenceErrors.Create(code, provider, $"Provider '{provider}' failed: {text}");
    }

    // A models listing as the health probe; never throws (the caller's own cancellation aside).
    public static async Task<ProviderHealth> ProbeAsync(string provider, Func<CancellationToken, Task> probe, CancellationToken cancellationToken)
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            await probe(cancellationToken).ConfigureAwait(false);
            return new ProviderHealth(true, Stopwatch.GetElapsedTime(start));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Not a failure of the provider: the caller (shutdown, a probe loop's own deadline) stopped asking.
            throw;
        }
        catch (Exception ex)
        {
            string message = ex is WayangException w ? w.Error.ToString() : InferenceErrors.FromException(provider, ex).Error.ToString();
            return new ProviderHealth(false, Stopwatch.GetElapsedTime(start), message);
        }
    }

    // The text of an {"error": ...} body (Ollama's and Triton's error shape; a non-string error as its JSON), or null.
    public static string? ErrorField(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var e)
                ? e.ValueKind == JsonValueKind.String ? e.GetString() : e.GetRawText()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public static string? String(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;

    public static int Int(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var p) && p.ValueKind == JsonValueKind.Number && p.TryGetInt32(out int v) ? v : 0;

    public static bool TryObject(JsonElement element, string name, out JsonElement value)
    {
        if (element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out value) && value.ValueKind == JsonValueKind.Object)
            return true;
        value = default;
        return false;
    }

    public static bool TryArray(JsonElement element, string name, out JsonElement value)
    {
        if (element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out value) && value.ValueKind == JsonValueKind.Array)
            return true;
        value = default;
        return false;
    }

    // The in-process runtimes' model files (llamacpp, gollek): a model name is a file name in the models directory,
    // never a path; an unknown or malformed name is MODEL_NOT_FOUND.
    public static string GgufModelPath(string provider, string modelsDirectory, string model)
    {
        if (string.IsNullOrWhiteSpace(model) || model.IndexOfAny(['/', '\\']) >= 0 || model is "." or ".."
            || model.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
        {
            throw InferenceErrors.Create(ErrorCode.ModelNotFound, provider, $"'{model}' is not a model name of provider '{provider}'.");
        }
        string path = Path.Combine(modelsDirectory, model + ".gguf");
        if (!File.Exists(path))
            throw InferenceErrors.Create(ErrorCode.ModelNotFound, provider, $"Provider '{provider}' has no model '{model}' (no {model}.gguf in its models directory).");
        return path;
    }

    // What the in-process runtimes (llamacpp, gollek) refuse in a chat request; runtime names one in messages ("The
    // llama.cpp adapter").
    public static void ValidateLocalChat(string provider, string runtime, ChatRequest request)
    {
        if (request.Tools.Count > 0)
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, provider, $"{runtime} does not support tools.");
        if (request.ResponseFormat != ResponseFormat.Text)
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, provider, $"{runtime} does not support JSON response formats yet.");
        if (request.Messages.Count == 0)
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, provider, "A chat request needs at least one message.");
        if (request.MaxTokens is < 0)
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, provider, "max_tokens must not be negative.");
    }

    // A whole answer from a stream of deltas (the in-process providers' ChatAsync): the text joined, the last finish
    // reason and usage given, one choice, id "{idPrefix}-{guid}".
    public static async Task<ChatResponse> CollectChatAsync(IAsyncEnumerable<ChatDelta> deltas, string provider, string model, string idPrefix)
    {
        var text = new StringBuilder();
        FinishReason finish = FinishReason.Unspecified;
        TokenUsage usage = new();
        await foreach (var delta in deltas.ConfigureAwait(false))
        {
            text.Append(delta.Content);
            if (delta.FinishReason is FinishReason f)
                finish = f;
            if (delta.Usage is not null)
                usage = delta.Usage;
        }
        return new ChatResponse
        {
            Id = idPrefix + "-" + Guid.NewGuid().ToString("N"),
            Provider = provider,
            Model = model,
            Choices = [new ChatChoice { Index = 0, Message = ChatMessage.Text(ChatRole.Assistant, text.ToString()), FinishReason = finish }],
            Usage = usage,
        };
    }

    public static WayangException BadResponse(string provider, string what) =>
        InferenceErrors.Create(ErrorCode.ProviderBadResponse, provider, $"Provider '{provider}' sent an answer without {what}.");
}
