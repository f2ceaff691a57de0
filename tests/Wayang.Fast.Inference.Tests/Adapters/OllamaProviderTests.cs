using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Adapters.Ollama;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Providers.Http;

namespace Wayang.Fast.Inference.Tests.Adapters;

public sealed class OllamaProviderTests
{
    private const string Model = "llama3.2:3b";
    // Two-, three- and four-byte UTF-8 sequences, so 1-3 byte pieces cut through them.
    private const string Multilingual = "Grüße, 世界! Ünïcödé ✓ 🦙🚀 done.";

    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);

    private static OllamaProvider Provider(FakeOllamaServer fake, TimeSpan? keepAlive = null) =>
        new(new HttpProviderOptions { Name = "ollama-test", BaseAddress = fake.Address }, keepAlive);

    private static ChatRequest Request(string text = "Say hello") => new()
    {
        Model = Model,
        Messages = [ChatMessage.Text(ChatRole.System, "Be brief."), ChatMessage.Text(ChatRole.User, text)],
    };

    private static async Task<List<ChatDelta>> CollectAsync(IAsyncEnumerable<ChatDelta> stream)
    {
        var deltas = new List<ChatDelta>();
        await foreach (var d in stream)
            deltas.Add(d);
        return deltas;
    }

    [Fact]
    public async Task Unary_chat_sends_the_native_request_and_maps_answer_usage_and_timings()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        fake.Reply = "Hello there!";
        using var provider = Provider(fake, TimeSpan.FromMinutes(10));
        var request = Request();
        request.Temperature = 0.25;
        request.TopP = 0.9;
        request.MaxTokens = 64;
        request.Stop = ["\n\n", "END"];
        request.Seed = 42;
        request.ResponseFormat = ResponseFormat.JsonObject;

        var result = await provider.ChatWithTimingsAsync(request, Model, CancellationToken.None);

        var sent = fake.Last("/api/chat");
        Assert.Equal("POST", sent.Method);
        var json = sent.Json;
        Assert.Equal(Model, json.GetProperty("model").GetString());
        Assert.False(json.GetProperty("stream").GetBoolean());
        Assert.Equal(600, json.GetProperty("keep_alive").GetInt32());
        Assert.Equal("json", json.GetProperty("format").GetString());
        var messages = json.GetProperty("messages").EnumerateArray().ToList();
        Assert.Equal(["system", "user"], messages.Select(m => m.GetProperty("role").GetString()));
        Assert.Equal("Say hello", messages[1].GetProperty("content").GetString());
        var options = json.GetProperty("options");
        Assert.Equal(0.25, options.GetProperty("temperature").GetDouble());
        Assert.Equal(0.9, options.GetProperty("top_p").GetDouble());
        Assert.Equal(64, options.GetProperty("num_predict").GetInt32());
        Assert.Equal(["\n\n", "END"], options.GetProperty("stop").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(42, options.GetProperty("seed").GetInt64());

        var response = result.Response;
        Assert.Equal("ollama-test", response.Provider);
        Assert.Equal(Model, response.Model);
        Assert.Equal("Hello there!", response.Choices[0].Message.TextContent());
        Assert.Equal(ChatRole.Assistant, response.Choices[0].Message.Role);
        Assert.Equal(FinishReason.Stop, response.Choices[0].FinishReason);
        Assert.Equal(FakeOllamaServer.PromptEvalCount, response.Usage.PromptTokens);
        Assert.Equal(TimeSpan.FromTicks(FakeOllamaServer.TotalNs / 100), result.Timings.Total);
        Assert.Equal(TimeSpan.FromTicks(FakeOllamaServer.LoadNs / 100), result.Timings.Load);
        Assert.Equal(TimeSpan.FromTicks(FakeOllamaServer.PromptEvalNs / 100), result.Timings.PromptEval);
        Assert.Equal(TimeSpan.FromTicks(FakeOllamaServer.EvalNs / 100), result.Timings.Eval);
        Assert.Equal("stop", result.Timings.DoneReason);
    }

    [Fact]
    public async Task A_request_without_options_or_keep_alive_sends_neither()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        using var provider = Provider(fake);
        await provider.ChatAsync(Request(), Model, CancellationToken.None);
        var json = fake.Last("/api/chat").Json;
        Assert.False(json.TryGetProperty("options", out _));
        Assert.False(json.TryGetProperty("keep_alive", out _));
        Assert.False(json.TryGetProperty("format", out _));
        Assert.False(json.TryGetProperty("tools", out _));
    }

    [Fact]
    public async Task Tools_schema_format_and_tool_calls_go_out_as_json_objects_and_tool_calls_come_back()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        fake.ReplyToolCalls.Add(("get_weather", """{"city":"Paris","unit":"celsius"}"""));
        fake.Reply = "";
        using var provider = Provider(fake);
        var request = Request("Weather in Paris?");
        request.Tools = [new ToolSpec { Name = "get_weather", Description = "Current weather", ParametersJson = """{"type":"object","properties":{"city":{"type":"string"}}}""" }];
        request.ResponseFormat = ResponseFormat.JsonSchema;
        request.ResponseSchemaJson = """{"type":"object","properties":{"answer":{"type":"string"}}}""";
        var earlier = ChatMessage.Text(ChatRole.Assistant, "");
        earlier.ToolCalls = [new ToolCall { Id = "call_7", Name = "get_time", ArgumentsJson = """{"zone":"CET"}""" }];
        request.Messages.Add(earlier);
        request.Messages.Add(new ChatMessage { Role = ChatRole.Tool, ToolCallId = "call_7", Parts = [ChatContentPart.FromText("12:00")] });

        var response = await provider.ChatAsync(request, Model, CancellationToken.None);

        var json = fake.Last("/api/chat").Json;
        var tool = json.GetProperty("tools")[0];
        Assert.Equal("function", tool.GetProperty("type").GetString());
        Assert.Equal("get_weather", tool.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal(JsonValueKind.Object, tool.GetProperty("function").GetProperty("parameters").ValueKind);
        Assert.Equal(JsonValueKind.Object, json.GetProperty("format").ValueKind);
        Assert.Equal("object", json.GetProperty("format").GetProperty("type").GetString());
        var messages = json.GetProperty("messages");
        Assert.Equal("CET", messages[2].GetProperty("tool_calls")[0].GetProperty("function").GetProperty("arguments").GetProperty("zone").GetString());
        Assert.Equal("tool", messages[3].GetProperty("role").GetString());
        Assert.Equal("get_time", messages[3].GetProperty("tool_name").GetString());

        var choice = response.Choices[0];
        Assert.Equal(FinishReason.ToolCalls, choice.FinishReason);
        var call = Assert.Single(choice.Message.ToolCalls);
        Assert.Equal("get_weather", call.Name);
        Assert.False(string.IsNullOrEmpty(call.Id));
        Assert.Equal("Paris", JsonDocument.Parse(call.ArgumentsJson).RootElement.GetProperty("city").GetString());
    }

    [Fact]
    public async Task Invalid_caller_json_is_refused_before_anything_is_sent()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        using var provider = Provider(fake);
        var request = Request();
        request.Tools = [new ToolSpec { Name = "broken", ParametersJson = "{not json" }];
        var ex = await Assert.ThrowsAsync<WayangException>(() => provider.ChatAsync(request, Model, CancellationToken.None));
        Assert.Equal(ErrorCode.InferenceRequestInvalid, ex.Code);
        Assert.Empty(fake.Http.Requests);
    }

    [Theory]
    [InlineData(new[] { 1 })]
    [InlineData(new[] { 2 })]
    [InlineData(new[] { 3 })]
    [InlineData(new[] { 1, 3, 2 })]
    public async Task Streamed_lines_split_at_any_byte_reassemble_the_exact_text_with_usage_and_timings(int[] pieces)
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        fake.Reply = Multilingual;
        fake.PieceSizes = pieces;
        using var provider = Provider(fake);
        OllamaTimingsEventArgs? reported = null;
        provider.TimingsReported += (_, e) => reported = e;

        var deltas = await CollectAsync(provider.StreamChatAsync(Request(), Model, CancellationToken.None));

        Assert.True(fake.Last("/api/chat").Json.GetProperty("stream").GetBoolean());
        Assert.Equal(Multilingual, string.Concat(deltas.Select(d => d.Content)));
        Assert.True(deltas.Count > 10);
        Assert.All(deltas.SkipLast(1), d => Assert.Null(d.FinishReason));
        var last = deltas[^1];
        Assert.Equal(FinishReason.Stop, last.FinishReason);
        Assert.NotNull(last.Usage);
        Assert.Equal(FakeOllamaServer.PromptEvalCount, last.Usage.PromptTokens);
        Assert.Equal(FakeJson.Pieces(Multilingual, fake.ScalarsPerLine).Count, last.Usage.CompletionTokens);
        Assert.NotNull(reported);
        Assert.True(reported.Streamed);
        Assert.Equal(Model, reported.Model);
        Assert.Equal(TimeSpan.FromTicks(FakeOllamaServer.LoadNs / 100), reported.Timings.Load);
        Assert.Equal(TimeSpan.FromTicks(FakeOllamaServer.EvalNs / 100), reported.Timings.Eval);
    }

    [Fact]
    public async Task A_length_stop_and_a_streamed_tool_call_map_to_their_finish_reasons()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        fake.DoneReason = "length";
        using var provider = Provider(fake);
        var deltas = await CollectAsync(provider.StreamChatAsync(Request(), Model, CancellationToken.None));
        Assert.Equal(FinishReason.Length, deltas[^1].FinishReason);

        fake.DoneReason = "stop";
        fake.Reply = "";
        fake.ReplyToolCalls.Add(("lookup", """{"q":"llamas"}"""));
        deltas = await CollectAsync(provider.StreamChatAsync(Request(), Model, CancellationToken.None));
        var call = Assert.Single(deltas.Where(d => d.ToolCalls is not null).SelectMany(d => d.ToolCalls!));
        Assert.Equal(0, call.Index);
        Assert.Equal("lookup", call.Name);
        Assert.NotNull(call.Id);
        Assert.Equal("llamas", JsonDocument.Parse(call.ArgumentsJson!).RootElement.GetProperty("q").GetString());
        Assert.Equal(FinishReason.ToolCalls, deltas[^1].FinishReason);
    }

    [Fact]
    public async Task A_slow_stream_still_completes()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        fake.Reply = "slow but steady";
        fake.PieceSizes = [7];
        fake.PieceDelay = TimeSpan.FromMilliseconds(15);
        using var provider = Provider(fake);
        var deltas = await CollectAsync(provider.StreamChatAsync(Request(), Model, CancellationToken.None));
        Assert.Equal("slow but steady", string.Concat(deltas.Select(d => d.Content)));
        Assert.Equal(FinishReason.Stop, deltas[^1].FinishReason);
    }

    [Theory]
    [InlineData(FakeStreamFault.MalformedLine, 0, ErrorCode.ProviderBadResponse)]
    [InlineData(FakeStreamFault.MalformedLine, 2, ErrorCode.StreamBroken)]
    // Cut before anything was written, headers included: no answer at all, the server is unavailable.
    [InlineData(FakeStreamFault.Disconnect, 0, ErrorCode.ProviderUnavailable)]
    [InlineData(FakeStreamFault.Disconnect, 2, ErrorCode.StreamBroken)]
    [InlineData(FakeStreamFault.EndWithoutDone, 2, ErrorCode.StreamBroken)]
    [InlineData(FakeStreamFault.EndWithoutDone, 0, ErrorCode.StreamBroken)]
    [InlineData(FakeStreamFault.ErrorLine, 0, ErrorCode.ProviderUnavailable)]
    [InlineData(FakeStreamFault.ErrorLine, 2, ErrorCode.StreamBroken)]
    public async Task Stream_faults_are_classified_and_after_deltas_are_stream_broken(FakeStreamFault fault, int afterLines, ErrorCode expected)
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        fake.Reply = "one two three four five six";
        fake.Fault = fault;
        fake.FaultAfterLines = afterLines;
        fake.PieceSizes = [3];
        fake.FaultGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (afterLines == 0)
            fake.FaultGate.SetResult();
        using var provider = Provider(fake);
        var received = new List<ChatDelta>();

        var ex = await Assert.ThrowsAsync<WayangException>(async () =>
        {
            await foreach (var d in provider.StreamChatAsync(Request(), Model, CancellationToken.None))
            {
                received.Add(d);
                if (received.Count == afterLines)
                    fake.FaultGate.TrySetResult();
            }
        });

        Assert.Equal(expected, ex.Code);
        Assert.Equal("ollama-test", ex.Error.Details["provider"]);
        Assert.Equal(afterLines, received.Count);
        Assert.All(received, d => Assert.Null(d.FinishReason));
    }

    [Fact]
    public async Task An_error_line_naming_a_missing_model_before_any_delta_is_model_not_found()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        fake.Fault = FakeStreamFault.ErrorLine;
        fake.FaultAfterLines = 0;
        fake.FaultError = "model 'llama3.2:3b' not found";
        using var provider = Provider(fake);
        var ex = await Assert.ThrowsAsync<WayangException>(() => CollectAsync(provider.StreamChatAsync(Request(), Model, CancellationToken.None)));
        Assert.Equal(ErrorCode.ModelNotFound, ex.Code);
    }

    [Theory]
    [InlineData(400, "invalid options: num_predict must be an integer", ErrorCode.InferenceRequestInvalid)]
    [InlineData(400, "model \"llama9\" not found, try pulling it first", ErrorCode.ModelNotFound)]
    [InlineData(404, "model \"llama9\" not found, try pulling it first", ErrorCode.ModelNotFound)]
    [InlineData(500, "llama runner process has terminated: exit status 2", ErrorCode.ProviderUnavailable)]
    [InlineData(500, "model \"llama9\" not found", ErrorCode.ModelNotFound)]
    [InlineData(503, "server busy, please try again. maximum pending requests exceeded", ErrorCode.ProviderUnavailable)]
    [InlineData(429, "too many requests", ErrorCode.InferenceRateLimited)]
    public async Task Error_statuses_map_to_inference_codes_unary_and_streamed(int status, string error, ErrorCode expected)
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        fake.Fail = (status, error, status == 429 ? "3" : null);
        using var provider = Provider(fake);

        var unary = await Assert.ThrowsAsync<WayangException>(() => provider.ChatAsync(Request(), Model, CancellationToken.None));
        var streamed = await Assert.ThrowsAsync<WayangException>(() => CollectAsync(provider.StreamChatAsync(Request(), Model, CancellationToken.None)));

        foreach (var ex in new[] { unary, streamed })
        {
            Assert.Equal(expected, ex.Code);
            Assert.Equal(status.ToString(System.Globalization.CultureInfo.InvariantCulture), ex.Error.Details["status"]);
            Assert.Contains(error, ex.Error.Message, StringComparison.Ordinal);
            Assert.Equal(status == 429 ? 3000 : 0, ex.Error.RetryAfterMs);
        }
    }

    [Fact]
    public async Task A_model_ollama_does_not_have_is_model_not_found()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        using var provider = Provider(fake);
        var ex = await Assert.ThrowsAsync<WayangException>(() => provider.ChatAsync(Request(), "nope:1b", CancellationToken.None));
        Assert.Equal(ErrorCode.ModelNotFound, ex.Code);
        ex = await Assert.ThrowsAsync<WayangException>(() => provider.ShowAsync("nope:1b", CancellationToken.None));
        Assert.Equal(ErrorCode.ModelNotFound, ex.Code);
    }

    [Fact]
    public async Task Cancelling_mid_stream_aborts_the_request()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        fake.Reply = "first and then nothing";
        fake.Fault = FakeStreamFault.Hold;
        fake.FaultAfterLines = 1;
        using var provider = Provider(fake);
        using var cts = new CancellationTokenSource();
        var received = new List<ChatDelta>();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var d in provider.StreamChatAsync(Request(), Model, cts.Token))
            {
                received.Add(d);
                await cts.CancelAsync();
            }
        });

        Assert.Single(received);
        await fake.ChatAborted.Task.WaitAsync(Guard);
    }

    [Fact]
    public async Task Warm_and_unload_go_through_generate_with_keep_alive()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        using var provider = Provider(fake);

        var timings = await provider.WarmAsync(Model, TimeSpan.FromMinutes(30), CancellationToken.None);
        var warm = fake.Last("/api/generate").Json;
        Assert.Equal(Model, warm.GetProperty("model").GetString());
        Assert.Equal(1800, warm.GetProperty("keep_alive").GetInt32());
        Assert.False(warm.TryGetProperty("prompt", out _));
        Assert.False(warm.GetProperty("stream").GetBoolean());
        Assert.Equal("load", timings.DoneReason);
        Assert.Equal(TimeSpan.FromTicks(FakeOllamaServer.LoadNs / 100), timings.Load);
        Assert.True(fake.Loaded.ContainsKey(Model));

        var again = await provider.WarmAsync(Model, Timeout.InfiniteTimeSpan, CancellationToken.None);
        Assert.Equal(-1, fake.Last("/api/generate").Json.GetProperty("keep_alive").GetInt32());
        Assert.Equal(TimeSpan.Zero, again.Load);

        await provider.UnloadAsync(Model, CancellationToken.None);
        Assert.Equal(0, fake.Last("/api/generate").Json.GetProperty("keep_alive").GetInt32());
        Assert.False(fake.Loaded.ContainsKey(Model));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => provider.WarmAsync(Model, TimeSpan.Zero, CancellationToken.None));
    }

    [Fact]
    public async Task List_models_reads_tags_and_marks_what_ps_shows_loaded()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        fake.Loaded["nomic-embed-text:latest"] = true;
        using var provider = Provider(fake);

        var models = await provider.ListModelsAsync(CancellationToken.None);

        Assert.Equal(["llama3.2:3b", "nomic-embed-text:latest"], models.Select(m => m.Name));
        Assert.Equal(2_019_393_189, models[0].SizeBytes);
        Assert.False(models[0].Loaded);
        Assert.True(models[1].Loaded);
        Assert.Equal(4096, models[1].ContextLength);
        Assert.Contains(fake.Http.Requests, r => r.Method == "GET" && r.PathAndQuery == "/api/ps");
    }

    [Fact]
    public async Task Show_reads_the_context_length_of_the_architecture()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        using var provider = Provider(fake);
        var details = await provider.ShowAsync(Model, CancellationToken.None);
        Assert.Equal(Model, fake.Last("/api/show").Json.GetProperty("model").GetString());
        Assert.Equal("llama", details.Architecture);
        Assert.Equal(131072, details.ContextLength);
        Assert.Contains("tools", details.Capabilities);
        Assert.Equal("Q4_K_M", details.QuantizationLevel);
    }

    [Fact]
    public async Task Embed_sends_the_inputs_as_an_array_and_returns_one_vector_each_in_order()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        using var provider = Provider(fake, TimeSpan.FromMinutes(1));
        var request = new EmbeddingRequest { Model = "nomic-embed-text:latest", Inputs = ["a", "bbb", "Grüße"] };

        var response = await provider.EmbedAsync(request, "nomic-embed-text:latest", CancellationToken.None);

        var json = fake.Last("/api/embed").Json;
        Assert.Equal(["a", "bbb", "Grüße"], json.GetProperty("input").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(60, json.GetProperty("keep_alive").GetInt32());
        Assert.Equal(3, response.Vectors.Count);
        Assert.Equal([1f, 0f, 0.5f], response.Vectors[0]);
        Assert.Equal([3f, 1f, 0.5f], response.Vectors[1]);
        Assert.Equal([5f, 2f, 0.5f], response.Vectors[2]);
        Assert.Equal(9, response.Usage.PromptTokens);
    }

    [Fact]
    public async Task Health_is_healthy_when_ollama_runs_and_unhealthy_without_throwing_on_a_closed_port()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        using var provider = Provider(fake);
        var health = await provider.CheckHealthAsync(CancellationToken.None);
        Assert.True(health.Healthy, health.Error);
        Assert.Contains(fake.Http.Requests, r => r.Method == "GET" && r.PathAndQuery == "/");

        using var closed = new OllamaProvider(new HttpProviderOptions { Name = "ollama-down", BaseAddress = ClosedPort() });
        var down = await closed.CheckHealthAsync(CancellationToken.None);
        Assert.False(down.Healthy);
        Assert.False(string.IsNullOrEmpty(down.Error));
    }

    [Fact]
    public async Task A_closed_port_is_provider_unavailable()
    {
        using var closed = new OllamaProvider(new HttpProviderOptions { Name = "ollama-down", BaseAddress = ClosedPort() });
        var ex = await Assert.ThrowsAsync<WayangException>(() => closed.ChatAsync(Request(), Model, CancellationToken.None));
        Assert.Equal(ErrorCode.ProviderUnavailable, ex.Code);
    }

    [Fact]
    public void Capabilities_say_a_loopback_ollama_is_local()
    {
        using var local = new OllamaProvider(new HttpProviderOptions { Name = "o", BaseAddress = new Uri("http://127.0.0.1:11434/") });
        using var remote = new OllamaProvider(new HttpProviderOptions { Name = "o", BaseAddress = new Uri("http://gpu1.internal:11434/") });
        Assert.Equal("ollama", local.Kind);
        Assert.True(local.Capabilities.HasFlag(ProviderCapabilities.Local | ProviderCapabilities.Tools | ProviderCapabilities.Embeddings | ProviderCapabilities.Streaming));
        Assert.False(remote.Capabilities.HasFlag(ProviderCapabilities.Local));
    }

    internal static Uri ClosedPort()
    {
        // A port that was free a moment ago and has no listener now: connecting is refused at once.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return new Uri($"http://127.0.0.1:{port}/");
    }
}
