using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Wayang.Fast.Inference.Tests.Fakes;

namespace Wayang.Fast.Inference.Tests.Adapters;

// How a fake writes its event stream: split into pieces of these byte sizes with a delay after each, and optionally
// broken: one event replaced by a malformed one, the connection dropped or the response ended cleanly after some
// events, or held open after some events until the client aborts (Aborted completes when Kestrel sees it).
public sealed class FakeStreamPlan
{
    // Non-ASCII stays raw UTF-8 on the wire, so byte splits fall inside multi-byte characters.
    public static readonly JsonSerializerOptions Wire = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public int[] Pieces { get; set; } = [64 * 1024];
    public TimeSpan Delay { get; set; }
    public int? MalformedAt { get; set; }
    public int? DisconnectAfter { get; set; }
    // Awaited before the disconnect. Kestrel's abort resets the connection, and a reset discards what the client's
    // socket received but the client has not read yet; a test opens the gate once it holds the deltas it expects.
    public Task DisconnectGate { get; set; } = Task.CompletedTask;
    public int? EndAfter { get; set; }
    public int? HoldAfter { get; set; }
    public TaskCompletionSource Aborted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static string Json(JsonNode node) => node.ToJsonString(Wire);

    public async Task WriteAsync(HttpContext context, IReadOnlyList<string> events, string malformed)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        var list = events.ToList();
        if (MalformedAt is int m)
            list[m] = malformed;
        int count = Math.Min(list.Count, DisconnectAfter ?? HoldAfter ?? EndAfter ?? list.Count);
        await context.Response.StartAsync();
        await StreamScript.WriteSplitAsync(context.Response, string.Concat(list.Take(count)), Pieces, Delay);
        if (DisconnectAfter is not null)
        {
            await DisconnectGate.WaitAsync(context.RequestAborted);
            StreamScript.Disconnect(context);
            return;
        }
        if (HoldAfter is not null)
        {
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                Aborted.TrySetResult();
            }
        }
    }
}

// What a fake answers an error with: a status, the provider's error body, and a Retry-After when set.
public sealed record FakeError(int Status, string Body, string? RetryAfter = null)
{
    public async Task WriteAsync(HttpContext context)
    {
        context.Response.StatusCode = Status;
        context.Response.ContentType = "application/json";
        if (RetryAfter is not null)
            context.Response.Headers.RetryAfter = RetryAfter;
        await context.Response.WriteAsync(Body);
    }
}

public sealed record FakeToolCall(string Id, string Name, string ArgumentsJson);

// One scripted answer, which each fake renders in its product's unary and streamed forms.
public sealed class FakeReply
{
    public string Text { get; set; } = "Hello there.";
    public List<FakeToolCall> ToolCalls { get; set; } = [];
    // In the product's own vocabulary ("stop", "tool_calls", "end_turn"...).
    public string? FinishReason { get; set; }
    public int PromptTokens { get; set; } = 12;
    public int CompletionTokens { get; set; } = 5;

    // Real servers stream a few characters per event; text elements keep surrogate pairs whole.
    public IEnumerable<string> TextPieces(int perPiece = 3)
    {
        var e = System.Globalization.StringInfo.GetTextElementEnumerator(Text);
        var piece = new System.Text.StringBuilder();
        int n = 0;
        while (e.MoveNext())
        {
            piece.Append(e.GetTextElement());
            if (++n % perPiece == 0)
            {
                yield return piece.ToString();
                piece.Clear();
            }
        }
        if (piece.Length > 0)
            yield return piece.ToString();
    }
}
