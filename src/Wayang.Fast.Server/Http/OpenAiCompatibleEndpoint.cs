using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Audit;
using Wayang.Fast.Control.Rbac;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Gateway;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Server.Sessions;

namespace Wayang.Fast.Server.Http;

// The OpenAI-compatible face on the HTTP side port: POST /v1/chat/completions (unary and SSE), GET /v1/models and
// POST /v1/embeddings, so OpenAI SDKs and curl reach the gateway with a Wayang API key as their bearer token. It is a
// surface like the binary protocol: the same key check, the same permission table (Authorization.Required of the
// opcode the protocol uses for the same call), denials on the audit record the same way, the caller's tenant on the
// request. Error statuses come from OpenAiErrors.Map only.
internal sealed class OpenAiCompatibleEndpoint(ServerCore core)
{
    // Bodies are buffered whole before parsing; this caps what one request can make the server hold.
    public const int MaxBodyBytes = 4 * 1024 * 1024;
    public const string ProviderHeader = "X-Wayang-Provider";

    private static readonly JsonWriterOptions WriterOptions = new() { Indented = false, SkipValidation = true };

    public static bool Handles(PathString path) => path.StartsWithSegments("/v1", StringComparison.Ordinal);

    public async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        try
        {
            switch (request.Path.Value)
            {
                case "/v1/chat/completions":
                    if (await AllowAsync(context, HttpMethods.Post).ConfigureAwait(false))
                        await ChatAsync(context).ConfigureAwait(false);
                    return;
                case "/v1/embeddings":
                    if (await AllowAsync(context, HttpMethods.Post).ConfigureAwait(false))
                        await EmbeddingsAsync(context).ConfigureAwait(false);
                    return;
                case "/v1/models":
                    if (await AllowAsync(context, HttpMethods.Get).ConfigureAwait(false))
                        await ModelsAsync(context).ConfigureAwait(false);
                    return;
                default:
                    await WriteErrorAsync(context, new WayangError(ErrorCode.NotFound, $"Unknown path {request.Path.Value}.")).ConfigureAwait(false);
                    return;
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; the gateway call was cancelled with it and nobody is left to answer.
        }
        catch (WayangException ex) when (!context.Response.HasStarted)
        {
            await WriteErrorAsync(context, ex.Error).ConfigureAwait(false);
        }
        catch (Exception ex) when (!context.Response.HasStarted && ex is not OperationCanceledException)
        {
            Log.HttpRequestFailed(core.Logger, request.Method, request.Path.Value ?? "", ex);
            await WriteErrorAsync(context, new WayangError(ErrorCode.Internal, "The server failed to answer this request.")).ConfigureAwait(false);
        }
    }

    private async Task ChatAsync(HttpContext context)
    {
        // Permission before the body is read, as the protocol checks before decoding: the streaming and unary opcodes
        // need the same permission, so the unary one names the check (and a denial's record) for both.
        var principal = await AuthorizeAsync(context, Opcode.InferenceChat).ConfigureAwait(false);
        var gateway = RequireGateway();
        var body = await ReadBodyAsync(context.Request, context.RequestAborted).ConfigureAwait(false);
        ParsedChat parsed;
        using (var doc = OpenAiRequests.Parse(body))
            parsed = OpenAiRequests.ToChat(doc.RootElement, principal.TenantId);

        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        if (!parsed.Stream)
        {
            var response = await gateway.ChatAsync(parsed.Request, context.RequestAborted).ConfigureAwait(false);
            context.Response.Headers[ProviderHeader] = response.Provider;
            await WriteJsonAsync(context, StatusCodes.Status200OK, (id, created, response),
                static (w, s) => OpenAiResponses.WriteCompletion(w, s.id, s.created, s.response)).ConfigureAwait(false);
            return;
        }
        await StreamAsync(context, gateway, parsed, id, created).ConfigureAwait(false);
    }

