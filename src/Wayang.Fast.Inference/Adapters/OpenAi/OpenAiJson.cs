using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;
using static Wayang.Fast.Inference.Adapters.AdapterSupport;

namespace Wayang.Fast.Inference.Adapters.OpenAi;

// The Chat Completions, Embeddings and Models wire formats (https://platform.openai.com/docs/api-reference), in the
// subset that OpenAI-compatible servers (vLLM, trtllm-serve, llama.cpp server, Mistral) also speak.
internal static class OpenAiJson
{
    public static void WriteChatRequest(Utf8JsonWriter w, string provider, ChatRequest request, string model, bool stream)
    {
        w.WriteStartObject();
        w.WriteString("model", model);
        w.WriteStartArray("messages");
        foreach (var message in request.Messages)
            WriteMessage(w, provider, message);
        w.WriteEndArray();
        if (request.Tools.Count > 0)
        {
            w.WriteStartArray("tools");
            foreach (var tool in request.Tools)
            {
                w.WriteStartObject();
                w.WriteString("type", "function");
                w.WriteStartObject("function");
                w.WriteString("name", tool.Name);
                if (tool.Description is not null)
                    w.WriteString("description", tool.Description);
                if (tool.ParametersJson is not null)
                {
                    w.WritePropertyName("parameters");
                    WriteRawObject(w, provider, tool.ParametersJson, $"The parameters of tool '{tool.Name}'");
                }
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        if (request.Temperature is double temperature)
            w.WriteNumber("temperature", temperature);
        if (request.TopP is double topP)
            w.WriteNumber("top_p", topP);
        if (request.MaxTokens is int maxTokens)
            w.WriteNumber("max_tokens", maxTokens);
        if (request.Stop.Count > 0)
        {
            w.WriteStartArray("stop");
            foreach (var s in request.Stop)
                w.WriteStringValue(s);
            w.WriteEndArray();
        }
        if (request.Seed is long seed)
            w.WriteNumber("seed", seed);
        switch (request.ResponseFormat)
        {
            case ResponseFormat.JsonObject:
                w.WriteStartObject("response_format");
                w.WriteString("type", "json_object");
                w.WriteEndObject();
                break;
            case ResponseFormat.JsonSchema:
                if (request.ResponseSchemaJson is null)
                    throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, provider, "A JSON_SCHEMA response format needs a schema.");
                w.WriteStartObject("response_format");
                w.WriteString("type", "json_schema");
                w.WriteStartObject("json_schema");
                // The API requires a name; the gateway's contract has none to offer.
                w.WriteString("name", "response");
                w.WritePropertyName("schema");
                WriteRawObject(w, provider, request.ResponseSchemaJson, "The response schema");
                w.WriteEndObject();
                w.WriteEndObject();
                break;
        }
        if (stream)
        {
            w.WriteBoolean("stream", true);
            // Without it a stream carries no token counts.
            w.WriteStartObject("stream_options");
            w.WriteBoolean("include_usage", true);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    private static void WriteMessage(Utf8JsonWriter w, string provider, ChatMessage message)
    {
        w.WriteStartObject();
        w.WriteString("role", message.Role switch
        {
            ChatRole.System => "system",
            ChatRole.User => "user",
            ChatRole.Assistant => "assistant",
            ChatRole.Tool => "tool",
            _ => throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, provider, $"Unknown chat role {message.Role}."),
        });
        string text = message.TextContent();
        if (message.Role == ChatRole.Assistant && message.ToolCalls.Count > 0)
        {
            // An assistant turn that only called tools has null content, as the API returns it.
            if (text.Length > 0)
                w.WriteString("content", text);
            else
                w.WriteNull("content");
            w.WriteStartArray("tool_calls");
            foreach (var call in message.ToolCalls)
            {
                w.WriteStartObject();
                w.WriteString("id", call.Id);
                w.WriteString("type", "function");
                w.WriteStartObject("function");
                w.WriteString("name", call.Name);
                // Arguments travel as a JSON string, exactly as the model wrote them.
                w.WriteString("arguments", call.ArgumentsJson);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        else
        {
            w.WriteString("content", text);
        }
        if (message.Role == ChatRole.Tool)
        {
            if (message.ToolCallId is null)
                throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, provider, "A tool message needs the id of the call it answers.");
            w.WriteString("tool_call_id", message.ToolCallId);
        }
        else if (message.Name is not null)
        {
            w.WriteString("name", message.Name);
        }
        w.WriteEndObject();
    }

    public static ChatResponse ReadChatResponse(JsonElement root, string provider, string model)
    {
        if (TryObject(root, "error", out var error))
            throw ErrorFromObject(provider, error, root.GetRawText());
        if (!TryArray(root, "choices", out var choices))
            throw BadResponse(provider, "choices");
        var response = new ChatResponse
        {
            Id = String(root, "id") ?? "",
            Provider = provider,
            Model = String(root, "model") ?? model,
            Usage = TryObject(root, "usage", out var usage) ? ReadUsage(usage) : new TokenUsage(),
        };
        foreach (var choice in choices.EnumerateArray())
        {
            if (!TryObject(choice, "message", out var m))
                throw BadResponse(provider, "a choice's message");
            var finish = MapFinish(String(choice, "finish_reason"));
            string? content = String(m, "content");
            // Structured outputs put a refusal beside (not in) the content.
            if (String(m, "refusal") is string refusal && content is null)
            {
                content = refusal;
                finish = FinishReason.ContentFilter;
            }
            var message = ChatMessage.Text(ChatRole.Assistant, content ?? "");
            if (TryArray(m, "tool_calls", out var calls))
            {
                foreach (var call in calls.EnumerateArray())
                {
                    TryObject(call, "function", out var function);
                    message.ToolCalls.Add(new ToolCall
                    {
                        Id = String(call, "id") ?? "",
                        Name = String(function, "name") ?? throw BadResponse(provider, "a tool call's function name"),
                        ArgumentsJson = String(function, "arguments") ?? "{}",
                    });
                }
            }
            response.Choices.Add(new ChatChoice { Index = Int(choice, "index"), Message = message, FinishReason = finish });
        }
        return response;
    }

    public static TokenUsage ReadUsage(JsonElement usage) =>
        new() { PromptTokens = Int(usage, "prompt_tokens"), CompletionTokens = Int(usage, "completion_tokens") };

    public static FinishReason MapFinish(string? reason) => reason switch
    {
        "stop" => FinishReason.Stop,
        "length" => FinishReason.Length,
        "tool_calls" or "function_call" => FinishReason.ToolCalls,
        "content_filter" => FinishReason.ContentFilter,
        // vLLM's "abort" and anything newer: finished, for a reason the contract has no name for.
        _ => FinishReason.Unspecified,
    };

    // ProviderHttp's readError: OpenAI's {"error":{"message","type","param","code"}}, or vLLM's older top-level
    // {"object":"error","message","type","code"}. A code or type the status alone would misread wins.
    public static (ErrorCode Code, string? Message) ReadError(int status, string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            var error = TryObject(root, "error", out var e) ? e : root;
            return (Classify(error), String(error, "message"));
        }
        catch (JsonException)
        {
            return (ErrorCode.None, null);
        }
    }

    private static ErrorCode Classify(JsonElement error)
    {
        string code = String(error, "code") ?? "";
        string type = String(error, "type") ?? "";
        string message = String(error, "message") ?? "";
        // The documented codes first; the wording heuristics only for servers that give none (vLLM, llama.cpp), so
        // a rate-limit message that mentions tokens is not read as a context-length error.
        return (code, type) switch
        {
            ("context_length_exceeded", _) => ErrorCode.ContextLengthExceeded,
            ("content_filter" or "content_policy_violation", _) => ErrorCode.ContentFiltered,
            ("rate_limit_exceeded", _) or (_, "rate_limit_error" or "requests" or "tokens") => ErrorCode.InferenceRateLimited,
            ("invalid_api_key", _) or (_, "authentication_error") => ErrorCode.ProviderAuthFailed,
            ("model_not_found", _) => ErrorCode.ModelNotFound,
            _ when InferenceErrors.LooksLikeContextLength(message) => ErrorCode.ContextLengthExceeded,
            _ when InferenceErrors.LooksLikeContentFilter(message) => ErrorCode.ContentFiltered,
            _ => ErrorCode.None,
        };
    }

    // An error object in a 200 body or inside a stream: classified by its code or type, then by the HTTP status
    // vLLM puts in a numeric "code"; a bare error is the provider failing.
    public static WayangException ErrorFromObject(string provider, JsonElement error, string raw)
    {
        var code = Classify(error);
        string message = String(error, "message") ?? raw;
        if (error.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.Number && c.TryGetInt32(out int status) && status >= 400)
            return InferenceErrors.FromHttpStatus(provider, (System.Net.HttpStatusCode)status, raw, null, code, message);
        return InStreamError(provider, code == ErrorCode.None ? ErrorCode.ProviderUnavailable : code, message);
    }

    public static void WriteEmbeddingRequest(Utf8JsonWriter w, EmbeddingRequest request, string model)
    {
        w.WriteStartObject();
        w.WriteString("model", model);
        w.WriteStartArray("input");
        foreach (var input in request.Inputs)
            w.WriteStringValue(input);
        w.WriteEndArray();
        w.WriteString("encoding_format", "float");
        w.WriteEndObject();
    }

    public static EmbeddingResponse ReadEmbeddingResponse(JsonElement root, string provider, string model, int inputs)
    {
        if (!TryArray(root, "data", out var data))
            throw BadResponse(provider, "data");
        var vectors = new float[]?[inputs];
        foreach (var item in data.EnumerateArray())
        {
            int index = Int(item, "index");
            if (index < 0 || index >= inputs || !TryArray(item, "embedding", out var embedding))
                throw BadResponse(provider, "an embedding for each input");
            var vector = new float[embedding.GetArrayLength()];
            int i = 0;
            foreach (var x in embedding.EnumerateArray())
                vector[i++] = x.GetSingle();
            vectors[index] = vector;
        }
        var response = new EmbeddingResponse
        {
            Provider = provider,
            Model = String(root, "model") ?? model,
            Usage = new TokenUsage { PromptTokens = TryObject(root, "usage", out var usage) ? Int(usage, "prompt_tokens") : 0 },
        };
        foreach (var v in vectors)
            response.Vectors.Add(v ?? throw BadResponse(provider, "an embedding for each input"));
        return response;
    }

    public static List<ProviderModel> ReadModels(JsonElement root, string provider)
    {
        if (!TryArray(root, "data", out var data))
            throw BadResponse(provider, "data");
        var models = new List<ProviderModel>();
        foreach (var item in data.EnumerateArray())
        {
            string id = String(item, "id") ?? throw BadResponse(provider, "a model id");
            // vLLM and trtllm-serve report the served context length.
            int maxLen = Int(item, "max_model_len");
            models.Add(new ProviderModel(id, ContextLength: maxLen > 0 ? maxLen : null));
        }
        return models;
    }
}
