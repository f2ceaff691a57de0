using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Models;

namespace Wayang.Fast.Server.Http;

// OpenAI's response objects written with Utf8JsonWriter: chat.completion, chat.completion.chunk, the model list, the
// embedding list and the error object. Wayang's own facts ride in "x_wayang" members, which OpenAI clients ignore.
internal static class OpenAiResponses
{
    public static void WriteError(Utf8JsonWriter w, WayangError error, OpenAiError mapped)
    {
        w.WriteStartObject();
        w.WriteStartObject("error");
        w.WriteString("message", error.Message);
        w.WriteString("type", mapped.Type);
        if (error.Details.TryGetValue("param", out var param))
            w.WriteString("param", param);
        else
            w.WriteNull("param");
        if (mapped.Code is null)
            w.WriteNull("code");
        else
            w.WriteString("code", mapped.Code);
        // The registry name: the same code the binary protocol and the SDK report for this failure.
        w.WriteString("x_wayang_code", error.Name);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    public static void WriteCompletion(Utf8JsonWriter w, string id, long created, ChatResponse response)
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "chat.completion");
        w.WriteNumber("created", created);
        w.WriteString("model", response.Model);
        w.WriteStartArray("choices");
        foreach (var choice in response.Choices)
        {
            w.WriteStartObject();
            w.WriteNumber("index", choice.Index);
            w.WriteStartObject("message");
            w.WriteString("role", "assistant");
            var message = choice.Message;
            // OpenAI sends content null (not "") when the model only called tools.
            if (message.Parts.Count == 0 && message.ToolCalls.Count > 0)
                w.WriteNull("content");
            else
                w.WriteString("content", message.TextContent());
            if (message.ToolCalls.Count > 0)
            {
                w.WriteStartArray("tool_calls");
                foreach (var call in message.ToolCalls)
                {
                    w.WriteStartObject();
                    w.WriteString("id", call.Id);
                    w.WriteString("type", "function");
                    w.WriteStartObject("function");
                    w.WriteString("name", call.Name);
                    w.WriteString("arguments", call.ArgumentsJson);
                    w.WriteEndObject();
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            w.WriteEndObject();
            w.WriteString("finish_reason", FinishReasonName(choice.FinishReason) ?? "stop");
            w.WriteEndObject();
        }
        w.WriteEndArray();
        WriteUsage(w, response.Usage);
        w.WriteStartObject("x_wayang");
        w.WriteString("provider", response.Provider);
        w.WriteStartArray("fallback_path");
        foreach (var step in response.FallbackPath)
        {
            w.WriteStartObject();
            w.WriteString("provider", step.Provider);
            w.WriteString("model", step.Model);
            w.WriteString("error", step.ErrorCode);
            if (step.Message is not null)
                w.WriteString("message", step.Message);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();
    }

    // One delta as a chunk. first: the stream's first chunk for this choice, which carries the assistant role.
    // includeUsage: OpenAI then sends "usage": null on every chunk but the last, usage-only one.
    public static void WriteChunk(Utf8JsonWriter w, string id, long created, string model, ChatDelta delta, bool first, bool includeUsage)
    {
        StartChunk(w, id, created, model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", delta.Index);
        w.WriteStartObject("delta");
        if (first)
            w.WriteString("role", "assistant");
        if (delta.Content is not null)
            w.WriteString("content", delta.Content);
        else if (first)
            w.WriteNull("content");
        if (delta.ToolCalls is { Count: > 0 } calls)
        {
            w.WriteStartArray("tool_calls");
            foreach (var call in calls)
            {
                w.WriteStartObject();
                w.WriteNumber("index", call.Index);
                if (call.Id is not null)
                {
                    w.WriteString("id", call.Id);
                    w.WriteString("type", "function");
                }
                w.WriteStartObject("function");
                if (call.Name is not null)
                    w.WriteString("name", call.Name);
                if (call.ArgumentsJson is not null)
                    w.WriteString("arguments", call.ArgumentsJson);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
        if (delta.FinishReason is { } finish && FinishReasonName(finish) is { } name)
            w.WriteString("finish_reason", name);
        else
            w.WriteNull("finish_reason");
        w.WriteEndObject();
        w.WriteEndArray();
        if (includeUsage)
            w.WriteNull("usage");
        w.WriteEndObject();
    }

    public static void WriteUsageChunk(Utf8JsonWriter w, string id, long created, string model, TokenUsage usage)
    {
        StartChunk(w, id, created, model);
        w.WriteStartArray("choices");
        w.WriteEndArray();
        WriteUsage(w, usage);
        w.WriteEndObject();
    }

    // Aliases are listed as models of their own: an OpenAI client picks a model by the id it sees here, and an alias is
    // a name it may send.
    public static void WriteModels(Utf8JsonWriter w, IEnumerable<ModelEntry> models)
    {
        var ids = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in models)
        {
            ids.TryAdd(entry.Id, entry.Provider);
            foreach (var alias in entry.Aliases)
                ids.TryAdd(alias, entry.Provider);
        }
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        foreach (var (id, provider) in ids)
        {
            w.WriteStartObject();
            w.WriteString("id", id);
            w.WriteString("object", "model");
            // The registry keeps no creation time; 0 says so rather than inventing one.
            w.WriteNumber("created", 0);
            w.WriteString("owned_by", provider);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    public static void WriteEmbeddings(Utf8JsonWriter w, EmbeddingResponse response, bool base64)
    {
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        for (int i = 0; i < response.Vectors.Count; i++)
        {
            var vector = response.Vectors[i];
            w.WriteStartObject();
            w.WriteString("object", "embedding");
            w.WriteNumber("index", i);
            if (base64)
            {
                w.WriteBase64String("embedding", LittleEndianBytes(vector));
            }
            else
            {
                w.WriteStartArray("embedding");
                foreach (float f in vector)
                    w.WriteNumberValue(f);
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("model", response.Model);
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", response.Usage.PromptTokens);
        w.WriteNumber("total_tokens", response.Usage.PromptTokens);
        w.WriteEndObject();
        w.WriteStartObject("x_wayang");
        w.WriteString("provider", response.Provider);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    // OpenAI's base64 embeddings are the float32 values in little-endian order, whatever this machine's order is.
    private static byte[] LittleEndianBytes(float[] vector)
    {
        var bytes = new byte[vector.Length * sizeof(float)];
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.AsBytes(vector.AsSpan()).CopyTo(bytes);
        }
        else
        {
            for (int i = 0; i < vector.Length; i++)
                BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), vector[i]);
        }
        return bytes;
    }

    private static void StartChunk(Utf8JsonWriter w, string id, long created, string model)
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "chat.completion.chunk");
        w.WriteNumber("created", created);
        w.WriteString("model", model);
    }

    private static void WriteUsage(Utf8JsonWriter w, TokenUsage usage)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", usage.PromptTokens);
        w.WriteNumber("completion_tokens", usage.CompletionTokens);
        w.WriteNumber("total_tokens", usage.TotalTokens);
        w.WriteEndObject();
    }

    // Cancelled reads as "stop": the only client that could see it is the one that went away.
    private static string? FinishReasonName(FinishReason reason) => reason switch
    {
        FinishReason.Stop or FinishReason.Cancelled => "stop",
        FinishReason.Length => "length",
        FinishReason.ToolCalls => "tool_calls",
        FinishReason.ContentFilter => "content_filter",
        _ => null,
    };
}
