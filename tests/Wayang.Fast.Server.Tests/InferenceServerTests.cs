using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Inference.Tests.Fakes;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Tests;

// The inference opcodes over real sockets, with scripted providers behind the server's gateway: "small" on a,
// "big" on b.
public sealed class InferenceServerTests
{
    private static async Task<(ExecutionHarness Harness, FakeProvider A, FakeProvider B)> StartAsync()
    {
        var a = new FakeProvider("a");
        var b = new FakeProvider("b");
        var h = await ExecutionHarness.StartAsync(o =>
        {
            o.InferenceProviders = [a, b];
            o.InferenceModels = [new ModelEntry { Id = "small", Aliases = ["default"], Provider = "a" }, new ModelEntry { Id = "big", Provider = "b", ContextLength = 128_000 }];
        });
        return (h, a, b);
    }

    private static ChatRequestDto Chat(string model = "small") => new()
    {
        Model = model,
        Messages = [new ChatMessageDto { Role = (byte)ChatRole.User, Parts = ["hello"] }],
    };

    [Fact]
    public async Task Chat_answers_with_the_provider_that_served_and_the_fallback_path()
    {
        var (h, a, _) = await StartAsync();
        await using var _h = h;
        await using var dev = await h.ConnectAsync("developer");
        a.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.InferenceRateLimited, "a");
        await dev.CallAsync<FallbackPolicyDto, FallbackPolicyDto>(Opcode.FallbackPolicySet,
            new FallbackPolicyDto { PolicyJson = """{"default":{"chain":[{"model":"big"}]}}""" });

        var reply = await dev.CallAsync<ChatRequestDto, ChatResponseDto>(Opcode.InferenceChat, Chat());

        Assert.Equal(("b", "big", "ok"), (reply.Provider, reply.Model, reply.Choices[0].Message.Parts[0]));
        Assert.Equal((byte)FinishReason.Stop, reply.Choices[0].FinishReason);
        Assert.Equal("INFERENCE_RATE_LIMITED", Assert.Single(reply.FallbackPath).ErrorCode);

