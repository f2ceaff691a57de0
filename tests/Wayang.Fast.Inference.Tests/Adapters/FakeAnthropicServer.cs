using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Wayang.Fast.Inference.Tests.Fakes;
using static Wayang.Fast.Inference.Tests.Adapters.FakeStreamPlan;

namespace Wayang.Fast.Inference.Tests.Adapters;

// Anthropic's API as documented (https://docs.anthropic.com/en/api): POST /v1/messages (a message, or with "stream"
// the event stream message_start, content_block_start/delta/stop per block, ping, message_delta, message_stop),
// GET /v1/models (paged with has_more/last_id); errors as {"type":"error","error":{"type","message"}}. Requests
// without x-api-key or anthropic-version are refused the way the API refuses them.
public sealed class FakeAnthropicServer : IAsyncDisposable
{
    private FakeAnthropicServer(ScriptedHttpServer server)
    {
        Server = server;
        server.Handler = HandleAsync;
    }

    public ScriptedHttpServer Server { get; }
    public Uri Address => Server.Address;
    public FakeReply Reply { get; set; } = new();
    public FakeStreamPlan Stream { get; set; } = new();
    public FakeError? Error { get; set; }
    public List<string> Models { get; } = ["claude-test-1", "claude-test-2", "claude-test-3"];
    public int ModelsPageSize { get; set; } = 2;
    // Events written in place of message_delta/message_stop, for an error event mid-stream.
    public string? ErrorEvent { get; set; }
    public RecordedRequest LastRequest => Server.Requests.Last();

    public static async Task<FakeAnthropicServer> StartAsync() => new(await ScriptedHttpServer.StartAsync());

    public static string ErrorBody(string type, string message) => Json(new JsonObject
    {
        ["type"] = "error",
        ["error"] = new JsonObject { ["type"] = type, ["message"] = message },
        ["request_id"] = "req_1",
    });

    private async Task HandleAsync(HttpContext context, RecordedRequest request)
    {
        if (Error is not null)
        {
            await Error.WriteAsync(context);
            return;
        }
        if (!request.Headers.ContainsKey("x-api-key"))
        {
            await new FakeError(401, ErrorBody("authentication_error", "x-api-key header is required")).WriteAsync(context);
            return;
        }
        if (!request.Headers.ContainsKey("anthropic-version"))
        {
            await new FakeError(400, ErrorBody("invalid_request_error", "anthropic-version: header is required")).WriteAsync(context);
            return;
        }
        string path = context.Request.Path.Value ?? "";
        switch (request.Method, path)
        {
            case ("POST", "/v1/messages"):
                var body = request.Json;
                string model = body.GetProperty("model").GetString()!;
                if (!body.TryGetProperty("max_tokens", out _))
                {
                    await new FakeError(400, ErrorBody("invalid_request_error", "max_tokens: Field required")).WriteAsync(context);
                    return;
                }
                if (body.TryGetProperty("stream", out var s) && s.GetBoolean())
                    await Stream.WriteAsync(context, Events(model), "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\n\n");
                else
                    await WriteJsonAsync(context, Message(model));
                break;
            case ("GET", "/v1/models"):
                await WriteJsonAsync(context, ModelsPage(context.Request.Query["after_id"].ToString()));
                break;
            default:
                await new FakeError(404, ErrorBody("not_found_error", $"Not found: {path}")).WriteAsync(context);
                break;
        }
    }

    private static Task WriteJsonAsync(HttpContext context, JsonNode node)
    {
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(Json(node));
    }

    private string StopReason => Reply.FinishReason ?? (Reply.ToolCalls.Count > 0 ? "tool_use" : "end_turn");

