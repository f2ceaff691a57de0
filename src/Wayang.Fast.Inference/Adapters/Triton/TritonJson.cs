using System.Buffers;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;

namespace Wayang.Fast.Inference.Adapters.Triton;

internal static class TritonJson
{
    // The generate extension takes text, not messages, so the chat is rendered into one prompt: a "<role>: text" line
    // per message, ending with "assistant: " for the model to continue. A model with its own chat template expects
    // that template applied by the caller (a system prompt in it) or by the ensemble's preprocessing.
    public static string RenderPrompt(IReadOnlyList<ChatMessage> messages)
    {
        var sb = new StringBuilder();
        foreach (var m in messages)
        {
            sb.Append(m.Role switch
            {
                ChatRole.System => "system",
                ChatRole.User => "user",
                ChatRole.Assistant => "assistant",
                ChatRole.Tool => "tool",
                _ => "user",
            });
            sb.Append(": ").Append(m.TextContent()).Append('\n');
        }
        return sb.Append("assistant: ").ToString();
    }

    // The TensorRT-LLM ensemble's inputs by name. max_tokens is a required input of the ensemble, hence the default.
    public static byte[] Generate(ChatRequest request, bool stream, int defaultMaxTokens)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("text_input", RenderPrompt(request.Messages));
            w.WriteNumber("max_tokens", request.MaxTokens ?? defaultMaxTokens);
            if (request.Temperature is double t)
                w.WriteNumber("temperature", t);
            if (request.TopP is double p)
                w.WriteNumber("top_p", p);
            if (request.Stop.Count > 0)
            {
                w.WriteStartArray("stop_words");
                foreach (var s in request.Stop)
                    w.WriteStringValue(s);
                w.WriteEndArray();
            }
            if (request.Seed is long seed)
                w.WriteNumber("random_seed", seed);
            w.WriteBoolean("stream", stream);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    // Triton's error body is {"error":"text"}; an unknown model is "Request for unknown model: 'x' is not found" (400
    // or 404 by version), and a model that is not ready is "... is not ready" (400: it is unavailable, not invalid).
    public static (ErrorCode Code, string? Message) ReadError(int status, string body)
    {
        string? text = AdapterSupport.ErrorField(body);
        return (Classify(text), text);
    }

    public static ErrorCode Classify(string? text)
    {
        if (text is null)
            return ErrorCode.None;
        if (text.Contains("unknown model", StringComparison.OrdinalIgnoreCase)
            || (text.Contains("model", StringComparison.OrdinalIgnoreCase) && text.Contains("not found", StringComparison.OrdinalIgnoreCase)))
            return ErrorCode.ModelNotFound;
        if (text.Contains("not ready", StringComparison.OrdinalIgnoreCase))
            return ErrorCode.ProviderUnavailable;
        if (Providers.InferenceErrors.LooksLikeContextLength(text))
            return ErrorCode.ContextLengthExceeded;
        return ErrorCode.None;
    }


    // One generate answer or stream event: the text, or the error an event carries instead.
    public static (string? Text, string? Error) ParseOutput(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw new JsonException("A Triton generate object was expected.");
        if (root.TryGetProperty("error", out var e))
            return (null, e.ValueKind == JsonValueKind.String ? e.GetString() : e.GetRawText());
        var text = root.GetProperty("text_output");
        return (text.ValueKind == JsonValueKind.String ? text.GetString() : throw new JsonException("text_output is not a string."), null);
    }
}
