using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Wayang.Fast.Inference.Tests.Fakes;

namespace Wayang.Fast.Inference.Tests.Adapters;

public sealed record FakeOllamaModel(long Size, string Architecture, int ContextLength);

public enum FakeStreamFault
{
    None,
    // A line that is not JSON.
    MalformedLine,
    // The connection is cut.
    Disconnect,
    // An {"error": ...} line, as Ollama writes when generation fails after the answer started.
    ErrorLine,
    // The response ends cleanly but without the done object.
    EndWithoutDone,
    // Nothing more is written: the stream waits until the client goes away.
    Hold,
}

// Ollama's native API as documented (docs/api.md): GET / and /api/version, /api/tags, /api/ps, POST /api/show,
// /api/generate (no prompt: load or, keep_alive 0, unload), /api/embed and /api/chat, unary or NDJSON-streamed
// ("stream" defaults to true), with errors as {"error": "..."}. Tests script the reply and the faults.
public sealed class FakeOllamaServer : IAsyncDisposable
{
    public const long TotalNs = 2_500_000_000, LoadNs = 1_200_000_000, PromptEvalNs = 300_000_000, EvalNs = 900_000_000;
    public const int PromptEvalCount = 26;

    private FakeOllamaServer(ScriptedHttpServer http)
    {
        Http = http;
        http.Handler = HandleAsync;
    }

    public ScriptedHttpServer Http { get; }
    public Uri Address => Http.Address;
    public ConcurrentDictionary<string, FakeOllamaModel> Models { get; } = new(StringComparer.Ordinal);
    public ConcurrentDictionary<string, bool> Loaded { get; } = new(StringComparer.Ordinal);

    public string Reply { get; set; } = "Hello!";
    public List<(string Name, string ArgumentsJson)> ReplyToolCalls { get; } = [];
    public string DoneReason { get; set; } = "stop";
    // The stream's objects carry this many Unicode scalars of the reply each; the bytes go out in PieceSizes pieces.
    public int ScalarsPerLine { get; set; } = 2;
    public int[] PieceSizes { get; set; } = [1 << 16];
    public TimeSpan PieceDelay { get; set; }
    public FakeStreamFault Fault { get; set; }
    public int FaultAfterLines { get; set; } = 1;
    public string FaultError { get; set; } = "an error was encountered while running the model: unexpected EOF";

    // When set, a fault waits for it: a test completes it once it has taken the deltas before the fault (a reset
    // connection may otherwise drop data the client had not read yet).
    public TaskCompletionSource? FaultGate { get; set; }

    // Every request of these paths fails with the status and {"error": text}.
    public (int Status, string Error, string? RetryAfter)? Fail { get; set; }

    // Completed when a streamed chat's request was aborted by the client.
    public TaskCompletionSource ChatAborted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static async Task<FakeOllamaServer> StartAsync()
    {
        var server = new FakeOllamaServer(await ScriptedHttpServer.StartAsync());
        server.Models["llama3.2:3b"] = new FakeOllamaModel(2_019_393_189, "llama", 131072);
        server.Models["nomic-embed-text:latest"] = new FakeOllamaModel(274_302_450, "nomic-bert", 2048);
        return server;
    }

    public RecordedRequest Last(string path) => Http.Requests.Last(r => r.PathAndQuery == path);

    public ValueTask DisposeAsync() => Http.DisposeAsync();

