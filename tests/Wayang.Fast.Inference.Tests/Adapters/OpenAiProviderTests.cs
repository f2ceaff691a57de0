using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Adapters.OpenAi;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Providers.Http;

namespace Wayang.Fast.Inference.Tests.Adapters;

public sealed class OpenAiProviderTests : IAsyncLifetime
{
    // Multi-byte UTF-8 of two and three bytes, and a four-byte emoji.
    private const string Awkward = "Grüße aus Köln — 世界の皆さん, naïve café 🎉 done.";

    private FakeOpenAiServer _fake = null!;
    private OpenAiProvider _provider = null!;

    public async Task InitializeAsync()
    {
        _fake = await FakeOpenAiServer.StartAsync();
        _provider = new OpenAiProvider(new HttpProviderOptions { Name = "oai", BaseAddress = _fake.Address, ApiKey = "sk-test" });
    }

    public async Task DisposeAsync()
    {
        _provider.Dispose();
        await _fake.DisposeAsync();
    }

    private static ChatRequest Simple(string text = "Hi") => new() { Messages = [ChatMessage.Text(ChatRole.User, text)] };

    [Fact]
    public async Task A_unary_chat_sends_the_documented_request_and_reads_the_answer()
    {
        var request = new ChatRequest
        {
            Messages =
            [
                ChatMessage.Text(ChatRole.System, "Be brief."),
                ChatMessage.Text(ChatRole.User, "Weather in Paris?"),
                new ChatMessage { Role = ChatRole.Assistant, ToolCalls = [new ToolCall { Id = "call_1", Name = "weather", ArgumentsJson = "{\"city\":\"Paris\"}" }] },
                new ChatMessage { Role = ChatRole.Tool, ToolCallId = "call_1", Parts = [ChatContentPart.FromText("18C")] },
            ],
            Tools = [new ToolSpec { Name = "weather", Description = "Current weather", ParametersJson = """{"type":"object","properties":{"city":{"type":"string"}}}""" }],
            Temperature = 0.25,
            TopP = 0.9,
            MaxTokens = 50,
            Stop = ["END"],
            Seed = 7,
            ResponseFormat = ResponseFormat.JsonObject,
        };

        var response = await _provider.ChatAsync(request, "gpt-test", default);

        var sent = _fake.LastRequest;
        Assert.Equal(("POST", "/v1/chat/completions"), (sent.Method, sent.PathAndQuery));
        Assert.Equal("Bearer sk-test", sent.Headers["Authorization"]);
        Assert.StartsWith("application/json", sent.Headers["Content-Type"], StringComparison.Ordinal);
        var json = sent.Json;
        Assert.Equal("gpt-test", json.GetProperty("model").GetString());
        Assert.False(json.TryGetProperty("stream", out _));
        var messages = json.GetProperty("messages");
        Assert.Equal(4, messages.GetArrayLength());
        Assert.Equal(("system", "Be brief."), (messages[0].GetProperty("role").GetString(), messages[0].GetProperty("content").GetString()));
        Assert.Equal(("user", "Weather in Paris?"), (messages[1].GetProperty("role").GetString(), messages[1].GetProperty("content").GetString()));
        Assert.Equal(JsonValueKind.Null, messages[2].GetProperty("content").ValueKind);
        var call = messages[2].GetProperty("tool_calls")[0];
        Assert.Equal(("call_1", "function", "weather", "{\"city\":\"Paris\"}"),
            (call.GetProperty("id").GetString(), call.GetProperty("type").GetString(), call.GetProperty("function").GetProperty("name").GetString(),
                call.GetProperty("function").GetProperty("arguments").GetString()));
        Assert.Equal(("tool", "call_1", "18C"),
            (messages[3].GetProperty("role").GetString(), messages[3].GetProperty("tool_call_id").GetString(), messages[3].GetProperty("content").GetString()));
        var tool = json.GetProperty("tools")[0];
        Assert.Equal("function", tool.GetProperty("type").GetString());
        Assert.Equal("weather", tool.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("Current weather", tool.GetProperty("function").GetProperty("description").GetString());
        Assert.Equal("string", tool.GetProperty("function").GetProperty("parameters").GetProperty("properties").GetProperty("city").GetProperty("type").GetString());
        Assert.Equal(0.25, json.GetProperty("temperature").GetDouble());
        Assert.Equal(0.9, json.GetProperty("top_p").GetDouble());
        Assert.Equal(50, json.GetProperty("max_tokens").GetInt32());
        Assert.Equal("END", json.GetProperty("stop")[0].GetString());
        Assert.Equal(7, json.GetProperty("seed").GetInt64());
        Assert.Equal("json_object", json.GetProperty("response_format").GetProperty("type").GetString());

        Assert.Equal(("chatcmpl-1", "oai", "gpt-test"), (response.Id, response.Provider, response.Model));
        var choice = Assert.Single(response.Choices);
        Assert.Equal("Hello there.", choice.Message.TextContent());
        Assert.Equal(ChatRole.Assistant, choice.Message.Role);
        Assert.Equal(FinishReason.Stop, choice.FinishReason);
        Assert.Equal((12, 5), (response.Usage.PromptTokens, response.Usage.CompletionTokens));
    }

    [Fact]
    public async Task A_json_schema_response_format_is_sent_with_its_schema()
    {
        var request = Simple();
        request.ResponseFormat = ResponseFormat.JsonSchema;
        request.ResponseSchemaJson = """{"type":"object","properties":{"answer":{"type":"string"}},"required":["answer"]}""";
        await _provider.ChatAsync(request, "gpt-test", default);

        var format = _fake.LastRequest.Json.GetProperty("response_format");
        Assert.Equal("json_schema", format.GetProperty("type").GetString());
        Assert.Equal("response", format.GetProperty("json_schema").GetProperty("name").GetString());
        Assert.Equal("answer", format.GetProperty("json_schema").GetProperty("schema").GetProperty("required")[0].GetString());
    }

    [Fact]
    public async Task Invalid_tool_parameters_are_refused_before_anything_is_sent()
    {
        var request = Simple();
        request.Tools = [new ToolSpec { Name = "broken", ParametersJson = "{not json" }];
        var ex = await Assert.ThrowsAsync<WayangException>(() => _provider.ChatAsync(request, "gpt-test", default));
        Assert.Equal(ErrorCode.InferenceRequestInvalid, ex.Code);
        Assert.Empty(_fake.Server.Requests);
    }

    [Fact]
    public async Task Unary_tool_calls_are_read()
    {
        _fake.Reply = new FakeReply
        {
            Text = "",
            ToolCalls = [new("call_a", "weather", "{\"city\":\"Oslo\"}"), new("call_b", "time", "{\"tz\":\"CET\"}")],
        };
        var response = await _provider.ChatAsync(Simple(), "gpt-test", default);

        var choice = Assert.Single(response.Choices);
        Assert.Equal(FinishReason.ToolCalls, choice.FinishReason);
        Assert.Equal("", choice.Message.TextContent());
        Assert.Equal(["call_a:weather:{\"city\":\"Oslo\"}", "call_b:time:{\"tz\":\"CET\"}"],
            choice.Message.ToolCalls.Select(c => $"{c.Id}:{c.Name}:{c.ArgumentsJson}"));
    }

    [Theory]
    [InlineData(new[] { 1 })]
    [InlineData(new[] { 1, 2, 3 })]
    [InlineData(new[] { 3, 1, 2, 2 })]
    [InlineData(new[] { 7, 1 })]
    public async Task A_stream_split_at_awkward_byte_boundaries_reassembles_the_exact_text(int[] pieces)
    {
        _fake.Reply = new FakeReply { Text = Awkward, PromptTokens = 21, CompletionTokens = 17 };
        _fake.Stream.Pieces = pieces;

        var answer = await StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "gpt-test", default));