    private JsonObject Message(string model)
    {
        var content = new JsonArray();
        if (Reply.Text.Length > 0)
            content.Add(new JsonObject { ["type"] = "text", ["text"] = Reply.Text });
        foreach (var c in Reply.ToolCalls)
            content.Add(new JsonObject { ["type"] = "tool_use", ["id"] = c.Id, ["name"] = c.Name, ["input"] = JsonNode.Parse(c.ArgumentsJson) });
        return new JsonObject
        {
            ["id"] = "msg_1",
            ["type"] = "message",
            ["role"] = "assistant",
            ["model"] = model,
            ["content"] = content,
            ["stop_reason"] = StopReason,
            ["stop_sequence"] = null,
            ["usage"] = new JsonObject { ["input_tokens"] = Reply.PromptTokens, ["output_tokens"] = Reply.CompletionTokens },
        };
    }

    private List<string> Events(string model)
    {
        var events = new List<string>();
        void Event(string type, JsonObject data)
        {
            // "type" first, as the API writes it; a node has one parent, so each property moves over.
            var ordered = new JsonObject { ["type"] = type };
            foreach (var (k, v) in data.ToList())
            {
                data.Remove(k);
                ordered[k] = v;
            }
            events.Add($"event: {type}\ndata: {Json(ordered)}\n\n");
        }

        Event("message_start", new JsonObject
        {
            ["message"] = new JsonObject
            {
                ["id"] = "msg_1", ["type"] = "message", ["role"] = "assistant", ["content"] = new JsonArray(), ["model"] = model,
                ["stop_reason"] = null, ["stop_sequence"] = null,
                ["usage"] = new JsonObject { ["input_tokens"] = Reply.PromptTokens, ["output_tokens"] = 1 },
            },
        });
        int index = 0;
        if (Reply.Text.Length > 0)
        {
            Event("content_block_start", new JsonObject { ["index"] = index, ["content_block"] = new JsonObject { ["type"] = "text", ["text"] = "" } });
            Event("ping", []);
            foreach (var piece in Reply.TextPieces())
                Event("content_block_delta", new JsonObject { ["index"] = index, ["delta"] = new JsonObject { ["type"] = "text_delta", ["text"] = piece } });
            Event("content_block_stop", new JsonObject { ["index"] = index });
            index++;
        }
        foreach (var c in Reply.ToolCalls)
        {
            Event("content_block_start", new JsonObject
            {
                ["index"] = index,
                ["content_block"] = new JsonObject { ["type"] = "tool_use", ["id"] = c.Id, ["name"] = c.Name, ["input"] = new JsonObject() },
            });
            // The API opens with an empty fragment, then the JSON in pieces.
            int half = c.ArgumentsJson.Length / 2;
            foreach (var fragment in new[] { "", c.ArgumentsJson[..half], c.ArgumentsJson[half..] })
                Event("content_block_delta", new JsonObject { ["index"] = index, ["delta"] = new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = fragment } });
            Event("content_block_stop", new JsonObject { ["index"] = index });
            index++;
        }
        if (ErrorEvent is not null)
        {
            events.Add(ErrorEvent);
            return events;
        }
        Event("message_delta", new JsonObject
        {
            ["delta"] = new JsonObject { ["stop_reason"] = StopReason, ["stop_sequence"] = null },
            ["usage"] = new JsonObject { ["output_tokens"] = Reply.CompletionTokens },
        });
        Event("message_stop", []);
        return events;
    }

    private JsonObject ModelsPage(string afterId)
    {
        int start = afterId.Length == 0 ? 0 : Models.IndexOf(afterId) + 1;
        var page = Models.Skip(start).Take(ModelsPageSize).ToList();
        var data = new JsonArray();
        foreach (var m in page)
            data.Add(new JsonObject { ["type"] = "model", ["id"] = m, ["display_name"] = m, ["created_at"] = "2025-01-01T00:00:00Z" });
        return new JsonObject
        {
            ["data"] = data,
            ["has_more"] = start + page.Count < Models.Count,
            ["first_id"] = page.FirstOrDefault(),
            ["last_id"] = page.LastOrDefault(),
        };
    }

    public ValueTask DisposeAsync() => Server.DisposeAsync();
}
