using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Adapters.Anthropic;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Providers.Http;

namespace Wayang.Fast.Inference.Tests.Adapters;

public sealed class AnthropicProviderTests : IAsyncLifetime
{
    private const string Awkward = "Grüße aus Köln — 世界の皆さん, naïve café 🎉 done.";

    private FakeAnthropicServer _fake = null!;
    private AnthropicProvider _provider = null!;

    public async Task InitializeAsync()
    {
        _fake = await FakeAnthropicServer.StartAsync();
        _provider = new AnthropicProvider(new HttpProviderOptions { Name = "claude", BaseAddress = _fake.Address, ApiKey = "sk-ant-test" });
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
                ChatMessage.Text(ChatRole.User, "Weather in Paris and Rome?"),
                new ChatMessage
                {
                    Role = ChatRole.Assistant,
                    Parts = [ChatContentPart.FromText("Checking both.")],
                    ToolCalls =
                    [
                        new ToolCall { Id = "toolu_1", Name = "weather", ArgumentsJson = "{\"city\":\"Paris\"}" },
                        new ToolCall { Id = "toolu_2", Name = "weather", ArgumentsJson = "{\"city\":\"Rome\"}" },
                    ],
                },
                new ChatMessage { Role = ChatRole.Tool, ToolCallId = "toolu_1", Parts = [ChatContentPart.FromText("18C")] },
                new ChatMessage { Role = ChatRole.Tool, ToolCallId = "toolu_2", Parts = [ChatContentPart.FromText("24C")] },
            ],
            Tools = [new ToolSpec { Name = "weather", Description = "Current weather", ParametersJson = """{"type":"object","properties":{"city":{"type":"string"}}}""" }],
            Temperature = 0.5,
            TopP = 0.8,
            Stop = ["END"],
            Seed = 7,
        };

        var response = await _provider.ChatAsync(request, "claude-test-1", default);

        var sent = _fake.LastRequest;
        Assert.Equal(("POST", "/v1/messages"), (sent.Method, sent.PathAndQuery));
        Assert.Equal("sk-ant-test", sent.Headers["x-api-key"]);
        Assert.Equal("2023-06-01", sent.Headers["anthropic-version"]);
        Assert.False(sent.Headers.ContainsKey("Authorization"));
        var json = sent.Json;
        Assert.Equal("claude-test-1", json.GetProperty("model").GetString());
        Assert.Equal(1024, json.GetProperty("max_tokens").GetInt32());
        Assert.Equal("Be brief.", json.GetProperty("system").GetString());
        Assert.Equal("END", json.GetProperty("stop_sequences")[0].GetString());
        Assert.Equal(0.5, json.GetProperty("temperature").GetDouble());
        Assert.Equal(0.8, json.GetProperty("top_p").GetDouble());
        Assert.False(json.TryGetProperty("seed", out _));
        Assert.False(json.TryGetProperty("stream", out _));
        var tool = json.GetProperty("tools")[0];
        Assert.Equal(("weather", "Current weather"), (tool.GetProperty("name").GetString(), tool.GetProperty("description").GetString()));
        Assert.Equal("object", tool.GetProperty("input_schema").GetProperty("type").GetString());

        var messages = json.GetProperty("messages");
        Assert.Equal(["user", "assistant", "user"], messages.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        Assert.Equal("Weather in Paris and Rome?", messages[0].GetProperty("content")[0].GetProperty("text").GetString());
        var assistant = messages[1].GetProperty("content");
        Assert.Equal(["text", "tool_use", "tool_use"], assistant.EnumerateArray().Select(b => b.GetProperty("type").GetString()));
        Assert.Equal(("toolu_2", "weather", "Rome"),
            (assistant[2].GetProperty("id").GetString(), assistant[2].GetProperty("name").GetString(), assistant[2].GetProperty("input").GetProperty("city").GetString()));
        // Both results of the parallel call in the one user turn that follows it.
        var results = messages[2].GetProperty("content");
        Assert.Equal(["toolu_1:18C", "toolu_2:24C"], results.EnumerateArray().Select(b =>
        {
            Assert.Equal("tool_result", b.GetProperty("type").GetString());
            return b.GetProperty("tool_use_id").GetString() + ":" + b.GetProperty("content").GetString();
        }));

        Assert.Equal(("msg_1", "claude", "claude-test-1"), (response.Id, response.Provider, response.Model));
        var choice = Assert.Single(response.Choices);
        Assert.Equal("Hello there.", choice.Message.TextContent());
        Assert.Equal(FinishReason.Stop, choice.FinishReason);
        Assert.Equal((12, 5), (response.Usage.PromptTokens, response.Usage.CompletionTokens));
    }

    [Fact]
    public async Task Max_tokens_is_sent_as_asked_and_a_tool_without_parameters_gets_an_empty_schema()
    {
        var request = Simple();
        request.MaxTokens = 77;
        request.Tools = [new ToolSpec { Name = "now" }];
        await _provider.ChatAsync(request, "claude-test-1", default);

        var json = _fake.LastRequest.Json;
        Assert.Equal(77, json.GetProperty("max_tokens").GetInt32());
        Assert.Equal("object", json.GetProperty("tools")[0].GetProperty("input_schema").GetProperty("type").GetString());
    }

    [Fact]
    public async Task A_json_response_format_is_refused_not_silently_dropped()
    {
        var request = Simple();
        request.ResponseFormat = ResponseFormat.JsonObject;
        var ex = await Assert.ThrowsAsync<WayangException>(() => _provider.ChatAsync(request, "claude-test-1", default));
        Assert.Equal(ErrorCode.InferenceRequestInvalid, ex.Code);
        Assert.Empty(_fake.Server.Requests);
        Assert.False(_provider.Capabilities.HasFlag(ProviderCapabilities.JsonMode));
    }

    [Fact]
    public async Task Unary_tool_use_is_read()
    {
        _fake.Reply = new FakeReply { Text = "Let me check.", ToolCalls = [new("toolu_9", "weather", "{\"city\":\"Oslo\"}")] };
        var response = await _provider.ChatAsync(Simple(), "claude-test-1", default);

        var choice = Assert.Single(response.Choices);
        Assert.Equal(FinishReason.ToolCalls, choice.FinishReason);
        Assert.Equal("Let me check.", choice.Message.TextContent());
        var call = Assert.Single(choice.Message.ToolCalls);
        Assert.Equal(("toolu_9", "weather", "{\"city\":\"Oslo\"}"), (call.Id, call.Name, call.ArgumentsJson));
    }

    [Theory]
    [InlineData("end_turn", FinishReason.Stop)]
    [InlineData("stop_sequence", FinishReason.Stop)]
    [InlineData("max_tokens", FinishReason.Length)]
    [InlineData("tool_use", FinishReason.ToolCalls)]
    [InlineData("refusal", FinishReason.ContentFilter)]
    public async Task Stop_reasons_map_in_both_forms(string stopReason, FinishReason expected)
    {
        _fake.Reply = new FakeReply { FinishReason = stopReason };
        Assert.Equal(expected, (await _provider.ChatAsync(Simple(), "claude-test-1", default)).Choices[0].FinishReason);
        Assert.Equal(expected, (await StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "claude-test-1", default))).FinishReason);
    }

    [Theory]
    [InlineData(new[] { 1 })]
    [InlineData(new[] { 1, 2, 3 })]
    [InlineData(new[] { 3, 1, 2, 2 })]
    [InlineData(new[] { 7, 1 })]
    public async Task A_stream_split_at_awkward_byte_boundaries_reassembles_the_exact_text(int[] pieces)
    {
        _fake.Reply = new FakeReply { Text = Awkward, PromptTokens = 30, CompletionTokens = 19 };
        _fake.Stream.Pieces = pieces;

        var answer = await StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "claude-test-1", default));

        Assert.Equal(Awkward, answer.Text);
        Assert.Equal(FinishReason.Stop, answer.FinishReason);
        Assert.Equal((30, 19), (answer.Usage!.PromptTokens, answer.Usage.CompletionTokens));
        Assert.True(_fake.LastRequest.Json.GetProperty("stream").GetBoolean());
    }

    [Fact]
    public async Task Streamed_tool_use_assembles_from_input_json_deltas()
    {
        _fake.Reply = new FakeReply
        {
            Text = "Checking.",
            ToolCalls = [new("toolu_1", "weather", "{\"city\":\"Zürich\"}"), new("toolu_2", "time", "{\"tz\":\"CET\"}")],
        };
        _fake.Stream.Pieces = [2, 1];

        var answer = await StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "claude-test-1", default));

        Assert.Equal("Checking.", answer.Text);
        Assert.Equal(FinishReason.ToolCalls, answer.FinishReason);
        Assert.Equal(["toolu_1:weather:{\"city\":\"Zürich\"}", "toolu_2:time:{\"tz\":\"CET\"}"],
            answer.ToolCalls.Select(c => $"{c.Id}:{c.Name}:{c.ArgumentsJson}"));
    }

    [Fact]
    public async Task A_streamed_tool_call_without_arguments_gets_an_empty_object()
    {
        _fake.Reply = new FakeReply { Text = "", ToolCalls = [new("toolu_1", "now", "")] };
        var answer = await StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "claude-test-1", default));
        Assert.Equal("{}", Assert.Single(answer.ToolCalls).ArgumentsJson);
    }

    [Fact]
    public async Task A_slow_stream_still_completes()
    {
        _fake.Reply = new FakeReply { Text = Awkward };
        _fake.Stream.Pieces = [60];
        _fake.Stream.Delay = TimeSpan.FromMilliseconds(15);

        var answer = await StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "claude-test-1", default));

        Assert.Equal(Awkward, answer.Text);
        Assert.Equal(FinishReason.Stop, answer.FinishReason);
    }

    [Fact]
    public async Task A_malformed_event_before_any_delta_is_a_bad_response()
    {
        // Event 1 is the text block's start: nothing has been given yet.
        _fake.Stream.MalformedAt = 1;
        var ex = await Assert.ThrowsAsync<WayangException>(() => StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "claude-test-1", default)));
        Assert.Equal(ErrorCode.ProviderBadResponse, ex.Code);
    }

    [Fact]
    public async Task A_malformed_event_after_deltas_breaks_the_stream()
    {
        _fake.Stream.MalformedAt = 5;
        var deltas = new List<ChatDelta>();
        var ex = await Assert.ThrowsAsync<WayangException>(async () =>
        {
            await foreach (var d in _provider.StreamChatAsync(Simple(), "claude-test-1", default))
                deltas.Add(d);
        });
        Assert.Equal(ErrorCode.StreamBroken, ex.Code);
        Assert.NotEmpty(deltas);
    }

    [Fact]
    public async Task A_disconnect_mid_stream_is_stream_broken_after_the_deltas_already_given()
    {
        _fake.Reply = new FakeReply { Text = Awkward };
        // message_start, content_block_start, ping, then two text deltas.
        _fake.Stream.DisconnectAfter = 5;
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _fake.Stream.DisconnectGate = received.Task;
        var deltas = new List<ChatDelta>();
        var ex = await Assert.ThrowsAsync<WayangException>(async () =>
        {
            await foreach (var d in _provider.StreamChatAsync(Simple(), "claude-test-1", default))
            {
                deltas.Add(d);
                if (deltas.Count == 2)
                    received.SetResult();
            }
        });
        Assert.Equal(ErrorCode.StreamBroken, ex.Code);
        Assert.Equal(2, deltas.Count);
    }

    [Fact]
    public async Task A_stream_that_ends_cleanly_before_message_stop_is_stream_broken()
    {
        _fake.Reply = new FakeReply { Text = Awkward };
        _fake.Stream.EndAfter = 6;
        var ex = await Assert.ThrowsAsync<WayangException>(() => StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "claude-test-1", default)));
        Assert.Equal(ErrorCode.StreamBroken, ex.Code);
    }

    [Fact]
    public async Task An_overloaded_error_event_mid_stream_keeps_its_classification()
    {
        _fake.Reply = new FakeReply { Text = Awkward };
        _fake.ErrorEvent = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        var deltas = new List<ChatDelta>();
        var ex = await Assert.ThrowsAsync<WayangException>(async () =>
        {
            await foreach (var d in _provider.StreamChatAsync(Simple(), "claude-test-1", default))
                deltas.Add(d);
        });
        Assert.Equal(ErrorCode.ProviderUnavailable, ex.Code);
        Assert.Contains("Overloaded", ex.Error.Message, StringComparison.Ordinal);
        Assert.NotEmpty(deltas);
    }

    [Theory]
    [InlineData(400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum", null, ErrorCode.ContextLengthExceeded)]
    [InlineData(400, "invalid_request_error", "messages: roles must alternate", null, ErrorCode.InferenceRequestInvalid)]
    [InlineData(401, "authentication_error", "invalid x-api-key", null, ErrorCode.ProviderAuthFailed)]
    [InlineData(403, "permission_error", "Your API key does not have permission to use the specified resource.", null, ErrorCode.ProviderPermissionDenied)]
    [InlineData(404, "not_found_error", "model: claude-nope", null, ErrorCode.ModelNotFound)]
    [InlineData(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", "3", ErrorCode.InferenceRateLimited)]
    [InlineData(500, "api_error", "Internal server error", null, ErrorCode.ProviderUnavailable)]
    [InlineData(503, "api_error", "Service unavailable", null, ErrorCode.ProviderUnavailable)]
    [InlineData(529, "overloaded_error", "Overloaded", null, ErrorCode.ProviderUnavailable)]
    public async Task Error_statuses_map_to_registry_codes_unary_and_streamed(int status, string type, string message, string? retryAfter, ErrorCode expected)
    {
        _fake.Error = new FakeError(status, FakeAnthropicServer.ErrorBody(type, message), retryAfter);

        var unary = await Assert.ThrowsAsync<WayangException>(() => _provider.ChatAsync(Simple(), "claude-test-1", default));
        var streamed = await Assert.ThrowsAsync<WayangException>(() => StreamedAnswer.CollectAsync(_provider.StreamChatAsync(Simple(), "claude-test-1", default)));

        foreach (var ex in new[] { unary, streamed })
        {
            Assert.Equal(expected, ex.Code);
            Assert.Equal(status.ToString(System.Globalization.CultureInfo.InvariantCulture), ex.Error.Details["status"]);
            Assert.Contains(message, ex.Error.Message, StringComparison.Ordinal);
            Assert.Equal(retryAfter is null ? 0 : 3000, ex.Error.RetryAfterMs);
        }
    }

    [Fact]
    public async Task Cancelling_mid_stream_aborts_the_request()
    {
        _fake.Reply = new FakeReply { Text = Awkward };
        _fake.Stream.HoldAfter = 6;
        using var cts = new CancellationTokenSource();
        var received = new List<ChatDelta>();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var d in _provider.StreamChatAsync(Simple(), "claude-test-1", cts.Token))
            {
                received.Add(d);
                if (received.Count == 2)
                    await cts.CancelAsync();
            }
        });

        await _fake.Stream.Aborted.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, received.Count);
    }

    [Fact]
    public async Task Embeddings_are_refused_as_not_offered()
    {
        Assert.False(_provider.Capabilities.HasFlag(ProviderCapabilities.Embeddings));
        var ex = await Assert.ThrowsAsync<WayangException>(() => _provider.EmbedAsync(new EmbeddingRequest { Inputs = ["a"] }, "claude-test-1", default));
        Assert.Equal(ErrorCode.InferenceRequestInvalid, ex.Code);
        Assert.Contains("embeddings", ex.Error.Message, StringComparison.Ordinal);
        Assert.Empty(_fake.Server.Requests);
    }

    [Fact]
    public async Task Models_are_listed_across_pages()
    {
        var models = await _provider.ListModelsAsync(default);

        Assert.Equal(["claude-test-1", "claude-test-2", "claude-test-3"], models.Select(m => m.Name));
        Assert.Equal(["/v1/models?limit=1000", "/v1/models?limit=1000&after_id=claude-test-2"], _fake.Server.Requests.Select(r => r.PathAndQuery));
        Assert.All(_fake.Server.Requests, r => Assert.Equal("sk-ant-test", r.Headers["x-api-key"]));
    }

    [Fact]
    public async Task Health_is_reported_without_throwing()
    {
        var healthy = await _provider.CheckHealthAsync(default);
        Assert.True(healthy.Healthy);

        _fake.Error = new FakeError(529, FakeAnthropicServer.ErrorBody("overloaded_error", "Overloaded"));
        var overloaded = await _provider.CheckHealthAsync(default);
        Assert.False(overloaded.Healthy);
        Assert.Contains("PROVIDER_UNAVAILABLE", overloaded.Error, StringComparison.Ordinal);

        using var unreachable = new AnthropicProvider(new HttpProviderOptions { Name = "gone", BaseAddress = StreamedAnswer.ClosedPort(), ApiKey = "k" });
        var down = await unreachable.CheckHealthAsync(default);
        Assert.False(down.Healthy);
        Assert.Contains("PROVIDER_UNAVAILABLE", down.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_per_request_credential_replaces_the_configured_key_for_that_request_only()
    {
        var request = Simple();
        request.ApiKey = "sk-agent";
        await _provider.ChatAsync(request, "claude-test-1", default);
        Assert.Equal("sk-agent", _fake.LastRequest.Headers["x-api-key"]);

        await _provider.ChatAsync(Simple(), "claude-test-1", default);
        Assert.DoesNotContain("sk-agent", string.Join(",", _fake.LastRequest.Headers.Values), StringComparison.Ordinal);
    }
}
