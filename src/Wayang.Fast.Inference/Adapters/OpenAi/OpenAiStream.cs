using System.Net.ServerSentEvents;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using static Wayang.Fast.Inference.Adapters.AdapterSupport;

namespace Wayang.Fast.Inference.Adapters.OpenAi;

// Turns the chat.completion.chunk events of one stream into deltas. The chunk with finish_reason comes before the
// usage-only chunk (stream_options.include_usage) and before "data: [DONE]", while the contract wants the finishing
// delta last and carrying the usage: finishing deltas are held until [DONE] (or a clean end after them).
internal sealed class OpenAiStream(string provider) : ISseDecoder
{
    private readonly List<ChatDelta> _finished = [];
    private TokenUsage? _usage;

    public bool Done { get; private set; }
    public bool Finished => _finished.Count > 0;

    // Adds to output what the event carries for the caller now. Throws JsonException on a malformed chunk; returns
    // the error a chunk reports ({"error":{...}}), which the caller throws as it is.
    public WayangException? Read(SseItem<string> item, List<ChatDelta> output)
    {
        string data = item.Data;
        if (data.Length == 0)
            return null;
        if (data == "[DONE]")
        {
            Complete(output);
            return null;
        }
        using var doc = JsonDocument.Parse(data);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw new JsonException("A chunk is not a JSON object.");
        if (TryObject(root, "error", out var error))
            return OpenAiJson.ErrorFromObject(provider, error, data);
        if (TryObject(root, "usage", out var usage))
            _usage = OpenAiJson.ReadUsage(usage);
        if (root.TryGetProperty("choices", out var choices))
        {
            if (choices.ValueKind != JsonValueKind.Array)
                throw new JsonException("A chunk's choices is not an array.");
            foreach (var choice in choices.EnumerateArray())
                ReadChoice(choice, output);
        }
        return null;
    }

    private void ReadChoice(JsonElement choice, List<ChatDelta> output)
    {
        var delta = new ChatDelta { Index = Int(choice, "index") };
        if (TryObject(choice, "delta", out var d))
        {
            delta.Content = String(d, "content") is { Length: > 0 } content ? content : null;
            if (TryArray(d, "tool_calls", out var calls))
            {
                delta.ToolCalls = [];
                foreach (var call in calls.EnumerateArray())
                {
                    TryObject(call, "function", out var function);
                    delta.ToolCalls.Add(new ToolCallDelta
                    {
                        Index = Int(call, "index"),
                        Id = String(call, "id"),
                        Name = String(function, "name"),
                        ArgumentsJson = String(function, "arguments"),
                    });
                }
            }
        }
        if (String(choice, "finish_reason") is string reason)
        {
            delta.FinishReason = OpenAiJson.MapFinish(reason);
            _finished.Add(delta);
        }
        else if (delta.Content is not null || delta.ToolCalls is { Count: > 0 })
        {
            output.Add(delta);
        }
    }

    // The end of the stream proper: the held finishing deltas, the last with the usage. [DONE] without any finish
    // still ends the completion (the server said so), with a reason the contract leaves unspecified.
    public void Complete(List<ChatDelta> output)
    {
        Done = true;
        if (_finished.Count == 0)
            _finished.Add(new ChatDelta { FinishReason = FinishReason.Unspecified });
        _finished[^1].Usage = _usage;
        output.AddRange(_finished);
    }
}
