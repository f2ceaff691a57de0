using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;

namespace Wayang.Fast.Inference.Adapters.Ollama;

// One /api/chat object: a streamed line or the whole unary answer. Done is set on the last one, which alone carries
// the counts and timings.
internal sealed record OllamaChatChunk(
    string? Content,
    List<ToolCall> ToolCalls,
    bool Done,
    string? DoneReason,
    int PromptEvalCount,
    int EvalCount,
    OllamaTimings? Timings,
    string? Error);

// Ollama's native API in and out, with Utf8JsonWriter and JsonDocument: the request carries caller JSON (tool
// parameter schemas, a response schema, tool-call arguments) that is spliced in as JSON, not as strings.
internal static class OllamaJson
{
    public static byte[] ChatRequest(string provider, ChatRequest request, string model, bool stream, TimeSpan? keepAlive)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("model", model);
            w.WriteStartArray("messages");
            foreach (var m in request.Messages)
                WriteMessage(w, provider, m, request.Messages);
            w.WriteEndArray();
            if (request.Tools.Count > 0)
            {
                w.WriteStartArray("tools");
                foreach (var t in request.Tools)
                {
                    w.WriteStartObject();
                    w.WriteString("type", "function");
                    w.WriteStartObject("function");
                    w.WriteString("name", t.Name);
                    if (t.Description is not null)
                        w.WriteString("description", t.Description);
                    w.WritePropertyName("parameters");
                    if (t.ParametersJson is null)
                        w.WriteRawValue("""{"type":"object","properties":{}}""");
                    else
                        WriteJson(w, provider, t.ParametersJson, $"the parameters of tool '{t.Name}'");
                    w.WriteEndObject();
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            switch (request.ResponseFormat)
            {
                case ResponseFormat.JsonObject:
                    w.WriteString("format", "json");
                    break;
                case ResponseFormat.JsonSchema:
                    if (string.IsNullOrWhiteSpace(request.ResponseSchemaJson))
                        throw Invalid(provider, "ResponseFormat JSON_SCHEMA needs ResponseSchemaJson.");
                    w.WritePropertyName("format");
                    WriteJson(w, provider, request.ResponseSchemaJson, "the response schema");
                    break;
            }
            WriteOptions(w, request);
            w.WriteBoolean("stream", stream);
            WriteKeepAlive(w, keepAlive);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    // /api/generate without a prompt: loads the model (or, keep_alive 0, unloads it) and answers at once.
    public static byte[] GenerateKeepAlive(string model, TimeSpan keepAlive)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("model", model);
            w.WriteBoolean("stream", false);
            WriteKeepAlive(w, keepAlive);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    public static byte[] Embed(string model, IReadOnlyList<string> inputs, TimeSpan? keepAlive)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("model", model);
            w.WriteStartArray("input");
            foreach (var s in inputs)
                w.WriteStringValue(s);
            w.WriteEndArray();
            WriteKeepAlive(w, keepAlive);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    public static byte[] Show(string model)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("model", model);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    // Throws JsonException on text that is not a JSON object; the caller classifies it.
    public static OllamaChatChunk ParseChatChunk(string json, ref int toolIndex)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw new JsonException("An Ollama chat object was expected.");
        if (root.TryGetProperty("error", out var error))
            return new OllamaChatChunk(null, [], false, null, 0, 0, null, error.ValueKind == JsonValueKind.String ? error.GetString() : error.GetRawText());
        string? content = null;
        var calls = new List<ToolCall>();
        if (root.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.Object)
        {
            // "thinking" (reasoning models) is not part of the answer the gateway returns.
            if (message.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String)
                content = c.GetString();
            if (message.TryGetProperty("tool_calls", out var tc) && tc.ValueKind == JsonValueKind.Array)
            {
                foreach (var call in tc.EnumerateArray())
                {
                    var fn = call.GetProperty("function");
                    string name = fn.GetProperty("name").GetString() ?? throw new JsonException("A tool call without a name.");
                    string args = fn.TryGetProperty("arguments", out var a) ? a.ValueKind == JsonValueKind.String ? a.GetString() ?? "{}" : a.GetRawText() : "{}";
                    // Ollama's tool calls have no id (some versions send one); the gateway's contract needs one to
                    // pair the tool's result with the call.
                    string id = call.TryGetProperty("id", out var idEl) && idEl.ValueKind == JsonValueKind.String ? idEl.GetString()! : "call_" + toolIndex.ToString(CultureInfo.InvariantCulture);
                    toolIndex++;
                    calls.Add(new ToolCall { Id = id, Name = name, ArgumentsJson = args });
                }
            }
        }
        bool done = root.TryGetProperty("done", out var d) && d.ValueKind == JsonValueKind.True;
        if (!done)
            return new OllamaChatChunk(content, calls, false, null, 0, 0, null, null);
        string? reason = root.TryGetProperty("done_reason", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
        int promptCount = Int(root, "prompt_eval_count"), evalCount = Int(root, "eval_count");
        var timings = new OllamaTimings(Nanos(root, "total_duration"), Nanos(root, "load_duration"), Nanos(root, "prompt_eval_duration"),
            Nanos(root, "eval_duration"), promptCount, evalCount, reason);
        return new OllamaChatChunk(content, calls, true, reason, promptCount, evalCount, timings, null);
    }

    public static FinishReason Finish(string? doneReason, bool calledTools) =>
        calledTools ? FinishReason.ToolCalls : doneReason switch
        {
            "length" => FinishReason.Length,
            // "stop" and anything else Ollama ends on ("load", "unload") is a normal end.
            _ => FinishReason.Stop,
        };

    // Ollama's error body is {"error":"text"}; its text names missing models ("model 'x' not found, try pulling it
    // first") whatever the status (404 on /api/chat, 400 or 500 on other endpoints in some versions).
    public static (ErrorCode Code, string? Message) ReadError(int status, string body)
    {
        string? text = AdapterSupport.ErrorField(body);
        return (Classify(text), text);
    }

    public static ErrorCode Classify(string? text)
    {
        if (text is null)
            return ErrorCode.None;
        if (text.Contains("not found", StringComparison.OrdinalIgnoreCase) && text.Contains("model", StringComparison.OrdinalIgnoreCase))
            return ErrorCode.ModelNotFound;
        if (InferenceErrors.LooksLikeContextLength(text))
            return ErrorCode.ContextLengthExceeded;
        return ErrorCode.None;
    }


    public static WayangException Invalid(string provider, string message) =>
        InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, provider, $"Provider '{provider}': {message}");

    private static void WriteMessage(Utf8JsonWriter w, string provider, ChatMessage m, List<ChatMessage> all)
    {
        w.WriteStartObject();
        w.WriteString("role", m.Role switch
        {
            ChatRole.System => "system",
            ChatRole.User => "user",
            ChatRole.Assistant => "assistant",
            ChatRole.Tool => "tool",
            _ => throw Invalid(provider, $"Unknown chat role {(int)m.Role}."),
        });
        w.WriteString("content", m.TextContent());
        if (m.ToolCalls.Count > 0)
        {
            w.WriteStartArray("tool_calls");
            foreach (var call in m.ToolCalls)
            {
                w.WriteStartObject();
                w.WriteStartObject("function");
                w.WriteString("name", call.Name);
                // Ollama takes the arguments as an object, not as the JSON text OpenAI uses.
                w.WritePropertyName("arguments");
                WriteJson(w, provider, string.IsNullOrWhiteSpace(call.ArgumentsJson) ? "{}" : call.ArgumentsJson, $"the arguments of tool call '{call.Id}'");
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        if (m.Role == ChatRole.Tool)
        {
            // Ollama pairs a result with its call by the tool's name (tool_name), not by an id.
            string? name = m.Name ?? all.SelectMany(x => x.ToolCalls).FirstOrDefault(c => c.Id == m.ToolCallId)?.Name;
            if (name is not null)
                w.WriteString("tool_name", name);
        }
        w.WriteEndObject();
    }

    private static void WriteOptions(Utf8JsonWriter w, ChatRequest r)
    {
        if (r.Temperature is null && r.TopP is null && r.MaxTokens is null && r.Stop.Count == 0 && r.Seed is null)
            return;
        w.WriteStartObject("options");
        if (r.Temperature is double t)
            w.WriteNumber("temperature", t);
        if (r.TopP is double p)
            w.WriteNumber("top_p", p);
        if (r.MaxTokens is int n)
            w.WriteNumber("num_predict", n);
        if (r.Stop.Count > 0)
        {
            w.WriteStartArray("stop");
            foreach (var s in r.Stop)
                w.WriteStringValue(s);
            w.WriteEndArray();
        }
        if (r.Seed is long seed)
            w.WriteNumber("seed", seed);
        w.WriteEndObject();
    }

    // keep_alive as a number is seconds; negative keeps the model loaded until Ollama stops.
    private static void WriteKeepAlive(Utf8JsonWriter w, TimeSpan? keepAlive)
    {
        if (keepAlive is not TimeSpan k)
            return;
        w.WriteNumber("keep_alive", k < TimeSpan.Zero ? -1 : (long)Math.Ceiling(k.TotalSeconds));
    }

    private static void WriteJson(Utf8JsonWriter w, string provider, string json, string what)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            doc.RootElement.WriteTo(w);
        }
        catch (JsonException ex)
        {
            throw Invalid(provider, $"{what} is not valid JSON: {ex.Message}");
        }
    }

    private static int Int(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : 0;

    private static TimeSpan Nanos(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long ns) ? TimeSpan.FromTicks(ns / 100) : TimeSpan.Zero;
}