        Assert.Equal(Awkward, answer.Text);
        Assert.Equal(FinishReason.Stop, answer.FinishReason);
        Assert.Equal((21, 17), (answer.Usage!.PromptTokens, answer.Usage.CompletionTokens));
        Assert.True(answer.Deltas > 5);
        var json = _fake.LastRequest.Json;
        Assert.True(json.GetProperty("stream").GetBoolean());
        Assert.True(json.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
    }

    [Fact]
    public async Task The_last_delta_carries_the_finish_reason_and_the_usage()
    {
        var deltas = new List<ChatDelta>();
        await foreach (var d in _provider.StreamChatAsync(Simple(), "gpt-test", default))
            deltas.Add(d);
        Assert.All(deltas[..^1], d => Assert.Null(d.FinishReason));
        Assert.Equal(FinishReason.Stop, deltas[^1].FinishReason);
        Assert.Equal(12, deltas[^1].Usage!.PromptTokens);
    }

    [Fact]
    public async Task Streamed_tool_calls_assemble_from_their_fragments()
    {
        _fake.Reply = new FakeReply
        {
            Text = "Checking.",
            ToolCalls = [new("call_a", "weather", "{\"city\":\"Zürich\"}"), new("call_b", "time", "{\"tz\":\"CET\"}")],
        };
        _fake.Stream.Pieces = [2, 1];

        var answer = await StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "gpt-test", default));

        Assert.Equal("Checking.", answer.Text);
        Assert.Equal(FinishReason.ToolCalls, answer.FinishReason);
        Assert.Equal(["call_a:weather:{\"city\":\"Zürich\"}", "call_b:time:{\"tz\":\"CET\"}"],
            answer.ToolCalls.Select(c => $"{c.Id}:{c.Name}:{c.ArgumentsJson}"));
    }

    [Fact]
    public async Task A_content_filter_finish_reason_maps_in_both_forms()
    {
        _fake.Reply = new FakeReply { Text = "I can", FinishReason = "content_filter" };
        Assert.Equal(FinishReason.ContentFilter, (await _provider.ChatAsync(Simple(), "gpt-test", default)).Choices[0].FinishReason);
        Assert.Equal(FinishReason.ContentFilter, (await StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "gpt-test", default))).FinishReason);
    }

    [Fact]
    public async Task A_length_finish_reason_maps()
    {
        _fake.Reply = new FakeReply { FinishReason = "length" };
        Assert.Equal(FinishReason.Length, (await StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "gpt-test", default))).FinishReason);
    }

    [Fact]
    public async Task A_slow_stream_still_completes()
    {
        _fake.Reply = new FakeReply { Text = Awkward };
        _fake.Stream.Pieces = [40];
        _fake.Stream.Delay = TimeSpan.FromMilliseconds(15);

        var answer = await StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "gpt-test", default));

        Assert.Equal(Awkward, answer.Text);
        Assert.Equal(FinishReason.Stop, answer.FinishReason);
    }

    [Fact]
    public async Task A_malformed_first_chunk_is_a_bad_response()
    {
        _fake.Stream.MalformedAt = 0;
        var ex = await Assert.ThrowsAsync<WayangException>(() => StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "gpt-test", default)));
        Assert.Equal(ErrorCode.ProviderBadResponse, ex.Code);
    }

    [Fact]
    public async Task A_malformed_chunk_after_deltas_breaks_the_stream()
    {
        _fake.Stream.MalformedAt = 3;
        var deltas = new List<ChatDelta>();
        var ex = await Assert.ThrowsAsync<WayangException>(async () =>
        {
            await foreach (var d in _provider.StreamChatAsync(Simple(), "gpt-test", default))
                deltas.Add(d);
        });
        Assert.Equal(ErrorCode.StreamBroken, ex.Code);
        Assert.NotEmpty(deltas);
    }

    [Fact]
    public async Task A_disconnect_mid_stream_is_stream_broken_after_the_deltas_already_given()
    {
        _fake.Reply = new FakeReply { Text = Awkward };
        _fake.Stream.DisconnectAfter = 4;
        _fake.Stream.Pieces = [2];
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _fake.Stream.DisconnectGate = received.Task;
        var deltas = new List<ChatDelta>();
        var ex = await Assert.ThrowsAsync<WayangException>(async () =>
        {
            await foreach (var d in _provider.StreamChatAsync(Simple(), "gpt-test", default))
            {
                deltas.Add(d);
                if (deltas.Count == 3)
                    received.SetResult();
            }
        });
        Assert.Equal(ErrorCode.StreamBroken, ex.Code);
        Assert.Equal(3, deltas.Count);
        Assert.Equal("oai", ex.Error.Details["provider"]);
    }

    [Fact]
    public async Task A_stream_that_ends_cleanly_before_the_finish_is_stream_broken()
    {
        _fake.Reply = new FakeReply { Text = Awkward };
        _fake.Stream.EndAfter = 4;
        var ex = await Assert.ThrowsAsync<WayangException>(() => StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "gpt-test", default)));
        Assert.Equal(ErrorCode.StreamBroken, ex.Code);
    }

    [Fact]
    public async Task An_error_chunk_in_the_stream_keeps_its_classification()
    {
        _fake.Server.Handler = async (context, _) =>
        {
            context.Response.ContentType = "text/event-stream";
            await Fakes.StreamScript.WriteAsync(context.Response,
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n" +
                "data: {\"error\":{\"message\":\"Rate limit reached for requests\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}\n\n");
        };
        var ex = await Assert.ThrowsAsync<WayangException>(() => StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "gpt-test", default)));
        Assert.Equal(ErrorCode.InferenceRateLimited, ex.Code);
    }

    public static TheoryData<int, string, string?, ErrorCode> ErrorCases => new()
    {
        { 400, FakeOpenAiServer.ErrorBody("This model's maximum context length is 8192 tokens.", "invalid_request_error", "context_length_exceeded"), null, ErrorCode.ContextLengthExceeded },
        { 400, FakeOpenAiServer.ErrorBody("Your request was rejected by the safety system.", "invalid_request_error", "content_policy_violation"), null, ErrorCode.ContentFiltered },
        { 400, FakeOpenAiServer.ErrorBody("Unrecognized request argument supplied: foo", "invalid_request_error", null), null, ErrorCode.InferenceRequestInvalid },
        { 401, FakeOpenAiServer.ErrorBody("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"), null, ErrorCode.ProviderAuthFailed },
        { 403, FakeOpenAiServer.ErrorBody("You are not allowed to access this model.", "invalid_request_error", null), null, ErrorCode.ProviderPermissionDenied },
        { 404, FakeOpenAiServer.ErrorBody("The model 'nope' does not exist", "invalid_request_error", "model_not_found"), null, ErrorCode.ModelNotFound },
        { 429, FakeOpenAiServer.ErrorBody("Rate limit reached for requests", "requests", "rate_limit_exceeded"), "3", ErrorCode.InferenceRateLimited },
        { 500, FakeOpenAiServer.ErrorBody("The server had an error while processing your request.", "server_error", null), null, ErrorCode.ProviderUnavailable },
        { 503, FakeOpenAiServer.ErrorBody("The engine is currently overloaded.", "server_error", null), null, ErrorCode.ProviderUnavailable },
        // vLLM's older shape: the error at the top level, the status as a number.
        { 400, """{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.","type":"BadRequestError","param":null,"code":400}""", null, ErrorCode.ContextLengthExceeded },
    };

    [Theory]
    [MemberData(nameof(ErrorCases))]
    public async Task Error_statuses_map_to_registry_codes_unary_and_streamed(int status, string body, string? retryAfter, ErrorCode expected)
    {
        _fake.Error = new FakeError(status, body, retryAfter);

        var unary = await Assert.ThrowsAsync<WayangException>(() => _provider.ChatAsync(Simple(), "gpt-test", default));
        var streamed = await Assert.ThrowsAsync<WayangException>(() => StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "gpt-test", default)));

        foreach (var ex in new[] { unary, streamed })
        {
            Assert.Equal(expected, ex.Code);
            Assert.Equal(status.ToString(System.Globalization.CultureInfo.InvariantCulture), ex.Error.Details["status"]);
            Assert.Equal(retryAfter is null ? 0 : 3000, ex.Error.RetryAfterMs);
        }
    }

    [Fact]
    public async Task Cancelling_mid_stream_aborts_the_request()
    {
        _fake.Reply = new FakeReply { Text = Awkward };
        _fake.Stream.HoldAfter = 3;
        using var cts = new CancellationTokenSource();
        var received = new List<ChatDelta>();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var d in _provider.StreamChatAsync(Simple(), "gpt-test", cts.Token))
            {
                received.Add(d);
                if (received.Count == 2)
                    await cts.CancelAsync();
            }
        });

        // The fake sees its RequestAborted fire: the HTTP request was aborted, not left to run.
        await _fake.Stream.Aborted.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, received.Count);
    }

    [Fact]
    public async Task Embeddings_come_back_in_input_order()
    {
        var response = await _provider.EmbedAsync(new EmbeddingRequest { Inputs = ["a", "bbb", "cc"] }, "embed-test", default);

        var sent = _fake.LastRequest;
        Assert.Equal(("POST", "/v1/embeddings"), (sent.Method, sent.PathAndQuery));
        Assert.Equal("Bearer sk-test", sent.Headers["Authorization"]);
        Assert.Equal("embed-test", sent.Json.GetProperty("model").GetString());
        Assert.Equal(["a", "bbb", "cc"], sent.Json.GetProperty("input").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("float", sent.Json.GetProperty("encoding_format").GetString());
        Assert.Equal([[0f, 1f, 0.5f], [1f, 3f, 0.5f], [2f, 2f, 0.5f]], response.Vectors);
        Assert.Equal(("oai", "embed-test", 9), (response.Provider, response.Model, response.Usage.PromptTokens));
    }

    [Fact]
    public async Task Models_are_listed_with_their_context_length()
    {
        var models = await _provider.ListModelsAsync(default);
        Assert.Equal(("GET", "/v1/models"), (_fake.LastRequest.Method, _fake.LastRequest.PathAndQuery));
        Assert.Equal(["gpt-test", "llama-3-8b"], models.Select(m => m.Name));
        Assert.All(models, m => Assert.Equal(8192, m.ContextLength));
    }

    [Fact]
    public async Task A_base_address_that_already_names_v1_is_not_given_another()
    {
        using var provider = new OpenAiProvider(new HttpProviderOptions { Name = "oai", BaseAddress = new Uri(_fake.Address, "v1") });
        Assert.Equal(2, (await provider.ListModelsAsync(default)).Count);
        Assert.Equal("/v1/models", _fake.LastRequest.PathAndQuery);
    }

    [Fact]
    public async Task Health_is_reported_without_throwing()
    {
        var healthy = await _provider.CheckHealthAsync(default);
        Assert.True(healthy.Healthy);
        Assert.Null(healthy.Error);

        _fake.Error = new FakeError(401, FakeOpenAiServer.ErrorBody("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"));
        var rejected = await _provider.CheckHealthAsync(default);
        Assert.False(rejected.Healthy);
        Assert.Contains("PROVIDER_AUTH_FAILED", rejected.Error, StringComparison.Ordinal);

        using var unreachable = new OpenAiProvider(new HttpProviderOptions { Name = "gone", BaseAddress = StreamedAnswer.ClosedPort() });
        var down = await unreachable.CheckHealthAsync(default);
        Assert.False(down.Healthy);
        Assert.Contains("PROVIDER_UNAVAILABLE", down.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_per_request_credential_replaces_the_configured_key_for_that_request_only()
    {
        var request = Simple();
        request.ApiKey = "sk-agent";
        await _provider.ChatAsync(request, "gpt-test", default);
        Assert.Equal("Bearer sk-agent", _fake.LastRequest.Headers["Authorization"]);

        await _provider.ChatAsync(Simple(), "gpt-test", default);
        Assert.DoesNotContain("sk-agent", string.Join(",", _fake.LastRequest.Headers.Values), StringComparison.Ordinal);
    }
}