    private async Task HandleAsync(HttpContext context, RecordedRequest request)
    {
        var response = context.Response;
        string route = request.Method + " " + request.PathAndQuery;
        if (Fail is { } fail && request.PathAndQuery.StartsWith("/api/", StringComparison.Ordinal))
        {
            if (fail.RetryAfter is not null)
                response.Headers.RetryAfter = fail.RetryAfter;
            await JsonAsync(response, "{\"error\":" + FakeJson.Quote(fail.Error) + "}", fail.Status);
            return;
        }
        switch (route)
        {
            case "GET /":
                response.ContentType = "text/plain; charset=utf-8";
                await response.WriteAsync("Ollama is running");
                return;
            case "GET /api/version":
                await JsonAsync(response, "{\"version\":\"0.12.3\"}");
                return;
            case "GET /api/tags":
                await JsonAsync(response, "{\"models\":[" + string.Join(",", Models.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m =>
                    $"{{\"name\":{FakeJson.Quote(m.Key)},\"model\":{FakeJson.Quote(m.Key)},\"modified_at\":\"2025-05-01T10:00:00.000000+00:00\",\"size\":{m.Value.Size},"
                    + $"\"digest\":\"a80c4f17acd5\",\"details\":{{\"format\":\"gguf\",\"family\":{FakeJson.Quote(m.Value.Architecture)},\"parameter_size\":\"3.2B\",\"quantization_level\":\"Q4_K_M\"}}}}")) + "]}");
                return;
            case "GET /api/ps":
                await JsonAsync(response, "{\"models\":[" + string.Join(",", Loaded.Keys.Order(StringComparer.Ordinal).Select(name =>
                    $"{{\"name\":{FakeJson.Quote(name)},\"model\":{FakeJson.Quote(name)},\"size\":{Models[name].Size},\"digest\":\"a80c4f17acd5\","
                    + $"\"expires_at\":\"2099-01-01T00:00:00Z\",\"size_vram\":{Models[name].Size},\"context_length\":4096}}")) + "]}");
                return;
        }
        var body = request.Json;
        string model = body.TryGetProperty("model", out var m) ? m.GetString() ?? "" : "";
        if (request.Method == "POST" && !Models.ContainsKey(model))
        {
            await JsonAsync(response, "{\"error\":" + FakeJson.Quote($"model \"{model}\" not found, try pulling it first") + "}", 404);
            return;
        }
        switch (route)
        {
            case "POST /api/show":
                var info = Models[model];
                await JsonAsync(response, "{\"modelfile\":\"FROM x\",\"parameters\":\"stop \\\"<|eot_id|>\\\"\",\"template\":\"{{ .Prompt }}\","
                    + "\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":\"llama\",\"parameter_size\":\"3.2B\",\"quantization_level\":\"Q4_K_M\"},"
                    + $"\"model_info\":{{\"general.architecture\":{FakeJson.Quote(info.Architecture)},\"general.parameter_count\":3212749888,"
                    + $"\"{info.Architecture}.block_count\":28,\"{info.Architecture}.context_length\":{info.ContextLength},\"{info.Architecture}.embedding_length\":3072}},"
                    + "\"capabilities\":[\"completion\",\"tools\"]}");
                return;
            case "POST /api/generate":
                await GenerateAsync(response, body, model);
                return;
            case "POST /api/embed":
                var inputs = body.GetProperty("input").ValueKind == JsonValueKind.String ? [body.GetProperty("input").GetString()!]
                    : body.GetProperty("input").EnumerateArray().Select(e => e.GetString()!).ToList();
                Loaded[model] = true;
                await JsonAsync(response, $"{{\"model\":{FakeJson.Quote(model)},\"embeddings\":["
                    + string.Join(",", inputs.Select((s, i) => string.Create(CultureInfo.InvariantCulture, $"[{s.Length},{i},0.5]")))
                    + $"],\"total_duration\":14143917,\"load_duration\":1019500,\"prompt_eval_count\":{inputs.Count * 3}}}");
                return;
            case "POST /api/chat":
                Loaded[model] = true;
                bool stream = !body.TryGetProperty("stream", out var s) || s.ValueKind != JsonValueKind.False;
                if (stream)
                    await StreamChatAsync(context, model);
                else
                    await JsonAsync(response, Line(model, Reply, ReplyToolCalls) [..^1].Replace("\"done\":false}", FinalFields(), StringComparison.Ordinal));
                return;
        }
        response.StatusCode = 404;
        await response.WriteAsync("404 page not found");
    }

    private async Task GenerateAsync(HttpResponse response, JsonElement body, string model)
    {
        // No prompt: Ollama loads (keep_alive > 0 or absent) or unloads (keep_alive 0) the model and answers at once.
        bool unload = body.TryGetProperty("keep_alive", out var k) && k.ValueKind == JsonValueKind.Number && k.GetDouble() == 0;
        bool wasLoaded = Loaded.ContainsKey(model);
        if (unload)
            Loaded.TryRemove(model, out _);
        else
            Loaded[model] = true;
        long load = unload || wasLoaded ? 0 : LoadNs;
        await JsonAsync(response, $"{{\"model\":{FakeJson.Quote(model)},\"created_at\":\"2025-05-01T10:00:00Z\",\"response\":\"\",\"done\":true,"
            + $"\"done_reason\":\"{(unload ? "unload" : "load")}\",\"total_duration\":{load + 1000},\"load_duration\":{load}}}");
    }

    private async Task StreamChatAsync(HttpContext context, string model)
    {
        context.RequestAborted.Register(() => ChatAborted.TrySetResult());
        context.Response.ContentType = "application/x-ndjson";
        var lines = FakeJson.Pieces(Reply, ScalarsPerLine).Select(p => Line(model, p, [])).ToList();
        if (ReplyToolCalls.Count > 0)
            lines.Add(Line(model, "", ReplyToolCalls));
        var sb = new StringBuilder();
        for (int i = 0; i < lines.Count; i++)
        {
            if (Fault != FakeStreamFault.None && i == FaultAfterLines)
            {
                await StreamScript.WriteSplitAsync(context.Response, sb.ToString(), PieceSizes, PieceDelay);
                await FaultAsync(context);
                return;
            }
            sb.Append(lines[i]);
        }
        if (Fault != FakeStreamFault.None)
        {
            await StreamScript.WriteSplitAsync(context.Response, sb.ToString(), PieceSizes, PieceDelay);
            await FaultAsync(context);
            return;
        }
        sb.Append(Line(model, "", []).Replace("\"done\":false}", FinalFields(), StringComparison.Ordinal));
        await StreamScript.WriteSplitAsync(context.Response, sb.ToString(), PieceSizes, PieceDelay);
    }

    private async Task FaultAsync(HttpContext context)
    {
        if (FaultGate is not null)
            await FaultGate.Task.WaitAsync(context.RequestAborted);
        switch (Fault)
        {
            case FakeStreamFault.MalformedLine:
                await StreamScript.WriteAsync(context.Response, "{\"model\":\"x\",\"message\":{\"content\":\"oops\"\n");
                break;
            case FakeStreamFault.Disconnect:
                StreamScript.Disconnect(context);
                break;
            case FakeStreamFault.ErrorLine:
                await StreamScript.WriteAsync(context.Response, "{\"error\":" + FakeJson.Quote(FaultError) + "}\n");
                break;
            case FakeStreamFault.EndWithoutDone:
                break;
            case FakeStreamFault.Hold:
                try
                {
                    await Task.Delay(Timeout.Infinite, context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                }
                break;
        }
    }

    private static string Line(string model, string content, List<(string Name, string ArgumentsJson)> calls)
    {
        string toolCalls = calls.Count == 0 ? "" : ",\"tool_calls\":[" + string.Join(",", calls.Select(c =>
            $"{{\"function\":{{\"name\":{FakeJson.Quote(c.Name)},\"arguments\":{c.ArgumentsJson}}}}}")) + "]";
        return $"{{\"model\":{FakeJson.Quote(model)},\"created_at\":\"2025-05-01T10:00:00.123Z\",\"message\":{{\"role\":\"assistant\",\"content\":{FakeJson.Quote(content)}{toolCalls}}},\"done\":false}}\n";
    }

    private string FinalFields() =>
        $"\"done\":true,\"done_reason\":{FakeJson.Quote(DoneReason)},\"total_duration\":{TotalNs},\"load_duration\":{LoadNs},"
        + $"\"prompt_eval_count\":{PromptEvalCount},\"prompt_eval_duration\":{PromptEvalNs},\"eval_count\":{FakeJson.Pieces(Reply, ScalarsPerLine).Count},\"eval_duration\":{EvalNs}}}";

    private static async Task JsonAsync(HttpResponse response, string json, int status = 200)
    {
        response.StatusCode = status;
        response.ContentType = "application/json; charset=utf-8";
        await response.WriteAsync(json);
    }
}
