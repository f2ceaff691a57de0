using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Adapters.Triton;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Providers.Http;

namespace Wayang.Fast.Inference.Tests.Adapters;

public sealed class TritonProviderTests
{
    private const string Model = "ensemble";
    private const string Multilingual = "Grüße, 世界! Ünïcödé ✓ 🦙🚀 done.";

    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);

    private static TritonProvider Provider(FakeTritonServer fake, int defaultMaxTokens = 1024) =>
        new(new HttpProviderOptions { Name = "triton-test", BaseAddress = fake.Address }, defaultMaxTokens);

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
    public async Task Unary_generate_sends_the_rendered_prompt_and_sampling_inputs()
    {
        await using var fake = await FakeTritonServer.StartAsync();
        fake.Reply = "Hello!";
        using var provider = Provider(fake);
        var request = Request();
        request.Temperature = 0.5;
        request.TopP = 0.95;
        request.MaxTokens = 32;
        request.Stop = ["</s>"];
        request.Seed = 7;

        var response = await provider.ChatAsync(request, Model, CancellationToken.None);

        var json = fake.Last("/v2/models/ensemble/generate").Json;
        Assert.Equal("system: Be brief.\nuser: Say hello\nassistant: ", json.GetProperty("text_input").GetString());
        Assert.Equal(32, json.GetProperty("max_tokens").GetInt32());
        Assert.Equal(0.5, json.GetProperty("temperature").GetDouble());
        Assert.Equal(0.95, json.GetProperty("top_p").GetDouble());
        Assert.Equal(["</s>"], json.GetProperty("stop_words").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(7, json.GetProperty("random_seed").GetInt64());
        Assert.False(json.GetProperty("stream").GetBoolean());

        Assert.Equal("triton-test", response.Provider);
        Assert.Equal("Hello!", response.Choices[0].Message.TextContent());
        Assert.Equal(FinishReason.Stop, response.Choices[0].FinishReason);
        Assert.Equal(0, response.Usage.TotalTokens);
    }

    [Fact]
    public async Task Unset_sampling_inputs_are_not_sent_and_max_tokens_takes_the_default()
    {
        await using var fake = await FakeTritonServer.StartAsync();
        using var provider = Provider(fake, defaultMaxTokens: 256);
        await provider.ChatAsync(Request(), Model, CancellationToken.None);
        var json = fake.Last("/v2/models/ensemble/generate").Json;
        Assert.Equal(256, json.GetProperty("max_tokens").GetInt32());
        foreach (var name in new[] { "temperature", "top_p", "stop_words", "random_seed" })
            Assert.False(json.TryGetProperty(name, out _), name);
    }

    [Theory]
    [InlineData(new[] { 1 })]
    [InlineData(new[] { 2 })]
    [InlineData(new[] { 3 })]
    [InlineData(new[] { 2, 1, 3 })]
    public async Task Streamed_events_split_at_any_byte_reassemble_the_exact_text(int[] pieces)
    {
        await using var fake = await FakeTritonServer.StartAsync();
        fake.Reply = Multilingual;
        fake.PieceSizes = pieces;
        using var provider = Provider(fake);

        var deltas = await CollectAsync(provider.StreamChatAsync(Request(), Model, CancellationToken.None));

        Assert.True(fake.Last("/v2/models/ensemble/generate_stream").Json.GetProperty("stream").GetBoolean());
        Assert.Equal(Multilingual, string.Concat(deltas.Select(d => d.Content)));
        Assert.Equal(FakeJson.Pieces(Multilingual, fake.ScalarsPerEvent).Count, deltas.Count - 1);
        Assert.Equal(FinishReason.Stop, deltas[^1].FinishReason);
        Assert.Null(deltas[^1].Usage);
    }

    [Fact]
    public async Task A_slow_stream_still_completes()
    {
        await using var fake = await FakeTritonServer.StartAsync();
        fake.Reply = "slow but steady";
        fake.PieceSizes = [5];
        fake.PieceDelay = TimeSpan.FromMilliseconds(15);
        using var provider = Provider(fake);
        var deltas = await CollectAsync(provider.StreamChatAsync(Request(), Model, CancellationToken.None));
        Assert.Equal("slow but steady", string.Concat(deltas.Select(d => d.Content)));
        Assert.Equal(FinishReason.Stop, deltas[^1].FinishReason);
    }

    [Theory]
    [InlineData(FakeStreamFault.MalformedLine, 0, ErrorCode.ProviderBadResponse)]
    [InlineData(FakeStreamFault.MalformedLine, 2, ErrorCode.StreamBroken)]
    [InlineData(FakeStreamFault.Disconnect, 2, ErrorCode.StreamBroken)]
    [InlineData(FakeStreamFault.ErrorLine, 0, ErrorCode.ProviderUnavailable)]
    [InlineData(FakeStreamFault.ErrorLine, 2, ErrorCode.StreamBroken)]
    public async Task Stream_faults_are_classified_and_after_deltas_are_stream_broken(FakeStreamFault fault, int afterEvents, ErrorCode expected)
    {
        await using var fake = await FakeTritonServer.StartAsync();
        fake.Reply = "one two three four five six";
        fake.Fault = fault;
        fake.FaultAfterEvents = afterEvents;
        fake.PieceSizes = [3];
        fake.FaultGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (afterEvents == 0)
            fake.FaultGate.SetResult();
        using var provider = Provider(fake);
        var received = new List<ChatDelta>();

        var ex = await Assert.ThrowsAsync<WayangException>(async () =>
        {
            await foreach (var d in provider.StreamChatAsync(Request(), Model, CancellationToken.None))
            {
                received.Add(d);
                if (received.Count == afterEvents)
                    fake.FaultGate.TrySetResult();
            }
        });

        Assert.Equal(expected, ex.Code);
        Assert.Equal("triton-test", ex.Error.Details["provider"]);
        Assert.Equal(afterEvents, received.Count);
    }

    [Theory]
    [InlineData(400, "[request id: <id_unknown>] expected 1 inputs but got 0", ErrorCode.InferenceRequestInvalid)]
    [InlineData(400, "Request for unknown model: 'ensemble' is not found", ErrorCode.ModelNotFound)]
    [InlineData(404, "Not Found", ErrorCode.ModelNotFound)]
    [InlineData(400, "Request for unknown model: 'ensemble' is not ready", ErrorCode.ModelNotFound)]
    [InlineData(500, "Encountered an error in forward function", ErrorCode.ProviderUnavailable)]
    [InlineData(503, "Server is not ready", ErrorCode.ProviderUnavailable)]
    [InlineData(429, "Exceeds maximum queue size", ErrorCode.InferenceRateLimited)]
    public async Task Error_statuses_map_to_inference_codes_unary_and_streamed(int status, string error, ErrorCode expected)
    {
        await using var fake = await FakeTritonServer.StartAsync();
        fake.Fail = (status, error, status == 429 ? "2" : null);
        using var provider = Provider(fake);

        var unary = await Assert.ThrowsAsync<WayangException>(() => provider.ChatAsync(Request(), Model, CancellationToken.None));
        var streamed = await Assert.ThrowsAsync<WayangException>(() => CollectAsync(provider.StreamChatAsync(Request(), Model, CancellationToken.None)));

        foreach (var ex in new[] { unary, streamed })
        {
            Assert.Equal(expected, ex.Code);
            Assert.Equal(status.ToString(System.Globalization.CultureInfo.InvariantCulture), ex.Error.Details["status"]);
            Assert.Equal(status == 429 ? 2000 : 0, ex.Error.RetryAfterMs);
        }
    }

    [Fact]
    public async Task An_unknown_model_is_model_not_found()
    {
        await using var fake = await FakeTritonServer.StartAsync();
        using var provider = Provider(fake);
        var ex = await Assert.ThrowsAsync<WayangException>(() => provider.ChatAsync(Request(), "llama-70b", CancellationToken.None));
        Assert.Equal(ErrorCode.ModelNotFound, ex.Code);
        Assert.Contains(fake.Http.Requests, r => r.PathAndQuery == "/v2/models/llama-70b/generate");
    }

    [Fact]
    public async Task Tools_json_mode_and_embeddings_are_refused_without_a_request()
    {
        await using var fake = await FakeTritonServer.StartAsync();
        using var provider = Provider(fake);
        var tools = Request();
        tools.Tools = [new ToolSpec { Name = "lookup" }];
        var json = Request();
        json.ResponseFormat = ResponseFormat.JsonObject;

        Assert.Equal(ErrorCode.InferenceRequestInvalid, (await Assert.ThrowsAsync<WayangException>(() => provider.ChatAsync(tools, Model, CancellationToken.None))).Code);
        Assert.Equal(ErrorCode.InferenceRequestInvalid, (await Assert.ThrowsAsync<WayangException>(() => CollectAsync(provider.StreamChatAsync(tools, Model, CancellationToken.None)))).Code);
        Assert.Equal(ErrorCode.InferenceRequestInvalid, (await Assert.ThrowsAsync<WayangException>(() => provider.ChatAsync(json, Model, CancellationToken.None))).Code);
        var embed = new EmbeddingRequest { Model = Model, Inputs = ["x"] };
        Assert.Equal(ErrorCode.InferenceRequestInvalid, (await Assert.ThrowsAsync<WayangException>(() => provider.EmbedAsync(embed, Model, CancellationToken.None))).Code);
        Assert.Empty(fake.Http.Requests);
        Assert.False(provider.Capabilities.HasFlag(ProviderCapabilities.Tools));
        Assert.False(provider.Capabilities.HasFlag(ProviderCapabilities.Embeddings));
        Assert.False(provider.Capabilities.HasFlag(ProviderCapabilities.JsonMode));
        Assert.Equal("triton", provider.Kind);
    }

    [Fact]
    public async Task Cancelling_mid_stream_aborts_the_request()
    {
        await using var fake = await FakeTritonServer.StartAsync();
        fake.Reply = "first and then nothing";
        fake.Fault = FakeStreamFault.Hold;
        fake.FaultAfterEvents = 1;
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
        await fake.StreamAborted.Task.WaitAsync(Guard);
    }

    [Fact]
    public async Task List_models_reads_the_repository_index_and_ready_models_are_loaded()
    {
        await using var fake = await FakeTritonServer.StartAsync();
        using var provider = Provider(fake);
        var models = await provider.ListModelsAsync(CancellationToken.None);
        Assert.Equal("POST", fake.Last("/v2/repository/index").Method);
        Assert.Equal(["ensemble", "preprocessing", "tensorrt_llm_bls"], models.Select(m => m.Name));
        Assert.Equal([true, true, false], models.Select(m => m.Loaded));
    }

    [Fact]
    public async Task Health_follows_readiness_and_a_closed_port_is_unhealthy_without_throwing()
    {
        await using var fake = await FakeTritonServer.StartAsync();
        using var provider = Provider(fake);
        var ready = await provider.CheckHealthAsync(CancellationToken.None);
        Assert.True(ready.Healthy, ready.Error);
        Assert.Contains(fake.Http.Requests, r => r.Method == "GET" && r.PathAndQuery == "/v2/health/ready");

        fake.Ready = false;
        Assert.False((await provider.CheckHealthAsync(CancellationToken.None)).Healthy);

        using var closed = new TritonProvider(new HttpProviderOptions { Name = "triton-down", BaseAddress = OllamaProviderTests.ClosedPort() });
        var down = await closed.CheckHealthAsync(CancellationToken.None);
        Assert.False(down.Healthy);
        Assert.False(string.IsNullOrEmpty(down.Error));
    }
}