    // SSE: the first delta is awaited before anything is sent, so a failure to open the stream (every fallback
    // included) is still an HTTP status. After the first chunk a failure is one `data: {"error":...}` event and the
    // stream ends without [DONE]. The client going away cancels RequestAborted, and with it the gateway and provider.
    private async Task StreamAsync(HttpContext context, InferenceGateway gateway, ParsedChat parsed, string id, long created)
    {
        var ct = context.RequestAborted;
        var deltas = gateway.StreamChatAsync(parsed.Request, ct).GetAsyncEnumerator(ct);
        await using (deltas.ConfigureAwait(false))
        {
            bool any = await deltas.MoveNextAsync().ConfigureAwait(false);
            var response = context.Response;
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "text/event-stream; charset=utf-8";
            response.Headers.CacheControl = "no-cache";
            var first = any ? deltas.Current : null;
            if (first?.Provider is { } provider)
                response.Headers[ProviderHeader] = provider;
            string model = first?.Model ?? parsed.Request.Model;
            var sink = response.BodyWriter;
            using var w = new Utf8JsonWriter(sink, WriterOptions);
            var opened = new HashSet<int>();
            TokenUsage? usage = null;
            try
            {
                for (var delta = first; delta is not null; delta = await deltas.MoveNextAsync().ConfigureAwait(false) ? deltas.Current : null)
                {
                    if (delta.Usage is not null)
                        usage = delta.Usage;
                    bool firstOfChoice = opened.Add(delta.Index);
                    // A delta that only reports usage is not a chunk of its own: usage has its own chunk at the end.
                    if (!firstOfChoice && delta.Content is null && delta.ToolCalls is not { Count: > 0 } && delta.FinishReason is null or FinishReason.Unspecified)
                        continue;
                    WriteEvent(sink, w, (id, created, model, delta, firstOfChoice, parsed.IncludeUsage),
                        static (w, s) => OpenAiResponses.WriteChunk(w, s.id, s.created, s.model, s.delta, s.firstOfChoice, s.IncludeUsage));
                    if (!await FlushAsync(sink, ct).ConfigureAwait(false))
                        return;
                }
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                if (ex is not WayangException)
                    Log.HttpRequestFailed(core.Logger, context.Request.Method, context.Request.Path.Value ?? "", ex);
                var error = (ex as WayangException)?.Error ?? new WayangError(ErrorCode.Internal, "The stream failed.");
                WriteEvent(sink, w, error, static (w, e) => OpenAiResponses.WriteError(w, e, OpenAiErrors.Map(e.Code)));
                await FlushAsync(sink, ct).ConfigureAwait(false);
                return;
            }
            if (parsed.IncludeUsage)
            {
                WriteEvent(sink, w, (id, created, model, usage: usage ?? new TokenUsage()),
                    static (w, s) => OpenAiResponses.WriteUsageChunk(w, s.id, s.created, s.model, s.usage));
            }
            sink.Write("data: [DONE]\n\n"u8);
            await FlushAsync(sink, ct).ConfigureAwait(false);
        }
    }

    private async Task EmbeddingsAsync(HttpContext context)
    {
        var principal = await AuthorizeAsync(context, Opcode.InferenceEmbed).ConfigureAwait(false);
        var gateway = RequireGateway();
        var body = await ReadBodyAsync(context.Request, context.RequestAborted).ConfigureAwait(false);
        ParsedEmbeddings parsed;
        using (var doc = OpenAiRequests.Parse(body))
            parsed = OpenAiRequests.ToEmbeddings(doc.RootElement, principal.TenantId);
        var response = await gateway.EmbedAsync(parsed.Request, context.RequestAborted).ConfigureAwait(false);
        context.Response.Headers[ProviderHeader] = response.Provider;
        await WriteJsonAsync(context, StatusCodes.Status200OK, (response, parsed.Base64),
            static (w, s) => OpenAiResponses.WriteEmbeddings(w, s.response, s.Base64)).ConfigureAwait(false);
    }

    private async Task ModelsAsync(HttpContext context)
    {
        await AuthorizeAsync(context, Opcode.InferenceModelList).ConfigureAwait(false);
        var gateway = RequireGateway();
        await WriteJsonAsync(context, StatusCodes.Status200OK, gateway, static (w, g) => OpenAiResponses.WriteModels(w, g.Models.All)).ConfigureAwait(false);
    }

    // The bearer token is a Wayang API key; the permission is the one the protocol requires for `opcode`.
    private async ValueTask<Principal> AuthorizeAsync(HttpContext context, Opcode opcode)
    {
        if (core.ShuttingDown)
            throw new WayangException(ErrorCode.ShuttingDown, "The server is shutting down.");
        string? header = context.Request.Headers.Authorization;
        var key = header is not null && header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header.AsSpan(7).Trim() : default;
        if (key.IsEmpty)
            throw new WayangException(ErrorCode.Unauthenticated, "No API key: send 'Authorization: Bearer <Wayang API key>'.");
        var code = core.Tenants.Authenticate(key, out var principal);
        if (code != ErrorCode.None || principal is null)
        {
            // Whatever made the key unusable, the answer is OpenAI's 401; the registry name says which.
            var reason = OpenAiErrors.Map(code).Status == StatusCodes.Status401Unauthorized ? code : ErrorCode.Unauthenticated;
            throw new WayangException(reason, "Invalid API key.");
        }
        if (Authorization.Check(principal, opcode) != ErrorCode.None)
        {
            var error = new WayangError(ErrorCode.PermissionDenied, $"Permission '{Permissions.NameOf(Authorization.Required(opcode))}' is required for {opcode}.");
            await RecordDenialAsync(context, principal, opcode, error).ConfigureAwait(false);
            throw new WayangException(error);
        }
        return principal;
    }