        var metrics = h.Server.Server.Core.RenderMetrics();
        Assert.Contains("wayang_inference_fallbacks_total 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("wayang_inference_model_requests_total{model=\"small\"} 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("wayang_inference_attempt_errors_total{code=\"INFERENCE_RATE_LIMITED\"} 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("wayang_inference_provider_failures_total{provider=\"a\"} 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("wayang_inference_provider_attempts_total{provider=\"b\"} 1\n", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Errors_keep_their_inference_codes_on_the_wire()
    {
        var (h, a, _) = await StartAsync();
        await using var _h = h;
        await using var dev = await h.ConnectAsync("developer");
        a.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.ContextLengthExceeded, "a");

        await dev.ExpectErrorAsync(Opcode.InferenceChat, Chat(), ErrorCode.ContextLengthExceeded);
        await dev.ExpectErrorAsync(Opcode.InferenceChat, Chat("nope"), ErrorCode.ModelNotFound);
        await dev.ExpectErrorAsync(Opcode.InferenceChat, new ChatRequestDto { Model = "small" }, ErrorCode.InvalidArgument);
        await dev.ExpectErrorAsync(Opcode.InferenceChat, new ChatRequestDto { Model = "small", Messages = [new ChatMessageDto { Role = 9, Parts = ["x"] }] }, ErrorCode.InvalidArgument);
        // nil where an array element or field belongs: [model, [nil]] and [model, [[1, nil]]] and a nil Parts array.
        await dev.ExpectErrorAsync(Opcode.InferenceChat, new ChatRequestDto { Model = "small", Messages = [null!] }, ErrorCode.InvalidArgument);
        await dev.ExpectErrorAsync(Opcode.InferenceChat, new ChatRequestDto { Model = "small", Messages = [new ChatMessageDto { Role = 1, Parts = [null!] }] }, ErrorCode.InvalidArgument);
        // nil arrays are empty ones: the request reaches the provider (which answers with its scripted refusal).
        await dev.ExpectErrorAsync(Opcode.InferenceChat, new ChatRequestDto { Model = "small", Messages = [new ChatMessageDto { Role = 1, Parts = null!, ToolCalls = null! }], Tools = null!, Stop = null! }, ErrorCode.ContextLengthExceeded);
        await dev.ExpectErrorAsync(Opcode.InferenceEmbed, new EmbedRequestDto { Model = "small", Inputs = ["a", null!] }, ErrorCode.InvalidArgument);
    }

    [Fact]
    public async Task A_stream_sends_deltas_then_END_and_a_broken_stream_ends_with_its_error()
    {
        var (h, a, _) = await StartAsync();
        await using var _h = h;
        await using var dev = await h.ConnectAsync("developer");

        uint id = dev.NextStream();
        await dev.SendAsync(Opcode.InferenceChatStream, id, Chat("default"));
        var deltas = new List<ChatDeltaDto>();
        ReceivedFrame frame;
        while ((frame = await dev.NextAsync(id, static _ => true)).Type == FrameType.Stream)
            deltas.Add(frame.Decode<ChatDeltaDto>());
        Assert.Equal(FrameType.End, frame.Type);
        Assert.Equal(("a", "ok"), (deltas[0].Provider, string.Concat(deltas.Select(d => d.Content))));
        Assert.True(deltas[^1].HasUsage);

        a.OnStream = (_, _, ct) => FakeProvider.Breaks(1, ErrorCode.StreamBroken, ct);
        id = dev.NextStream();
        await dev.SendAsync(Opcode.InferenceChatStream, id, Chat());
        Assert.Equal(FrameType.Stream, (await dev.NextAsync(id, static _ => true)).Type);
        Assert.Equal(ErrorCode.StreamBroken, (await dev.NextAsync(id, static _ => true)).ErrorCode);
    }

    [Fact]
    public async Task A_slow_reader_holds_the_provider_to_its_stream_credit()
    {
        var (h, a, _) = await StartAsync();
        await using var _h = h;
        // Initial stream credit 4: the server may send four deltas, then must wait for more credit.
        await using var dev = new ProtocolConnection(await h.Server.ConnectAsync(h.Key("developer"), credit: 4));
        var source = Channel.CreateUnbounded<string>();
        for (int i = 0; i < 200; i++)
            source.Writer.TryWrite("t" + i);
        source.Writer.Complete();
        int pulled = 0;
        a.OnStream = (_, _, ct) => FromChannel(source.Reader, () => Interlocked.Increment(ref pulled), ct);

        uint id = dev.NextStream();
        await dev.SendAsync(Opcode.InferenceChatStream, id, Chat());
        for (int i = 0; i < 4; i++)
            Assert.Equal(FrameType.Stream, (await dev.NextAsync(id, static _ => true)).Type);
        // The server takes one delta ahead of its credit, never more: 195 stay with the provider.
        await WaitUntilAsync(() => Volatile.Read(ref pulled) >= 5);
        var barrier = await dev.BarrierAsync();
        Assert.DoesNotContain(barrier, f => f.StreamId == id);
        Assert.Equal(5, Volatile.Read(ref pulled));

        await dev.CreditAsync(id, 1000);
        int received = 4;
        ReceivedFrame frame;
        while ((frame = await dev.NextAsync(id, static _ => true)).Type == FrameType.Stream)
            received++;
        Assert.Equal((FrameType.End, 201), (frame.Type, received));
    }

    [Fact]
    public async Task Fallback_policies_are_per_tenant_audited_and_need_inference_manage()
    {
        var (h, _, _) = await StartAsync();
        await using var _h = h;
        await using var dev = await h.ConnectAsync("developer");
        await using var viewer = await h.ConnectAsync("viewer");

        var stored = await dev.CallAsync<FallbackPolicyDto, FallbackPolicyDto>(Opcode.FallbackPolicySet,
            new FallbackPolicyDto { PolicyJson = """{"default":{"chain":[{"model":"big"}],"maxCostPerRequest":0.25}}""" });
        Assert.True(stored.IsSet);
        Assert.Contains("\"maxCostPerRequest\":0.25", stored.PolicyJson, StringComparison.Ordinal);

        var read = await viewer.CallAsync<FallbackPolicyRequest, FallbackPolicyDto>(Opcode.FallbackPolicyGet, new FallbackPolicyRequest());
        Assert.Equal((ExecutionHarness.Tenant, true, stored.PolicyJson), (read.TenantId, read.IsSet, read.PolicyJson));
        await viewer.ExpectErrorAsync(Opcode.FallbackPolicySet, new FallbackPolicyDto { PolicyJson = "{}" }, ErrorCode.PermissionDenied);
        await dev.ExpectErrorAsync(Opcode.FallbackPolicySet, new FallbackPolicyDto { PolicyJson = """{"default":{"onError":{"NOPE":{}}}}""" }, ErrorCode.FallbackPolicyInvalid);
        await dev.ExpectErrorAsync(Opcode.FallbackPolicyGet, new FallbackPolicyRequest { TenantId = ExecutionHarness.OtherTenant }, ErrorCode.PermissionDenied);

        // Another tenant sees none.
        await using var admin = await h.ConnectAdminAsync();
        var other = await admin.CallAsync<FallbackPolicyRequest, FallbackPolicyDto>(Opcode.FallbackPolicyGet, new FallbackPolicyRequest { TenantId = ExecutionHarness.OtherTenant });
        Assert.False(other.IsSet);

        var deleted = await dev.CallAsync<FallbackPolicyRequest, FallbackPolicyDto>(Opcode.FallbackPolicyDelete, new FallbackPolicyRequest());
        Assert.True(deleted.IsSet);
        Assert.False((await viewer.CallAsync<FallbackPolicyRequest, FallbackPolicyDto>(Opcode.FallbackPolicyGet, new FallbackPolicyRequest())).IsSet);

        var audit = await admin.CallAsync<AuditQueryRequest, AuditQueryResponse>(Opcode.AuditQuery, new AuditQueryRequest { TenantId = ExecutionHarness.Tenant, Limit = 1000 });
        var policyRecords = audit.Records.Where(r => r.Resource == $"fallback-policy:{ExecutionHarness.Tenant}").ToList();
        Assert.Contains(policyRecords, r => r.Operation == nameof(Opcode.FallbackPolicySet) && r.Outcome == 1);
        Assert.Contains(policyRecords, r => r.Operation == nameof(Opcode.FallbackPolicyDelete));
    }

    [Fact]
    public async Task Models_and_providers_are_listed_with_health()
    {
        var (h, _, b) = await StartAsync();
        await using var _h = h;
        await using var viewer = await h.ConnectAsync("viewer");
        b.Health = new Inference.Providers.ProviderHealth(false, TimeSpan.FromMilliseconds(3), "connection refused");

        var models = await viewer.CallAsync<byte[], ModelListResponse>(Opcode.InferenceModelList, []);
        Assert.Equal(["big", "small"], models.Models.Select(m => m.Id));
        var providers = (await viewer.CallAsync<byte[], ProviderListResponse>(Opcode.InferenceProviderList, [])).Providers;
        Assert.Equal([("a", true), ("b", false)], providers.Select(p => (p.Name, p.Healthy)));
        Assert.Equal("connection refused", providers[1].Error);
    }

    [Fact]
    public async Task A_server_without_providers_answers_UNAVAILABLE()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await using var dev = await h.ConnectAsync("developer");
        await dev.ExpectErrorAsync(Opcode.InferenceChat, Chat(), ErrorCode.Unavailable);
    }

    [Fact]
    public async Task An_AGENT_node_calls_the_gateway_with_its_agents_prompt_parameters_and_credential()
    {
        var (h, a, _) = await StartAsync();
        await using var _h = h;
        await using var dev = await h.ConnectAsync("developer");
        ChatRequest? seen = null;
        a.OnChat = (r, model, _) =>
        {
            seen = r;
            return Task.FromResult(FakeProvider.Answer(model, "Rain, briefly."));
        };
        await dev.CallAsync<SecretWriteRequest, SecretVersionDto>(Opcode.SecretPut, new SecretWriteRequest { Path = "providers/a", Value = Encoding.UTF8.GetBytes("sk-tenant-key") });
        await dev.CallAsync<DefinitionRequest, DefinitionVersionDto>(Opcode.DefinitionCreate, new DefinitionRequest
        {
            Kind = 2,
            DefinitionJson = Encoding.UTF8.GetBytes("""
                {"id":"summariser","modelAlias":"default","systemPrompt":"Be brief.","promptTemplate":"Summarise {{topic}} for {{who}}.",
                 "variables":[{"name":"topic","required":true},{"name":"who"}],"parameters":{"temperature":0.2,"maxTokens":64},
                 "credentialRefs":["secret://providers/a"]}
                """),
        });
        await dev.CallAsync<DefinitionTransitionRequest, DefinitionVersionDto>(Opcode.DefinitionTransition,
            new DefinitionTransitionRequest { Kind = 2, Id = "summariser", Version = 1, Target = (byte)Common.Definitions.DefinitionState.Published });
        await dev.CallAsync<WorkflowRegisterRequest, WorkflowRegisterResponse>(Opcode.WorkflowRegister, new WorkflowRegisterRequest
        {
            DefinitionJson = Encoding.UTF8.GetBytes("""{"id":"summarise","nodes":[{"id":"ask","type":"AGENT","agent":"summariser","agentVersion":1}]}"""),
        });

        var submitted = await dev.CallAsync<RunSubmitRequest, RunSubmitResponse>(Opcode.RunSubmit,
            new RunSubmitRequest { WorkflowId = "summarise", InputJson = Encoding.UTF8.GetBytes("""{"topic":"rain"}""") });
        RunDto run;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while ((run = await dev.CallAsync<RunGetRequest, RunDto>(Opcode.RunGet, new RunGetRequest { RunId = submitted.RunId })).Status != (int)Common.Runs.RunStatus.Completed)
        {
            Assert.True(DateTime.UtcNow < deadline, $"run status {run.Status}");
            await Task.Delay(10);
        }

        var output = System.Text.Json.JsonDocument.Parse(run.Nodes.Single().OutputJson).RootElement;
        Assert.Equal(("Rain, briefly.", "a", "STOP"), (output.GetProperty("text").GetString(), output.GetProperty("provider").GetString(), output.GetProperty("finishReason").GetString()));
        Assert.NotNull(seen);
        Assert.Equal(("sk-tenant-key", "summariser", ExecutionHarness.Tenant), (seen.ApiKey, seen.Agent, seen.TenantId));
        Assert.Equal(["Be brief.", "Summarise rain for ."], seen.Messages.Select(m => m.TextContent()));
        Assert.Equal((0.2, 64), (seen.Temperature, seen.MaxTokens));
    }

    [Fact]
    public async Task An_AGENT_node_whose_provider_fails_records_the_inference_code()
    {
        var (h, a, _) = await StartAsync();
        await using var _h = h;
        await using var dev = await h.ConnectAsync("developer");
        a.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.ContentFiltered, "a");
        await dev.CallAsync<DefinitionRequest, DefinitionVersionDto>(Opcode.DefinitionCreate,
            new DefinitionRequest { Kind = 2, DefinitionJson = Encoding.UTF8.GetBytes("""{"id":"helper","model":"small","promptTemplate":"hi"}""") });
        await dev.CallAsync<DefinitionTransitionRequest, DefinitionVersionDto>(Opcode.DefinitionTransition,
            new DefinitionTransitionRequest { Kind = 2, Id = "helper", Version = 1, Target = (byte)Common.Definitions.DefinitionState.Published });
        await dev.CallAsync<WorkflowRegisterRequest, WorkflowRegisterResponse>(Opcode.WorkflowRegister, new WorkflowRegisterRequest
        {
            DefinitionJson = Encoding.UTF8.GetBytes("""{"id":"asks","nodes":[{"id":"ask","type":"AGENT","agent":"helper","agentVersion":1}]}"""),
        });

        var submitted = await dev.CallAsync<RunSubmitRequest, RunSubmitResponse>(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "asks" });
        RunDto run;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while ((run = await dev.CallAsync<RunGetRequest, RunDto>(Opcode.RunGet, new RunGetRequest { RunId = submitted.RunId })).Status != (int)Common.Runs.RunStatus.Failed)
        {
            Assert.True(DateTime.UtcNow < deadline, $"run status {run.Status}");
            await Task.Delay(10);
        }
        Assert.Equal("CONTENT_FILTERED", run.Nodes.Single().ErrorCode);
    }

    [Fact]
    public async Task A_real_llama_cpp_model_warmed_at_start_answers_unary_and_streamed_over_the_protocol()
    {
        using var models = new TempDirectory();
        Inference.Tests.Gguf.TinyGgufWriter.Write(Path.Combine(models.Path, "tiny.gguf"));
        await using var h = await ExecutionHarness.StartAsync(o =>
        {
            o.InferenceProviders = [new Inference.Adapters.LlamaCpp.LlamaCppProvider(new Inference.Adapters.LlamaCpp.LlamaCppOptions { ModelsDirectory = models.Path, ContextLength = 256 })];
            o.InferenceModels = [new ModelEntry { Id = "tiny", Aliases = ["default"], Provider = "llamacpp", Format = "gguf" }];
            o.InferenceWarming.WarmAtStart = ["tiny"];
        });
        Assert.Contains("wayang_inference_loaded_models 1\n", h.Server.Server.Core.RenderMetrics(), StringComparison.Ordinal);
        await using var dev = await h.ConnectAsync("developer");
        var request = new ChatRequestDto { Model = "default", Messages = [new ChatMessageDto { Role = 1, Parts = ["hello world"] }], MaxTokens = 8, Temperature = 0 };

        var reply = await dev.CallAsync<ChatRequestDto, ChatResponseDto>(Opcode.InferenceChat, request);
        Assert.Equal(("llamacpp", "tiny"), (reply.Provider, reply.Model));
        Assert.InRange(reply.CompletionTokens, 1, 8);

        uint id = dev.NextStream();
        await dev.SendAsync(Opcode.InferenceChatStream, id, request);
        var text = new StringBuilder();
        ReceivedFrame frame;
        while ((frame = await dev.NextAsync(id, static _ => true)).Type == FrameType.Stream)
            text.Append(frame.Decode<ChatDeltaDto>().Content);
        Assert.Equal(FrameType.End, frame.Type);
        // Greedy decoding: the stream says what the unary answer said.
        Assert.Equal(string.Concat(reply.Choices[0].Message.Parts), text.ToString());
        Assert.Contains("wayang_inference_cold_starts_total 0\n", h.Server.Server.Core.RenderMetrics(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Our_engine_answers_over_the_protocol_and_its_scheduler_and_kv_cache_show_in_metrics()
    {
        using var models = new TempDirectory();
        Inference.Tests.Gguf.TinyGgufWriter.Write(Path.Combine(models.Path, "tiny.gguf"));
        await using var h = await ExecutionHarness.StartAsync(o =>
        {
            o.InferenceProviders = [new Inference.Adapters.Gollek.GollekProvider(new Inference.Adapters.Gollek.GollekOptions { ModelsDirectory = models.Path, ContextLength = 256, Threads = 1 })];
            o.InferenceModels = [new ModelEntry { Id = "tiny", Provider = "gollek", Format = "gguf" }];
        });
        await using var dev = await h.ConnectAsync("developer");
        var request = new ChatRequestDto { Model = "tiny", Messages = [new ChatMessageDto { Role = 1, Parts = ["hello world"] }], MaxTokens = 6, Temperature = 0 };

        var reply = await dev.CallAsync<ChatRequestDto, ChatResponseDto>(Opcode.InferenceChat, request);

        Assert.Equal(("gollek", "tiny"), (reply.Provider, reply.Model));
        var metrics = h.Server.Server.Core.RenderMetrics();
        const string labels = "{provider=\"gollek\",model=\"tiny\"}";
        // The scheduler counts every sampled token; the reply counts all but an EOS, which greedy decoding of this model
        // and prompt does not reach within six tokens, so the two agree.
        Assert.Contains($"wayang_engine_tokens_generated_total{labels} {reply.CompletionTokens}\n", metrics, StringComparison.Ordinal);
        Assert.Contains($"wayang_engine_running_sequences{labels} 0\n", metrics, StringComparison.Ordinal);
        Assert.Contains($"wayang_engine_kv_blocks_used{labels} 0\n", metrics, StringComparison.Ordinal);
        Assert.Matches(@"wayang_engine_prefix_query_tokens_total\{provider=""gollek"",model=""tiny""\} [1-9]", metrics);
    }

    private static async IAsyncEnumerable<ChatDelta> FromChannel(ChannelReader<string> reader, Action onPull, [EnumeratorCancellation] CancellationToken ct)
    {
        while (await reader.WaitToReadAsync(ct))
        {
            while (reader.TryRead(out var text))
            {
                onPull();
                yield return new ChatDelta { Content = text };
            }
        }
        yield return new ChatDelta { FinishReason = FinishReason.Stop };
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached");
            await Task.Delay(5);
        }
    }
}
