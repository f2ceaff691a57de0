using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;
using static Wayang.Fast.Inference.Adapters.AdapterSupport;

namespace Wayang.Fast.Inference.Adapters.Anthropic;

// The Messages and Models wire formats (https://docs.anthropic.com/en/api/messages), API version 2023-06-01.
internal static class AnthropicJson
{
    // The API requires max_tokens; a request without one gets a modest default rather than a refusal.
    public const int DefaultMaxTokens = 1024;

    public static void WriteMessagesRequest(Utf8JsonWriter w, string provider, ChatRequest request, string model, bool stream)
    {
        if (request.ResponseFormat != ResponseFormat.Text)
        {
            // Not harmless to drop: the caller would get prose where it parses JSON.
            throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, provider,
                $"Provider '{provider}' (Anthropic) has no JSON response format; route JSON-mode requests to a provider with JsonMode.");
        }
        w.WriteStartObject();
        w.WriteString("model", model);
        w.WriteNumber("max_tokens", request.MaxTokens ?? DefaultMaxTokens);
        // System messages are a top-level field, not turns.
        var system = request.Messages.Where(m => m.Role == ChatRole.System).Select(m => m.TextContent()).Where(t => t.Length > 0).ToList();
        if (system.Count > 0)
            w.WriteString("system", string.Join("\n\n", system));
        w.WriteStartArray("messages");
        foreach (var turn in Turns(request.Messages))
        {
            w.WriteStartObject();
            w.WriteString("role", turn.Role);
            w.WriteStartArray("content");
            foreach (var message in turn.Messages)
                WriteBlocks(w, provider, message);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        if (request.Stop.Count > 0)
        {
            w.WriteStartArray("stop_sequences");
            foreach (var s in request.Stop)
                w.WriteStringValue(s);
            w.WriteEndArray();
        }
        if (request.Temperature is double temperature)
            w.WriteNumber("temperature", temperature);
        if (request.TopP is double topP)
            w.WriteNumber("top_p", topP);
        if (request.Tools.Count > 0)
        {
            w.WriteStartArray("tools");
            foreach (var tool in request.Tools)
            {
                w.WriteStartObject();
                w.WriteString("name", tool.Name);
                if (tool.Description is not null)
                    w.WriteString("description", tool.Description);
                w.WritePropertyName("input_schema");
                // input_schema is required; a tool without arguments takes an empty object.
                WriteRawObject(w, provider, tool.ParametersJson ?? """{"type":"object","properties":{}}""", $"The parameters of tool '{tool.Name}'");
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        if (stream)
            w.WriteBoolean("stream", true);
        w.WriteEndObject();
    }

    // Turns alternate user/assistant; tool results are user content. Consecutive messages of one role are merged into
    // one turn, which is also where the API wants every result of a parallel tool call: together, in the next user turn.
    private static List<(string Role, List<ChatMessage> Messages)> Turns(List<ChatMessage> messages)
    {
        var turns = new List<(string Role, List<ChatMessage> Messages)>();
        foreach (var message in messages)
        {
            if (message.Role == ChatRole.System)
                continue;
            string role = message.Role == ChatRole.Assistant ? "assistant" : "user";
            if (turns.Count > 0 && turns[^1].Role == role)
                turns[^1].Messages.Add(message);
            else
                turns.Add((role, [message]));
        }
        return turns;
    }

    private static void WriteBlocks(Utf8JsonWriter w, string provider, ChatMessage message)
    {
        if (message.Role == ChatRole.Tool)
        {
            if (message.ToolCallId is null)
                throw InferenceErrors.Create(ErrorCode.InferenceRequestInvalid, provider, "A tool message needs the id of the call it answers.");
            w.WriteStartObject();
            w.WriteString("type", "tool_result");
            w.WriteString("tool_use_id", message.ToolCallId);
            w.WriteString("content", message.TextContent());
            w.WriteEndObject();
            return;
        }
        foreach (var part in message.Parts)
        {
            // The API refuses empty text blocks.
            if (string.IsNullOrEmpty(part.Text))
                continue;
            w.WriteStartObject();
            w.WriteString("type", "text");
            w.WriteString("text", part.Text);
            w.WriteEndObject();
        }
        if (message.Role != ChatRole.Assistant)
            return;
        foreach (var call in message.ToolCalls)
        {
            w.WriteStartObject();
            w.WriteString("type", "tool_use");
            w.WriteString("id", call.Id);
            w.WriteString("name", call.Name);
            w.WritePropertyName("input");
            WriteRawObject(w, provider, string.IsNullOrWhiteSpace(call.ArgumentsJson) ? "{}" : call.ArgumentsJson, $"The arguments of tool call '{call.Id}'");
            w.WriteEndObject();
        }
    }

    public static ChatResponse ReadMessage(JsonElement root, string provider, string model)
    {
        if (TryObject(root, "error", out var error))
            throw ErrorFromObject(provider, error, root.GetRawText());
        if (!TryArray(root, "content", out var content))
            throw BadResponse(provider, "content");
        var message = new ChatMessage { Role = ChatRole.Assistant };
        foreach (var block in content.EnumerateArray())
        {
            switch (String(block, "type"))
            {
                case "text":
                    message.Parts.Add(ChatContentPart.FromText(String(block, "text") ?? ""));
                    break;
                case "tool_use":
                    message.ToolCalls.Add(new ToolCall
                    {
                        Id = String(block, "id") ?? "",
                        Name = String(block, "name") ?? throw BadResponse(provider, "a tool_use block's name"),
                        ArgumentsJson = TryObject(block, "input", out var input) ? input.GetRawText() : "{}",
                    });
                    break;
                default:
                    // thinking, redacted_thinking, server tool blocks: not part of the gateway's contract.
                    break;
            }
        }
        return new ChatResponse
        {
            Id = String(root, "id") ?? "",
            Provider = provider,
            Model = String(root, "model") ?? model,
            Choices = [new ChatChoice { Index = 0, Message = message, FinishReason = MapStop(String(root, "stop_reason")) }],
            Usage = TryObject(root, "usage", out var usage)
                ? new TokenUsage { PromptTokens = InputTokens(usage), CompletionTokens = Int(usage, "output_tokens") }
                : new TokenUsage(),
        };
    }

    // Cached prompt tokens are counted apart from input_tokens; the prompt is all of them.
    public static int InputTokens(JsonElement usage) =>
        Int(usage, "input_tokens") + Int(usage, "cache_creation_input_tokens") + Int(usage, "cache_read_input_tokens");

    public static FinishReason MapStop(string? reason) => reason switch
    {
        "end_turn" or "stop_sequence" => FinishReason.Stop,
        "max_tokens" or "model_context_window_exceeded" => FinishReason.Length,
        "tool_use" => FinishReason.ToolCalls,
        "refusal" => FinishReason.ContentFilter,
        // pause_turn and anything newer.
        _ => FinishReason.Unspecified,
    };

    // ProviderHttp's readError: {"type":"error","error":{"type":"...","message":"..."}}.
    public static (ErrorCode Code, string? Message) ReadError(int status, string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (!TryObject(doc.RootElement, "error", out var error))
                return (ErrorCode.None, null);
            string? message = String(error, "message");
            return (Classify(String(error, "type"), message), message);
        }
        catch (JsonException)
        {
            return (ErrorCode.None, null);
        }
    }

    public static ErrorCode Classify(string? type, string? message) => type switch
    {
        "rate_limit_error" => ErrorCode.InferenceRateLimited,
        "overloaded_error" or "api_error" => ErrorCode.ProviderUnavailable,
        "authentication_error" => ErrorCode.ProviderAuthFailed,
        "permission_error" => ErrorCode.ProviderPermissionDenied,
        "not_found_error" => ErrorCode.ModelNotFound,
        "invalid_request_error" => InferenceErrors.LooksLikeContextLength(message) ? ErrorCode.ContextLengthExceeded : ErrorCode.InferenceRequestInvalid,
        "request_too_large" => ErrorCode.InferenceRequestInvalid,
        "timeout_error" => ErrorCode.InferenceTimeout,
        _ => ErrorCode.None,
    };

    // An error in a 200 body or an "error" event of a stream; an unknown type is the provider failing.
    public static WayangException ErrorFromObject(string provider, JsonElement error, string raw)
    {
        string? message = String(error, "message");
        var code = Classify(String(error, "type"), message);
        return InStreamError(provider, code == ErrorCode.None ? ErrorCode.ProviderUnavailable : code,
            $"{String(error, "type") ?? "error"}: {message ?? raw}");
    }

    public static (List<ProviderModel> Models, string? NextAfter) ReadModels(JsonElement root, string provider)
    {
        if (!TryArray(root, "data", out var data))
            throw BadResponse(provider, "data");
        var models = new List<ProviderModel>();
        foreach (var item in data.EnumerateArray())
            models.Add(new ProviderModel(String(item, "id") ?? throw BadResponse(provider, "a model id")));
        bool more = root.TryGetProperty("has_more", out var hasMore) && hasMore.ValueKind == JsonValueKind.True;
        return (models, more ? String(root, "last_id") : null);
    }
}
