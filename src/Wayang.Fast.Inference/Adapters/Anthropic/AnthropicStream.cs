using System.Net.ServerSentEvents;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using static Wayang.Fast.Inference.Adapters.AdapterSupport;

namespace Wayang.Fast.Inference.Adapters.Anthropic;

// Turns the Messages stream (message_start, content_block_start/delta/stop, message_delta, message_stop, ping,
// error) into deltas. Content blocks are numbered across text and tool use; the contract numbers tool calls alone,
// so tool_use blocks get their own ordinal. The stop reason (message_delta) is held until message_stop.
internal sealed class AnthropicStream(string provider) : ISseDecoder
{
    private readonly Dictionary<int, ToolBlock> _tools = [];
    private int _inputTokens;
    private int _outputTokens;
    private string? _stopReason;
    private bool _stopped;

    public bool Done { get; private set; }
    public bool Finished => _stopped;

    public WayangException? Read(SseItem<string> item, List<ChatDelta> output)
    {
        if (item.Data.Length == 0)
            return null;
        using var doc = JsonDocument.Parse(item.Data);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw new JsonException("An event is not a JSON object.");
        // The data's own type, not the SSE event name: the documentation guarantees the former.
        switch (String(root, "type"))
        {
            case "message_start":
                if (TryObject(root, "message", out var message) && TryObject(message, "usage", out var startUsage))
                {
                    _inputTokens = AnthropicJson.InputTokens(startUsage);
                    _outputTokens = Int(startUsage, "output_tokens");
                }
                break;
            case "content_block_start":
                BlockStart(root, output);
                break;
            case "content_block_delta":
                BlockDelta(root, output);
                break;
            case "content_block_stop":
                if (_tools.TryGetValue(Int(root, "index"), out var stopped) && !stopped.HasArguments)
                {
                    // A call without arguments streams no input_json_delta; its arguments are still an object.
                    output.Add(ToolDelta(new ToolCallDelta { Index = stopped.Ordinal, ArgumentsJson = "{}" }));
                }
                break;
            case "message_delta":
                if (TryObject(root, "delta", out var delta))
                {
                    _stopReason = String(delta, "stop_reason") ?? _stopReason;
                    _stopped = true;
                }
                if (TryObject(root, "usage", out var usage))
                {
                    // Cumulative counts; input tokens appear here only in newer API revisions.
                    _outputTokens = Int(usage, "output_tokens");
                    if (AnthropicJson.InputTokens(usage) is > 0 and var input)
                        _inputTokens = input;
                }
                break;
            case "message_stop":
                Complete(output);
                break;
            case "error":
                return TryObject(root, "error", out var error)
                    ? AnthropicJson.ErrorFromObject(provider, error, item.Data)
                    : InStreamError(provider, ErrorCode.ProviderUnavailable, item.Data);
            default:
                // ping, and event types added later (the documentation says to expect them).
                break;
        }
        return null;
    }

    private void BlockStart(JsonElement root, List<ChatDelta> output)
    {
        if (!TryObject(root, "content_block", out var block))
            throw new JsonException("content_block_start without a content_block.");
        switch (String(block, "type"))
        {
            case "text":
                if (String(block, "text") is { Length: > 0 } text)
                    output.Add(new ChatDelta { Content = text });
                break;
            case "tool_use":
                var tool = new ToolBlock(_tools.Count);
                _tools[Int(root, "index")] = tool;
                output.Add(ToolDelta(new ToolCallDelta
                {
                    Index = tool.Ordinal,
                    Id = String(block, "id") ?? "",
                    Name = String(block, "name") ?? throw new JsonException("A tool_use block without a name."),
                }));
                break;
        }
    }

    private void BlockDelta(JsonElement root, List<ChatDelta> output)
    {
        if (!TryObject(root, "delta", out var delta))
            throw new JsonException("content_block_delta without a delta.");
        switch (String(delta, "type"))
        {
            case "text_delta":
                if (String(delta, "text") is { Length: > 0 } text)
                    output.Add(new ChatDelta { Content = text });
                break;
            case "input_json_delta":
                if (_tools.TryGetValue(Int(root, "index"), out var tool) && String(delta, "partial_json") is { Length: > 0 } json)
                {
                    tool.HasArguments = true;
                    output.Add(ToolDelta(new ToolCallDelta { Index = tool.Ordinal, ArgumentsJson = json }));
                }
                break;
            default:
                // thinking_delta, signature_delta, citations_delta.
                break;
        }
    }

    private static ChatDelta ToolDelta(ToolCallDelta call) => new() { ToolCalls = [call] };

    public void Complete(List<ChatDelta> output)
    {
        Done = true;
        output.Add(new ChatDelta
        {
            FinishReason = AnthropicJson.MapStop(_stopReason),
            Usage = new TokenUsage { PromptTokens = _inputTokens, CompletionTokens = _outputTokens },
        });
    }

    private sealed class ToolBlock(int ordinal)
    {
        public int Ordinal { get; } = ordinal;
        public bool HasArguments { get; set; }
    }
}
