using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;

namespace Wayang.Fast.Server.Http;

internal sealed record ParsedChat(ChatRequest Request, bool Stream, bool IncludeUsage);

internal sealed record ParsedEmbeddings(EmbeddingRequest Request, bool Base64);

// OpenAI's request bodies read with JsonDocument (no reflection serialization) into the gateway's contracts. Every
// refusal is INVALID_ARGUMENT with the offending field in details["param"], so the 400 names it. Fields OpenAI defines
// that change nothing here (user, frequency_penalty, logprobs, ...) are accepted and ignored; fields whose meaning
// cannot be honoured (n > 1, non-text content parts, a forced tool_choice) are refused rather than silently dropped.
internal static class OpenAiRequests
{
    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64 };

    public static JsonDocument Parse(ReadOnlyMemory<byte> body)
    {
        try
        {
            var doc = JsonDocument.Parse(body, DocumentOptions);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                doc.Dispose();
                throw Invalid("The request body must be a JSON object.", null);
            }
            return doc;
        }
        catch (JsonException ex)
        {
            throw Invalid($"The request body is not valid JSON: {ex.Message}", null);
        }
    }

    public static ParsedChat ToChat(JsonElement root, string tenantId)
    {
        var request = new ChatRequest { TenantId = tenantId, Model = RequiredString(root, "model") };
        if (!root.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
            throw Invalid("'messages' must be a non-empty array.", "messages");
        int i = 0;
        foreach (var m in messages.EnumerateArray())
            request.Messages.Add(ToMessage(m, $"messages[{i++}]"));

        if (Present(root, "tools", out var tools))
        {
            if (tools.ValueKind != JsonValueKind.Array)
                throw Invalid("'tools' must be an array.", "tools");
            i = 0;
            foreach (var t in tools.EnumerateArray())
                request.Tools.Add(ToTool(t, $"tools[{i++}]"));
        }
        if (Present(root, "tool_choice", out var choice))
        {
            // Only the choices the gateway can honour: "none" is the same request without tools.
            string? mode = choice.ValueKind == JsonValueKind.String ? choice.GetString() : null;
            if (mode == "none")
                request.Tools.Clear();
            else if (mode != "auto")
                throw Invalid("Only tool_choice \"auto\" and \"none\" are supported.", "tool_choice");
        }
        if (Present(root, "n", out var n) && (n.ValueKind != JsonValueKind.Number || !n.TryGetInt32(out int count) || count != 1))
            throw Invalid("Only n = 1 is supported.", "n");

        request.Temperature = OptionalDouble(root, "temperature");
        request.TopP = OptionalDouble(root, "top_p");
        // max_completion_tokens is the newer name; when both come, it wins, as in OpenAI's API.
        request.MaxTokens = OptionalPositiveInt(root, "max_completion_tokens") ?? OptionalPositiveInt(root, "max_tokens");
        request.Seed = OptionalLong(root, "seed");
        if (Present(root, "stop", out var stop))
        {
            if (stop.ValueKind == JsonValueKind.String)
                request.Stop.Add(stop.GetString()!);
            else if (stop.ValueKind == JsonValueKind.Array && stop.EnumerateArray().All(s => s.ValueKind == JsonValueKind.String))
                request.Stop.AddRange(stop.EnumerateArray().Select(s => s.GetString()!));
            else
                throw Invalid("'stop' must be a string or an array of strings.", "stop");
        }
        if (Present(root, "response_format", out var format))
            ReadResponseFormat(format, request);

        bool stream = OptionalBool(root, "stream") ?? false;
        bool includeUsage = false;
        if (Present(root, "stream_options", out var options))
        {
            if (options.ValueKind != JsonValueKind.Object)
                throw Invalid("'stream_options' must be an object.", "stream_options");
            includeUsage = OptionalBool(options, "include_usage", "stream_options.include_usage") ?? false;
        }
        return new ParsedChat(request, stream, includeUsage);
    }

    public static ParsedEmbeddings ToEmbeddings(JsonElement root, string tenantId)
    {
        var request = new EmbeddingRequest { TenantId = tenantId, Model = RequiredString(root, "model") };
        if (!root.TryGetProperty("input", out var input))
            throw Invalid("'input' is required.", "input");
        if (input.ValueKind == JsonValueKind.String)
            request.Inputs.Add(input.GetString()!);
        else if (input.ValueKind == JsonValueKind.Array && input.GetArrayLength() > 0 && input.EnumerateArray().All(s => s.ValueKind == JsonValueKind.String))
            request.Inputs.AddRange(input.EnumerateArray().Select(s => s.GetString()!));
        else
            throw Invalid("'input' must be a string or a non-empty array of strings (token arrays are not supported).", "input");
        bool base64 = false;
        if (Present(root, "encoding_format", out var encoding))
        {
            base64 = encoding.ValueKind == JsonValueKind.String ? encoding.GetString() switch
            {
                "float" => false,
                "base64" => true,
                _ => throw Invalid("'encoding_format' must be \"float\" or \"base64\".", "encoding_format"),
            } : throw Invalid("'encoding_format' must be \"float\" or \"base64\".", "encoding_format");
        }
        // A provider returns the vectors its model makes: truncating them here would not be what OpenAI does.
        if (Present(root, "dimensions", out _))
            throw Invalid("'dimensions' is not supported.", "dimensions");
        return new ParsedEmbeddings(request, base64);
    }

    private static ChatMessage ToMessage(JsonElement m, string at)
    {
        if (m.ValueKind != JsonValueKind.Object)
            throw Invalid($"'{at}' must be an object.", at);
        var message = new ChatMessage
        {
            Role = RequiredString(m, "role", at + ".role") switch
            {
                // "developer" is OpenAI's newer name for the system role.
                "system" or "developer" => ChatRole.System,
                "user" => ChatRole.User,
                "assistant" => ChatRole.Assistant,
                "tool" => ChatRole.Tool,
                var other => throw Invalid($"'{at}.role' must be system, developer, user, assistant or tool (got '{other}').", at + ".role"),
            },
        };
        if (Present(m, "content", out var content))
        {
            if (content.ValueKind == JsonValueKind.String)
            {
                message.Parts.Add(ChatContentPart.FromText(content.GetString()!));
            }
            else if (content.ValueKind == JsonValueKind.Array)
            {
                int i = 0;
                foreach (var part in content.EnumerateArray())
                {
                    string partAt = $"{at}.content[{i++}]";
                    if (part.ValueKind != JsonValueKind.Object || OptionalString(part, "type", partAt + ".type") != "text")
                        throw Invalid($"'{partAt}' must be a {{\"type\":\"text\"}} part; other content parts are not supported.", partAt);
                    message.Parts.Add(ChatContentPart.FromText(RequiredString(part, "text", partAt + ".text", allowEmpty: true)));
                }
            }
            else
            {
                throw Invalid($"'{at}.content' must be a string, an array of text parts, or null.", at + ".content");
            }
        }
        if (Present(m, "tool_calls", out var calls))
        {
            if (calls.ValueKind != JsonValueKind.Array)
                throw Invalid($"'{at}.tool_calls' must be an array.", at + ".tool_calls");
            int i = 0;
            foreach (var call in calls.EnumerateArray())
            {
                string callAt = $"{at}.tool_calls[{i++}]";
                if (call.ValueKind != JsonValueKind.Object || !call.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object)
                    throw Invalid($"'{callAt}' must be an object with a 'function'.", callAt);
                message.ToolCalls.Add(new ToolCall
                {
                    Id = RequiredString(call, "id", callAt + ".id"),
                    Name = RequiredString(function, "name", callAt + ".function.name"),
                    ArgumentsJson = OptionalString(function, "arguments", callAt + ".function.arguments") ?? "{}",
                });
            }
        }
        message.ToolCallId = OptionalString(m, "tool_call_id", at + ".tool_call_id");
        message.Name = OptionalString(m, "name", at + ".name");
        if (message.Role == ChatRole.Tool && string.IsNullOrEmpty(message.ToolCallId))
            throw Invalid($"'{at}' is a tool message without 'tool_call_id'.", at + ".tool_call_id");
        return message;
    }

    private static ToolSpec ToTool(JsonElement t, string at)
    {
        if (t.ValueKind != JsonValueKind.Object || OptionalString(t, "type", at + ".type") != "function"
            || !t.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object)
            throw Invalid($"'{at}' must be {{\"type\":\"function\",\"function\":{{...}}}}.", at);
        string? parameters = null;
        if (Present(function, "parameters", out var p))
        {
            if (p.ValueKind != JsonValueKind.Object)
                throw Invalid($"'{at}.function.parameters' must be a JSON Schema object.", at + ".function.parameters");
            parameters = p.GetRawText();
        }
        return new ToolSpec
        {
            Name = RequiredString(function, "name", at + ".function.name"),
            Description = OptionalString(function, "description", at + ".function.description"),
            ParametersJson = parameters,
        };
    }

    private static void ReadResponseFormat(JsonElement format, ChatRequest request)
    {
        if (format.ValueKind != JsonValueKind.Object)
            throw Invalid("'response_format' must be an object.", "response_format");
        switch (RequiredString(format, "type", "response_format.type"))
        {
            case "text":
                request.ResponseFormat = ResponseFormat.Text;
                break;
            case "json_object":
                request.ResponseFormat = ResponseFormat.JsonObject;
                break;
            case "json_schema":
                if (!format.TryGetProperty("json_schema", out var spec) || spec.ValueKind != JsonValueKind.Object
                    || !spec.TryGetProperty("schema", out var schema) || schema.ValueKind != JsonValueKind.Object)
                    throw Invalid("'response_format.json_schema.schema' must be a JSON Schema object.", "response_format.json_schema.schema");
                request.ResponseFormat = ResponseFormat.JsonSchema;
                request.ResponseSchemaJson = schema.GetRawText();
                break;
            default:
                throw Invalid("'response_format.type' must be text, json_object or json_schema.", "response_format.type");
        }
    }

    // A property that is there and not null (OpenAI clients send explicit nulls for unset fields).
    private static bool Present(JsonElement obj, string name, out JsonElement value) =>
        obj.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    private static string RequiredString(JsonElement obj, string name, string? at = null, bool allowEmpty = false)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.String || (!allowEmpty && v.GetString()!.Length == 0))
            throw Invalid($"'{at ?? name}' must be a non-empty string.", at ?? name);
        return v.GetString()!;
    }

    private static string? OptionalString(JsonElement obj, string name, string at)
    {
        if (!Present(obj, name, out var v))
            return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw Invalid($"'{at}' must be a string.", at);
    }

    private static double? OptionalDouble(JsonElement obj, string name)
    {
        if (!Present(obj, name, out var v))
            return null;
        return v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) ? d : throw Invalid($"'{name}' must be a number.", name);
    }

    private static int? OptionalPositiveInt(JsonElement obj, string name)
    {
        if (!Present(obj, name, out var v))
            return null;
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) && n > 0 ? n : throw Invalid($"'{name}' must be a positive integer.", name);
    }

    private static long? OptionalLong(JsonElement obj, string name)
    {
        if (!Present(obj, name, out var v))
            return null;
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long n) ? n : throw Invalid($"'{name}' must be an integer.", name);
    }

    private static bool? OptionalBool(JsonElement obj, string name, string? at = null)
    {
        if (!Present(obj, name, out var v))
            return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Invalid($"'{at ?? name}' must be a boolean.", at ?? name),
        };
    }

    public static WayangException Invalid(string message, string? param) =>
        new(new WayangError(ErrorCode.InvalidArgument, message, details: param is null ? null : new Dictionary<string, string>(StringComparer.Ordinal) { ["param"] = param }));
}
