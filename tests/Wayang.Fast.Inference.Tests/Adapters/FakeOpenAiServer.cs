using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Wayang.Fast.Inference.Tests.Fakes;
using static Wayang.Fast.Inference.Tests.Adapters.FakeStreamPlan;

namespace Wayang.Fast.Inference.Tests.Adapters;

// OpenAI's HTTP API as documented (https://platform.openai.com/docs/api-reference): POST /v1/chat/completions
// (chat.completion, or chat.completion.chunk events ending in a usage chunk and "data: [DONE]" when "stream" is
// true), POST /v1/embeddings, GET /v1/models; errors as {"error":{"message","type","param","code"}}.
public sealed class FakeOpenAiServer : IAsyncDisposable
{
    private FakeOpenAiServer(ScriptedHttpServer server)
    {
        Server = server;
        server.Handler = HandleAsync;
    }

    public ScriptedHttpServer Server { get; }
    public Uri Address => Server.Address;
    public FakeReply Reply { get; set; } = new();
    public FakeStreamPlan Stream { get; set; } = new();
    public FakeError? Error { get; set; }
    public List<string> Models { get; } = ["gpt-test", "llama-3-8b"];
    public RecordedRequest LastRequest => Server.Requests.Last();

    public static async Task<FakeOpenAiServer> StartAsync() => new(await ScriptedHttpServer.StartAsync());

    public static string ErrorBody(string message, string type, string? code) => Json(new JsonObject
    {
        ["error"] = new JsonObject { ["message"] = message, ["type"] = type, ["param"] = null, ["code"] = code },
    });

    private async Task HandleAsync(HttpContext context, RecordedRequest request)
    {
        if (Error is not null)
        {
            await Error.WriteAsync(context);
            return;
        }
        string path = context.Request.Path.Value ?? "";
        switch (request.Method, path)
        {
            case ("POST", "/v1/chat/completions"):
                var body = request.Json;
                string model = body.GetProperty("model").GetString()!;
                if (body.TryGetProperty("stream", out var s) && s.GetBoolean())
                    await Stream.WriteAsync(context, ChunkEvents(model), "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"delta\":{\"content\n\n");
                else
                    await WriteJsonAsync(context, Completion(model));
                break;
            case ("POST", "/v1/embeddings"):
                await WriteJsonAsync(context, Embeddings(request));
                break;
            case ("GET", "/v1/models"):
                var data = new JsonArray();
                foreach (var m in Models)
                    data.Add(new JsonObject { ["id"] = m, ["object"] = "model", ["created"] = 1_700_000_000, ["owned_by"] = "test", ["max_model_len"] = 8192 });
                await WriteJsonAsync(context, new JsonObject { ["object"] = "list", ["data"] = data });
                break;
            default:
                context.Response.StatusCode = 404;
                await context.Response.WriteAsync(ErrorBody($"Unknown path {path}", "invalid_request_error", "unknown_url"));
                break;
        }
    }

    private static Task WriteJsonAsync(HttpContext context, JsonNode node)
    {
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(Json(node));
    }

    private string Finish => Reply.FinishReason ?? (Reply.ToolCalls.Count > 0 ? "tool_calls" : "stop");

    private JsonObject Usage => new()
    {
        ["prompt_tokens"] = Reply.PromptTokens,
        ["completion_tokens"] = Reply.CompletionTokens,
        ["total_tokens"] = Reply.PromptTokens + Reply.CompletionTokens,
    };

    private JsonObject Completion(string model)
    {
        var message = new JsonObject { ["role"] = "assistant", ["content"] = Reply.Text.Length > 0 ? Reply.Text : null };
        if (Reply.ToolCalls.Count > 0)
        {
            var calls = new JsonArray();
            foreach (var c in Reply.ToolCalls)
                calls.Add(new JsonObject { ["id"] = c.Id, ["type"] = "function", ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.ArgumentsJson } });
            message["tool_calls"] = calls;
        }
        return new JsonObject
        {
            ["id"] = "chatcmpl-1",
            ["object"] = "chat.completion",
            ["created"] = 1_700_000_000,
            ["model"] = model,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["message"] = message, ["logprobs"] = null, ["finish_reason"] = Finish }),
            ["usage"] = Usage,
        };
    }

    private List<string> ChunkEvents(string model)
    {
        var events = new List<string>();
        void Chunk(JsonObject delta, string? finish = null) => events.Add("data: " + Json(new JsonObject
        {
            ["id"] = "chatcmpl-1",
            ["object"] = "chat.completion.chunk",
            ["created"] = 1_700_000_000,
            ["model"] = model,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["logprobs"] = null, ["finish_reason"] = finish }),
        }) + "\n\n");

        Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" });
        foreach (var piece in Reply.TextPieces())
            Chunk(new JsonObject { ["content"] = piece });
        for (int i = 0; i < Reply.ToolCalls.Count; i++)
        {
            var c = Reply.ToolCalls[i];
            Chunk(new JsonObject
            {
                ["tool_calls"] = new JsonArray(new JsonObject
                {
                    ["index"] = i, ["id"] = c.Id, ["type"] = "function", ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = "" },
                }),
            });
            int half = c.ArgumentsJson.Length / 2;
            foreach (var fragment in new[] { c.ArgumentsJson[..half], c.ArgumentsJson[half..] })
                Chunk(new JsonObject { ["tool_calls"] = new JsonArray(new JsonObject { ["index"] = i, ["function"] = new JsonObject { ["arguments"] = fragment } }) });
        }
        Chunk(new JsonObject(), Finish);
        events.Add("data: " + Json(new JsonObject
        {
            ["id"] = "chatcmpl-1", ["object"] = "chat.completion.chunk", ["created"] = 1_700_000_000, ["model"] = model, ["choices"] = new JsonArray(), ["usage"] = Usage,
        }) + "\n\n");
        events.Add("data: [DONE]\n\n");
        return events;
    }

    private static JsonObject Embeddings(RecordedRequest request)
    {
        var inputs = request.Json.GetProperty("input").EnumerateArray().Select(e => e.GetString()!).ToList();
        var data = new JsonArray();
        // In reverse: the API gives each item its index, and the order of data is not a promise.
        for (int i = inputs.Count - 1; i >= 0; i--)
            data.Add(new JsonObject { ["object"] = "embedding", ["index"] = i, ["embedding"] = new JsonArray(i, inputs[i].Length, 0.5) });
        return new JsonObject
        {
            ["object"] = "list",
            ["data"] = data,
            ["model"] = request.Json.GetProperty("model").GetString(),
            ["usage"] = new JsonObject { ["prompt_tokens"] = inputs.Count * 3, ["total_tokens"] = inputs.Count * 3 },
        };
    }

    public ValueTask DisposeAsync() => Server.DisposeAsync();
}