    // As a session records a denied request; a failure to record is logged and the request is still refused.
    private async ValueTask RecordDenialAsync(HttpContext context, Principal principal, Opcode opcode, WayangError error)
    {
        var connection = context.Connection;
        string? remote = connection.RemoteIpAddress is { } ip ? $"{ip}:{connection.RemotePort}" : null;
        var details = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["surface"] = "http",
            ["http"] = $"{context.Request.Method} {context.Request.Path.Value}",
        };
        try
        {
            await AuditRecording.RecordAsync(core.Audit, principal, opcode, principal.TenantId, AuditOutcome.Denied, error.Code, "", connectionId: 0, remote, details)
                .ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.HttpRequestFailed(core.Logger, context.Request.Method, context.Request.Path.Value ?? "", ex);
        }
    }

    private InferenceGateway RequireGateway() =>
        core.Inference ?? throw new WayangException(ErrorCode.Unavailable, "This server runs without an inference plane (no providers are configured).");

    // 405 has no registry code: the one status this face picks outside OpenAiErrors.Map.
    private static async ValueTask<bool> AllowAsync(HttpContext context, string method)
    {
        if (string.Equals(context.Request.Method, method, StringComparison.OrdinalIgnoreCase))
            return true;
        context.Response.Headers.Allow = method;
        await WriteErrorAsync(context, new WayangError(ErrorCode.InvalidArgument, $"{context.Request.Path.Value} takes {method}, not {context.Request.Method}."),
            new OpenAiError(StatusCodes.Status405MethodNotAllowed, OpenAiErrors.InvalidRequest, "method_not_allowed")).ConfigureAwait(false);
        return false;
    }

    // The whole body, refused past MaxBodyBytes: a declared length is refused before a byte is read (a client that sent
    // Expect: 100-continue then never sends the body), an undeclared one as soon as the buffered part passes the cap.
    private static async Task<ReadOnlyMemory<byte>> ReadBodyAsync(HttpRequest request, CancellationToken ct)
    {
        if (request.ContentLength > MaxBodyBytes)
            throw TooLarge();
        var reader = request.BodyReader;
        while (true)
        {
            var result = await reader.ReadAsync(ct).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (buffer.Length > MaxBodyBytes)
            {
                reader.AdvanceTo(buffer.Start, buffer.End);
                throw TooLarge();
            }
            if (result.IsCompleted)
            {
                var body = buffer.ToArray();
                reader.AdvanceTo(buffer.End);
                return body;
            }
            // Nothing consumed, all examined: the next read returns when more has arrived.
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static WayangException TooLarge() => new(ErrorCode.FrameTooLarge, $"The request body is over {MaxBodyBytes} bytes.");

    private static Task WriteErrorAsync(HttpContext context, WayangError error, OpenAiError? mapped = null)
    {
        var m = mapped ?? OpenAiErrors.Map(error.Code);
        var headers = context.Response.Headers;
        if (error.RetryAfterMs > 0 && m.Status is StatusCodes.Status429TooManyRequests or StatusCodes.Status503ServiceUnavailable)
            headers.RetryAfter = OpenAiErrors.RetryAfterSeconds(error.RetryAfterMs).ToString(CultureInfo.InvariantCulture);
        if (m.Status == StatusCodes.Status401Unauthorized)
            headers.WWWAuthenticate = "Bearer";
        return WriteJsonAsync(context, m.Status, (error, m), static (w, s) => OpenAiResponses.WriteError(w, s.error, s.m));
    }

    private static async Task WriteJsonAsync<TState>(HttpContext context, int status, TState state, Action<Utf8JsonWriter, TState> write)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
            write(w, state);
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "application/json";
        response.ContentLength = buffer.WrittenCount;
        await response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    private static void WriteEvent<TState>(PipeWriter sink, Utf8JsonWriter w, TState state, Action<Utf8JsonWriter, TState> write)
    {
        sink.Write("data: "u8);
        w.Reset(sink);
        write(w, state);
        w.Flush();
        sink.Write("\n\n"u8);
    }

    // false: the client is gone (the pipe completed or the flush was cancelled); stop producing.
    private static async ValueTask<bool> FlushAsync(PipeWriter sink, CancellationToken ct)
    {
        var result = await sink.FlushAsync(ct).ConfigureAwait(false);
        return !result.IsCanceled && !result.IsCompleted;
    }
}
