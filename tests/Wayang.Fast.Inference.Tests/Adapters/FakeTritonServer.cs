using System.Collections.Concurrent;
using System.Text;
using Microsoft.AspNetCore.Http;
using Wayang.Fast.Inference.Tests.Fakes;

namespace Wayang.Fast.Inference.Tests.Adapters;

// Triton Inference Server with a TensorRT-LLM ensemble, as its HTTP/REST docs describe: GET /v2/health/ready, POST
// /v2/repository/index, and the generate extension, POST /v2/models/{model}/generate (one JSON answer) and
// /generate_stream (server-sent events "data: {...}\n\n", each with the new text), errors as {"error": "..."}.
public sealed class FakeTritonServer : IAsyncDisposable
{
    private FakeTritonServer(ScriptedHttpServer http)
    {
        Http = http;
        http.Handler = HandleAsync;
    }

    public ScriptedHttpServer Http { get; }
    public Uri Address => Http.Address;
    // Model name -> state in the repository index ("READY", "UNAVAILABLE").
    public ConcurrentDictionary<string, string> Models { get; } = new(StringComparer.Ordinal);
    public bool Ready { get; set; } = true;
    public string Reply { get; set; } = "Hello from TensorRT-LLM.";
    public int ScalarsPerEvent { get; set; } = 2;
    public int[] PieceSizes { get; set; } = [1 << 16];
    public TimeSpan PieceDelay { get; set; }
    public FakeStreamFault Fault { get; set; }
    public int FaultAfterEvents { get; set; } = 1;
    public string FaultError { get; set; } = "Encountered an error in forward function: slice 0 exceeds buffer size";
    public TaskCompletionSource? FaultGate { get; set; }
    public (int Status, string Error, string? RetryAfter)? Fail { get; set; }
    public TaskCompletionSource StreamAborted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static async Task<FakeTritonServer> StartAsync()
    {
        var server = new FakeTritonServer(await ScriptedHttpServer.StartAsync());
        server.Models["ensemble"] = "READY";
        server.Models["preprocessing"] = "READY";
        server.Models["tensorrt_llm_bls"] = "UNAVAILABLE";
        return server;
    }

    public RecordedRequest Last(string path) => Http.Requests.Last(r => r.PathAndQuery == path);

    public ValueTask DisposeAsync() => Http.DisposeAsync();

    private async Task HandleAsync(HttpContext context, RecordedRequest request)
    {
        var response = context.Response;
        string path = request.PathAndQuery;
        if (request.Method == "GET" && path == "/v2/health/ready")
        {
            // Triton answers 200 when ready and 400 when not, with no body.
            response.StatusCode = Ready ? 200 : 400;
            return;
        }
        if (request.Method == "POST" && path == "/v2/repository/index")
        {
            await JsonAsync(response, "[" + string.Join(",", Models.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m =>
                $"{{\"name\":{FakeJson.Quote(m.Key)},\"version\":\"1\",\"state\":{FakeJson.Quote(m.Value)}"
                + (m.Value == "READY" ? "" : ",\"reason\":\"unloaded\"") + "}")) + "]");
            return;
        }
        string[] parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (request.Method != "POST" || parts.Length != 4 || parts[0] != "v2" || parts[1] != "models" || parts[3] is not ("generate" or "generate_stream"))
        {
            await JsonAsync(response, "{\"error\":\"Not Found\"}", 404);
            return;
        }
        if (Fail is { } fail)
        {
            if (fail.RetryAfter is not null)
                response.Headers.RetryAfter = fail.RetryAfter;
            await JsonAsync(response, "{\"error\":" + FakeJson.Quote(fail.Error) + "}", fail.Status);
            return;
        }
        string model = Uri.UnescapeDataString(parts[2]);
        if (!Models.TryGetValue(model, out var state))
        {
            await JsonAsync(response, "{\"error\":" + FakeJson.Quote($"Request for unknown model: '{model}' is not found") + "}", 400);
            return;
        }
        if (state != "READY")
        {
            await JsonAsync(response, "{\"error\":" + FakeJson.Quote($"Request for unknown model: '{model}' has no available versions") + "}", 400);
            return;
        }
        if (parts[3] == "generate")
        {
            await JsonAsync(response, Output(model, Reply));
            return;
        }
        await StreamAsync(context, model);
    }

    private async Task StreamAsync(HttpContext context, string model)
    {
        context.RequestAborted.Register(() => StreamAborted.TrySetResult());
        context.Response.ContentType = "text/event-stream; charset=utf-8";
        var events = FakeJson.Pieces(Reply, ScalarsPerEvent).Select(p => "data: " + Output(model, p) + "\n\n").ToList();
        var sb = new StringBuilder();
        for (int i = 0; i < events.Count; i++)
        {
            if (Fault != FakeStreamFault.None && i == FaultAfterEvents)
                break;
            sb.Append(events[i]);
        }
        await StreamScript.WriteSplitAsync(context.Response, sb.ToString(), PieceSizes, PieceDelay);
        if (Fault == FakeStreamFault.None)
            return;
        if (FaultGate is not null)
            await FaultGate.Task.WaitAsync(context.RequestAborted);
        switch (Fault)
        {
            case FakeStreamFault.MalformedLine:
                await StreamScript.WriteAsync(context.Response, "data: {\"text_output\": \"oops\n\n");
                break;
            case FakeStreamFault.Disconnect:
                StreamScript.Disconnect(context);
                break;
            case FakeStreamFault.ErrorLine:
                await StreamScript.WriteAsync(context.Response, "data: {\"error\":" + FakeJson.Quote(FaultError) + "}\n\n");
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

    private static string Output(string model, string text) =>
        $"{{\"context_logits\":0.0,\"cum_log_probs\":0.0,\"generation_logits\":0.0,\"model_name\":{FakeJson.Quote(model)},\"model_version\":\"1\","
        + $"\"output_log_probs\":[0.0],\"sequence_end\":false,\"sequence_id\":0,\"sequence_start\":false,\"text_output\":{FakeJson.Quote(text)}}}";

    private static async Task JsonAsync(HttpResponse response, string json, int status = 200)
    {
        response.StatusCode = status;
        response.ContentType = "application/json";
        await response.WriteAsync(json);
    }
}
