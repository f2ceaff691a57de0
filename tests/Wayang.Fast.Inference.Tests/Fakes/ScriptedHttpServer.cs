using System.Collections.Concurrent;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Wayang.Fast.Inference.Tests.Fakes;

// A real HTTP server on 127.0.0.1 (Kestrel) whose answers the test scripts: the in-test stand-in for the provider
// servers that cannot run here (Ollama, vLLM, Triton, OpenAI, Anthropic). Each product's fake sets Handler to an
// implementation of that product's documented API; every request is recorded (method, path, headers, body) so a test
// can assert what the adapter sent.
public sealed class ScriptedHttpServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ScriptedHttpServer(WebApplication app) => _app = app;

    public Uri Address { get; private set; } = new("http://127.0.0.1/");
    public Func<HttpContext, RecordedRequest, Task> Handler { get; set; } = static (c, _) => { c.Response.StatusCode = 404; return Task.CompletedTask; };
    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    public static async Task<ScriptedHttpServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(o => o.Listen(System.Net.IPAddress.Loopback, 0));
        var app = builder.Build();
        var server = new ScriptedHttpServer(app);
        app.Run(async context =>
        {
            using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
            string body = await reader.ReadToEndAsync(context.RequestAborted);
            var recorded = new RecordedRequest(context.Request.Method, context.Request.Path + context.Request.QueryString,
                context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase), body);
            server.Requests.Enqueue(recorded);
            await server.Handler(context, recorded);
        });
        await app.StartAsync();
        var address = app.Urls.First();
        server.Address = new Uri(address.EndsWith('/') ? address : address + "/");
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

public sealed record RecordedRequest(string Method, string PathAndQuery, IReadOnlyDictionary<string, string> Headers, string Body)
{
    public System.Text.Json.JsonElement Json => System.Text.Json.JsonDocument.Parse(Body).RootElement.Clone();
}

// Writing a streamed answer the awkward ways real servers and networks do.
public static class StreamScript
{
    // Writes text in pieces of the given sizes (cycled), flushing after each, so a client sees events and lines
    // split at arbitrary byte boundaries (inside a UTF-8 sequence too).
    public static async Task WriteSplitAsync(HttpResponse response, string text, int[] pieceSizes, TimeSpan delay = default)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(pieceSizes);
        var bytes = Encoding.UTF8.GetBytes(text);
        int at = 0, i = 0;
        while (at < bytes.Length)
        {
            int n = Math.Min(pieceSizes[i++ % pieceSizes.Length], bytes.Length - at);
            await response.Body.WriteAsync(bytes.AsMemory(at, n));
            await response.Body.FlushAsync();
            at += n;
            if (delay > TimeSpan.Zero)
                await Task.Delay(delay);
        }
    }

    public static async Task WriteAsync(HttpResponse response, string text)
    {
        ArgumentNullException.ThrowIfNull(response);
        await response.WriteAsync(text);
        await response.Body.FlushAsync();
    }

    // Ends the connection without finishing the response: the client sees the stream break mid-answer.
    public static void Disconnect(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Abort();
    }
}
