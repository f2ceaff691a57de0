using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Inference.Tests.Fakes;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Tests;

// The OpenAI-compatible face on the HTTP side port, driven with plain HttpClient requests as an OpenAI client would
// send them; "small" (alias "default") on provider a, "big" on b.
public sealed class OpenAiCompatibleTests
{
    private const string ChatBody = """{"model":"small","messages":[{"role":"user","content":"hello"}]}""";

    private static async Task<(ExecutionHarness Harness, FakeProvider A, FakeProvider B, HttpClient Http)> StartAsync(Action<WayangServerOptions>? configure = null)
    {
        var a = new FakeProvider("a");
        var b = new FakeProvider("b");
        var h = await ExecutionHarness.StartAsync(o =>
        {
            o.InferenceProviders = [a, b];
            o.InferenceModels = [new ModelEntry { Id = "small", Aliases = ["default"], Provider = "a" }, new ModelEntry { Id = "big", Provider = "b" }];
            configure?.Invoke(o);
        });
        return (h, a, b, new HttpClient { BaseAddress = new Uri($"http://{h.Server.Server.HttpEndPoint}") });
    }

    private static HttpRequestMessage Request(HttpMethod method, string path, string? key, string? json = null)
    {
        var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative));
        if (key is not null)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        if (json is not null)
            request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        return request;
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> SendAsync(HttpClient http, HttpMethod method, string path, string? key, string? json = null)
    {
        using var request = Request(method, path, key, json);
        var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone(), response);
    }

    private static Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> PostAsync(HttpClient http, string path, string? key, string json) =>
        SendAsync(http, HttpMethod.Post, path, key, json);

    private static void AssertError(JsonElement body, string type, string? code)
    {
        var error = body.GetProperty("error");
        Assert.Equal(type, error.GetProperty("type").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
    }

    // The data payloads of an SSE response up to and including [DONE] (or the end of the stream).
    private static async Task<List<string>> ReadEventsAsync(HttpResponseMessage response)
    {
        var events = new List<string>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal))
                continue;
            events.Add(line["data: ".Length..]);
            if (events[^1] == "[DONE]")
                break;
        }
        return events;
    }

    [Fact]
    public async Task Unary_chat_answers_a_chat_completion_with_usage_and_the_served_provider()
    {
        var (h, a, _, http) = await StartAsync();
        await using var _h = h;
        using var _http = http;
        ChatRequest? seen = null;
        a.OnChat = (r, model, _) =>
        {
            seen = r;
            return Task.FromResult(FakeProvider.Answer(model, "hi there"));
        };

        var (status, body, response) = await PostAsync(http, "/v1/chat/completions", h.Key("developer"), """
            {"model":"default","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hel"},{"type":"text","text":"lo"}]}],
             "temperature":0.5,"top_p":0.9,"max_tokens":7,"stop":"END","seed":42,"response_format":{"type":"json_object"},"user":"u1","stream":false}
            """);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.StartsWith("chatcmpl-", body.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.True(body.GetProperty("created").GetInt64() > 0);
        Assert.Equal("small", body.GetProperty("model").GetString());
        var choice = Assert.Single(body.GetProperty("choices").EnumerateArray());
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal("hi there", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        var usage = body.GetProperty("usage");
        Assert.Equal((3, 1, 4), (usage.GetProperty("prompt_tokens").GetInt32(), usage.GetProperty("completion_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32()));
        Assert.Equal("a", body.GetProperty("x_wayang").GetProperty("provider").GetString());
        Assert.Equal(0, body.GetProperty("x_wayang").GetProperty("fallback_path").GetArrayLength());
        Assert.Equal("a", Assert.Single(response.Headers.GetValues("X-Wayang-Provider")));

        Assert.NotNull(seen);
        Assert.Equal(ExecutionHarness.Tenant, seen.TenantId);
        Assert.Equal([ChatRole.System, ChatRole.User], seen.Messages.Select(m => m.Role));
        Assert.Equal("hello", seen.Messages[1].TextContent());
        Assert.Equal((0.5, 0.9, 7, 42L, ResponseFormat.JsonObject), (seen.Temperature, seen.TopP, seen.MaxTokens, seen.Seed, seen.ResponseFormat));
        Assert.Equal(["END"], seen.Stop);
    }

    [Fact]
    public async Task Tool_calls_go_in_and_come_back_in_OpenAI_shape()
    {
        var (h, a, _, http) = await StartAsync();
        await using var _h = h;
        using var _http = http;
        ChatRequest? seen = null;
        a.OnChat = (r, model, _) =>
        {
            seen = r;
            return Task.FromResult(new ChatResponse
            {
                Model = model,
                Choices = [new ChatChoice
                {
                    Message = new ChatMessage { Role = ChatRole.Assistant, ToolCalls = [new ToolCall { Id = "call_2", Name = "weather", ArgumentsJson = """{"city":"Oslo"}""" }] },
                    FinishReason = FinishReason.ToolCalls,
                }],
            });
        };

        var (status, body, _) = await PostAsync(http, "/v1/chat/completions", h.Key("developer"), """
            {"model":"small","max_completion_tokens":20,"max_tokens":5,
             "tools":[{"type":"function","function":{"name":"weather","description":"w","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
             "messages":[{"role":"user","content":"weather?"},
                         {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Bergen\"}"}}]},
                         {"role":"tool","tool_call_id":"call_1","content":"rain"}]}
            """);

        Assert.Equal(HttpStatusCode.OK, status);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("message").GetProperty("content").ValueKind);
        var call = Assert.Single(choice.GetProperty("message").GetProperty("tool_calls").EnumerateArray());
        Assert.Equal(("call_2", "function", "weather", """{"city":"Oslo"}"""), (call.GetProperty("id").GetString(), call.GetProperty("type").GetString(),
            call.GetProperty("function").GetProperty("name").GetString(), call.GetProperty("function").GetProperty("arguments").GetString()));

        Assert.NotNull(seen);
        Assert.Equal(20, seen.MaxTokens);
        var tool = Assert.Single(seen.Tools);
        Assert.Equal(("weather", "w"), (tool.Name, tool.Description));
        Assert.Contains("\"city\"", tool.ParametersJson, StringComparison.Ordinal);
        var asked = seen.Messages[1];
        Assert.Equal((ChatRole.Assistant, "call_1", "weather", """{"city":"Bergen"}"""), (asked.Role, asked.ToolCalls[0].Id, asked.ToolCalls[0].Name, asked.ToolCalls[0].ArgumentsJson));
        Assert.Equal((ChatRole.Tool, "call_1", "rain"), (seen.Messages[2].Role, seen.Messages[2].ToolCallId, seen.Messages[2].TextContent()));
    }

    [Fact]
    public async Task Streaming_sends_chunks_role_first_finish_reason_a_usage_chunk_then_DONE()
    {
        var (h, _, _, http) = await StartAsync();
        await using var _h = h;
        using var _http = http;

        using var request = Request(HttpMethod.Post, "/v1/chat/completions", h.Key("developer"),
            """{"model":"small","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}""");
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("a", Assert.Single(response.Headers.GetValues("X-Wayang-Provider")));
        var events = await ReadEventsAsync(response);

        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        var withChoices = chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0).Select(c => c.GetProperty("choices")[0]).ToList();
        Assert.Equal("assistant", withChoices[0].GetProperty("delta").GetProperty("role").GetString());
        Assert.All(withChoices.Skip(1), c => Assert.False(c.GetProperty("delta").TryGetProperty("role", out _)));
        Assert.Equal("ok", string.Concat(withChoices.Select(c => c.GetProperty("delta").TryGetProperty("content", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : "")));
        Assert.Equal("stop", withChoices[^1].GetProperty("finish_reason").GetString());
        Assert.All(withChoices.SkipLast(1), c => Assert.Equal(JsonValueKind.Null, c.GetProperty("finish_reason").ValueKind));
        // include_usage: the last chunk has no choices and the usage; the others say "usage": null.
        var last = chunks[^1];
        Assert.Equal(0, last.GetProperty("choices").GetArrayLength());
        Assert.Equal((3, 2, 5), (last.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), last.GetProperty("usage").GetProperty("completion_tokens").GetInt32(),
            last.GetProperty("usage").GetProperty("total_tokens").GetInt32()));
        Assert.All(chunks.SkipLast(1), c => Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind));
    }

    [Fact]
    public async Task Streaming_tool_call_deltas_keep_their_index_id_and_argument_fragments()
    {
        var (h, a, _, http) = await StartAsync();
        await using var _h = h;
        using var _http = http;
        a.OnStream = (_, _, ct) => ToolDeltas(ct);

        using var request = Request(HttpMethod.Post, "/v1/chat/completions", h.Key("developer"), """{"model":"small","messages":[{"role":"user","content":"hi"}],"stream":true}""");
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var events = await ReadEventsAsync(response);

        Assert.Equal("[DONE]", events[^1]);
        var choices = events[..^1].Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0]).ToList();
        // Without include_usage no chunk carries a usage member.
        Assert.All(events[..^1], e => Assert.False(JsonDocument.Parse(e).RootElement.TryGetProperty("usage", out _)));
        var calls = choices.Where(c => c.GetProperty("delta").TryGetProperty("tool_calls", out _)).Select(c => c.GetProperty("delta").GetProperty("tool_calls")[0]).ToList();
        Assert.Equal(("call_9", "function", "weather"), (calls[0].GetProperty("id").GetString(), calls[0].GetProperty("type").GetString(), calls[0].GetProperty("function").GetProperty("name").GetString()));
        Assert.All(calls, c => Assert.Equal(0, c.GetProperty("index").GetInt32()));
        Assert.Equal("""{"city":"Oslo"}""", string.Concat(calls.Select(c => c.GetProperty("function").TryGetProperty("arguments", out var f) ? f.GetString() : "")));
        Assert.Equal("tool_calls", choices[^1].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Keys_are_checked_401_without_or_with_a_bad_key_and_403_audited_without_inference_invoke()
    {
        var (h, _, _, http) = await StartAsync();
        await using var _h = h;
        using var _http = http;

        var (status, body, response) = await PostAsync(http, "/v1/chat/completions", null, ChatBody);
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        AssertError(body, "invalid_request_error", "invalid_api_key");
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);

        (status, body, _) = await PostAsync(http, "/v1/chat/completions", "wk_nope_notakey", ChatBody);
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        AssertError(body, "invalid_request_error", "invalid_api_key");

        (status, body, _) = await PostAsync(http, "/v1/chat/completions", h.Key("auditor"), ChatBody);
        Assert.Equal(HttpStatusCode.Forbidden, status);
        AssertError(body, "invalid_request_error", "permission_denied");
        Assert.Equal("PERMISSION_DENIED", body.GetProperty("error").GetProperty("x_wayang_code").GetString());

        await using var admin = await h.ConnectAdminAsync();
        var audit = await admin.CallAsync<AuditQueryRequest, AuditQueryResponse>(Opcode.AuditQuery, new AuditQueryRequest { TenantId = ExecutionHarness.Tenant, Limit = 1000 });
        var denial = Assert.Single(audit.Records, r => r.Operation == nameof(Opcode.InferenceChat));
        Assert.Equal(((byte)Common.Audit.AuditOutcome.Denied, "PERMISSION_DENIED", h.KeyId("auditor")), (denial.Outcome, denial.Reason, denial.PrincipalId));
        Assert.Equal("http", denial.Details["surface"]);
    }

    [Fact]
    public async Task Gateway_errors_map_to_statuses_404_429_with_Retry_After_400_and_context_length()
    {
        var (h, a, _, http) = await StartAsync();
        await using var _h = h;
        using var _http = http;
        string key = h.Key("developer");

        var (status, body, _) = await PostAsync(http, "/v1/chat/completions", key, """{"model":"nope","messages":[{"role":"user","content":"x"}]}""");
        Assert.Equal(HttpStatusCode.NotFound, status);
        AssertError(body, "invalid_request_error", "model_not_found");

        a.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.InferenceRateLimited, "a", retryAfterMs: 1500);
        (status, body, var response) = await PostAsync(http, "/v1/chat/completions", key, ChatBody);
        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        AssertError(body, "rate_limit_error", "rate_limit_exceeded");
        Assert.Equal(TimeSpan.FromSeconds(2), response.Headers.RetryAfter?.Delta);

        a.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.ContextLengthExceeded, "a");
        (status, body, _) = await PostAsync(http, "/v1/chat/completions", key, ChatBody);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertError(body, "invalid_request_error", "context_length_exceeded");

        a.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.ProviderAuthFailed, "a");
        (status, body, _) = await PostAsync(http, "/v1/chat/completions", key, ChatBody);
        Assert.Equal(HttpStatusCode.BadGateway, status);
        AssertError(body, "api_error", "provider_auth_failed");
    }

    [Fact]
    public async Task Malformed_requests_are_400_naming_the_field_and_paths_methods_and_sizes_are_checked()
    {
        var (h, _, _, http) = await StartAsync();
        await using var _h = h;
        using var _http = http;
        string key = h.Key("developer");

        var (status, body, _) = await PostAsync(http, "/v1/chat/completions", key, """{"model":""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertError(body, "invalid_request_error", null);
        Assert.Contains("not valid JSON", body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);

        (status, body, _) = await PostAsync(http, "/v1/chat/completions", key, """{"model":"small"}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("messages", body.GetProperty("error").GetProperty("param").GetString());

        (status, body, _) = await PostAsync(http, "/v1/chat/completions", key, """{"model":"small","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("messages[0].content[0]", body.GetProperty("error").GetProperty("param").GetString());

        (status, body, _) = await PostAsync(http, "/v1/chat/completions", key, """{"model":"small","temperature":"hot","messages":[{"role":"user","content":"x"}]}""");
        Assert.Equal((HttpStatusCode.BadRequest, "temperature"), (status, body.GetProperty("error").GetProperty("param").GetString()));

        (status, body, var response) = await SendAsync(http, HttpMethod.Get, "/v1/chat/completions", key);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, status);
        AssertError(body, "invalid_request_error", "method_not_allowed");
        Assert.Contains("POST", response.Content.Headers.Allow);

        (status, body, _) = await SendAsync(http, HttpMethod.Get, "/v1/nope", key);
        Assert.Equal(HttpStatusCode.NotFound, status);
        AssertError(body, "invalid_request_error", "unknown_url");

        // Expect: 100-continue, as curl sends for large bodies: the 413 comes before the body is sent.
        using var big = Request(HttpMethod.Post, "/v1/chat/completions", key, new string('x', 5 * 1024 * 1024));
        big.Headers.ExpectContinue = true;
        using var tooLarge = await http.SendAsync(big);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
        AssertError(JsonDocument.Parse(await tooLarge.Content.ReadAsStringAsync()).RootElement, "invalid_request_error", "request_too_large");
    }

    [Fact]
    public async Task A_stalled_provider_past_the_total_timeout_is_504()
    {
        var (h, a, _, http) = await StartAsync(o => o.InferenceGateway.TotalTimeout = TimeSpan.FromMilliseconds(300));
        await using var _h = h;
        using var _http = http;
        a.OnChat = async (_, _, ct) =>
        {
            await Task.Delay(Timeout.Infinite, ct);
            throw new InvalidOperationException("unreachable");
        };

        var (status, body, _) = await PostAsync(http, "/v1/chat/completions", h.Key("developer"), ChatBody);

        Assert.Equal(HttpStatusCode.GatewayTimeout, status);
        AssertError(body, "api_error", "timeout");
        Assert.Equal("INFERENCE_TIMEOUT", body.GetProperty("error").GetProperty("x_wayang_code").GetString());
    }

    [Fact]
    public async Task A_stream_error_before_the_first_chunk_is_a_status_and_after_it_an_SSE_error_event()
    {
        var (h, a, _, http) = await StartAsync();
        await using var _h = h;
        using var _http = http;
        const string stream = """{"model":"small","messages":[{"role":"user","content":"hi"}],"stream":true}""";

        a.OnStream = (_, _, ct) => FakeProvider.Breaks(0, ErrorCode.ContentFiltered, ct);
        var (status, body, _) = await PostAsync(http, "/v1/chat/completions", h.Key("developer"), stream);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        AssertError(body, "invalid_request_error", "content_filter");

        a.OnStream = (_, _, ct) => FakeProvider.Breaks(2, ErrorCode.StreamBroken, ct);
        using var request = Request(HttpMethod.Post, "/v1/chat/completions", h.Key("developer"), stream);
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await ReadEventsAsync(response);
        Assert.DoesNotContain("[DONE]", events);
        var error = JsonDocument.Parse(events[^1]).RootElement;
        AssertError(error, "api_error", "stream_broken");
        Assert.Equal(2, events.Count - 1);
    }

    [Fact]
    public async Task A_client_that_disconnects_mid_stream_cancels_the_provider()
    {
        var (h, a, _, http) = await StartAsync();
        await using var _h = h;
        using var _http = http;
        a.OnStream = (_, _, ct) => FakeProvider.Stalls(1, ct);

        using (var request = Request(HttpMethod.Post, "/v1/chat/completions", h.Key("developer"), """{"model":"small","messages":[{"role":"user","content":"hi"}],"stream":true}"""))
        using (var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            string? line;
            while ((line = await reader.ReadLineAsync()) is not null && !line.StartsWith("data: ", StringComparison.Ordinal))
            {
            }
            Assert.NotNull(line);
            Assert.False(a.Cancelled.Task.IsCompleted);
        }
        // Disposing the unfinished response closed the connection: RequestAborted reached the provider's token.
        await a.Cancelled.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Models_list_ids_and_aliases_and_embeddings_answer_floats_or_base64()
    {
        var (h, _, _, http) = await StartAsync();
        await using var _h = h;
        using var _http = http;

        var (status, body, _) = await SendAsync(http, HttpMethod.Get, "/v1/models", h.Key("viewer"));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("list", body.GetProperty("object").GetString());
        var models = body.GetProperty("data").EnumerateArray().Select(m => (m.GetProperty("id").GetString(), m.GetProperty("object").GetString(), m.GetProperty("owned_by").GetString())).ToList();
        Assert.Equal([("big", "model", "b"), ("default", "model", "a"), ("small", "model", "a")], models);

        (status, body, _) = await PostAsync(http, "/v1/embeddings", h.Key("developer"), """{"model":"small","input":["ab","abcd"]}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(("list", "small"), (body.GetProperty("object").GetString(), body.GetProperty("model").GetString()));
        var data = body.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal([(0, 2f), (1, 4f)], data.Select(d => (d.GetProperty("index").GetInt32(), d.GetProperty("embedding")[0].GetSingle())));
        Assert.Equal("embedding", data[0].GetProperty("object").GetString());
        Assert.True(body.GetProperty("usage").TryGetProperty("total_tokens", out _));

        (status, body, _) = await PostAsync(http, "/v1/embeddings", h.Key("developer"), """{"model":"small","input":"abc","encoding_format":"base64"}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var bytes = Convert.FromBase64String(body.GetProperty("data")[0].GetProperty("embedding").GetString()!);
        Assert.Equal(3f, BitConverter.ToSingle(bytes));

        (status, body, _) = await PostAsync(http, "/v1/embeddings", h.Key("developer"), """{"model":"small","input":[1,2,3]}""");
        Assert.Equal((HttpStatusCode.BadRequest, "input"), (status, body.GetProperty("error").GetProperty("param").GetString()));
    }

    [Fact]
    public async Task A_tenants_fallback_policy_applies_only_to_that_tenants_HTTP_calls()
    {
        var (h, a, b, http) = await StartAsync();
        await using var _h = h;
        using var _http = http;
        a.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.InferenceRateLimited, "a", retryAfterMs: 200);
        await using (var dev = await h.ConnectAsync("developer"))
        {
            await dev.CallAsync<FallbackPolicyDto, FallbackPolicyDto>(Opcode.FallbackPolicySet,
                new FallbackPolicyDto { PolicyJson = """{"default":{"chain":[{"model":"big"}]}}""" });
        }
        string otherKey = await h.CreateKeyAsync(ExecutionHarness.OtherTenant, "developer");

        var (status, body, _) = await PostAsync(http, "/v1/chat/completions", h.Key("developer"), ChatBody);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(("b", "big"), (body.GetProperty("x_wayang").GetProperty("provider").GetString(), body.GetProperty("model").GetString()));
        var step = Assert.Single(body.GetProperty("x_wayang").GetProperty("fallback_path").EnumerateArray());
        Assert.Equal(("a", "INFERENCE_RATE_LIMITED"), (step.GetProperty("provider").GetString(), step.GetProperty("error").GetString()));

        (status, _, _) = await PostAsync(http, "/v1/chat/completions", otherKey, ChatBody);
        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        Assert.Equal(1, b.ChatCalls);
    }

    [Fact]
    public async Task A_server_without_providers_answers_503()
    {
        await using var h = await ExecutionHarness.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://{h.Server.Server.HttpEndPoint}") };

        var (status, body, _) = await PostAsync(http, "/v1/chat/completions", h.Key("developer"), ChatBody);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        AssertError(body, "api_error", "unavailable");
    }

    private static async IAsyncEnumerable<ChatDelta> ToolDeltas([EnumeratorCancellation] CancellationToken ct)
    {
        await Task.Yield();
        ct.ThrowIfCancellationRequested();
        yield return new ChatDelta { ToolCalls = [new ToolCallDelta { Index = 0, Id = "call_9", Name = "weather", ArgumentsJson = "" }] };
        yield return new ChatDelta { ToolCalls = [new ToolCallDelta { Index = 0, ArgumentsJson = """{"city":""" }] };
        yield return new ChatDelta { ToolCalls = [new ToolCallDelta { Index = 0, ArgumentsJson = "\"Oslo\"}" }] };
        yield return new ChatDelta { FinishReason = FinishReason.ToolCalls, Usage = new TokenUsage { PromptTokens = 1, CompletionTokens = 1 } };
    }
}
