using Microsoft.Extensions.DependencyInjection;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Inference.Routing;
using Wayang.Fast.Inference.Tests.Fakes;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Messages;
using Wayang.Fast.Server;
using Wayang.Fast.Server.Embedded;

namespace Wayang.Fast.Client.Tests;

// One contract, two implementations: the remote WayangClient (a real server over a socket) and the embedded client
// (services.AddWayangInference, the gateway in this process). The same calls must route, fall back, time out and fail
// with the same codes through both.
public abstract class InferenceClientContractTests
{
    protected static readonly List<ModelEntry> Models =
        [new ModelEntry { Id = "small", Aliases = ["default"], Provider = "a" }, new ModelEntry { Id = "big", Provider = "b" }];

    protected static readonly TenantFallbackPolicy Policy = new() { Default = new FallbackPolicy { Chain = [new("big")] } };

    // A client over providers a and b with the models above and Policy as the caller's fallback policy.
    protected abstract Task<(IInferenceClient Client, IAsyncDisposable Owner)> CreateAsync(FakeProvider a, FakeProvider b);

    private static ChatRequestDto Chat(string model = "default", int totalTimeoutMs = 0) => new()
    {
        Model = model,
        Messages = [new ChatMessageDto { Role = (byte)ChatRole.User, Parts = ["hello"] }],
        TotalTimeoutMs = totalTimeoutMs,
    };

    [Fact]
    public async Task Chat_falls_back_along_the_policy_and_says_so()
    {
        var (a, b) = (new FakeProvider("a"), new FakeProvider("b"));
        var (client, owner) = await CreateAsync(a, b);
        await using var _ = owner;
        a.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.InferenceRateLimited, "a");

        var reply = await client.ChatAsync(Chat());

        Assert.Equal(("b", "big", "ok"), (reply.Provider, reply.Model, string.Concat(reply.Choices[0].Message.Parts)));
        Assert.Equal("INFERENCE_RATE_LIMITED", Assert.Single(reply.FallbackPath).ErrorCode);
    }

    [Fact]
    public async Task A_stream_yields_the_deltas_with_the_provider_first()
    {
        var (a, b) = (new FakeProvider("a"), new FakeProvider("b"));
        var (client, owner) = await CreateAsync(a, b);
        await using var _ = owner;

        var deltas = new List<ChatDeltaDto>();
        await foreach (var d in client.StreamChatAsync(Chat()))
            deltas.Add(d);

        Assert.Equal(("a", "ok"), (deltas[0].Provider, string.Concat(deltas.Select(d => d.Content))));
        Assert.Equal((byte)FinishReason.Stop, deltas[^1].FinishReason);
    }

    [Fact]
    public async Task Failures_carry_the_same_codes()
    {
        var (a, b) = (new FakeProvider("a"), new FakeProvider("b"));
        var (client, owner) = await CreateAsync(a, b);
        await using var _ = owner;
        a.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.ContentFiltered, "a");
        b.OnChat = async (_, _, ct) => { await Task.Delay(Timeout.Infinite, ct); return null!; };

        Assert.Equal(ErrorCode.ContentFiltered, (await Assert.ThrowsAsync<WayangException>(async () => await client.ChatAsync(Chat()))).Code);
        Assert.Equal(ErrorCode.ModelNotFound, (await Assert.ThrowsAsync<WayangException>(async () => await client.ChatAsync(Chat("nope")))).Code);
        var timeout = await Assert.ThrowsAsync<WayangException>(async () => await client.ChatAsync(Chat("big", totalTimeoutMs: 150)));
        Assert.Equal((ErrorCode.InferenceTimeout, "total"), (timeout.Code, timeout.Error.Details["timeout"]));
    }

    [Fact]
    public async Task Models_and_providers_are_listed()
    {
        var (a, b) = (new FakeProvider("a"), new FakeProvider("b"));
        var (client, owner) = await CreateAsync(a, b);
        await using var _ = owner;

        Assert.Equal(["big", "small"], (await client.ListModelsAsync()).Select(m => m.Id));
        Assert.Equal(["a", "b"], (await client.ListProvidersAsync()).Select(p => p.Name));
    }
}

public sealed class RemoteInferenceClientTests : InferenceClientContractTests
{
    protected override async Task<(IInferenceClient Client, IAsyncDisposable Owner)> CreateAsync(FakeProvider a, FakeProvider b)
    {
        var data = new TempDirectory();
        var server = await WayangServer.StartAsync(new WayangServerOptions
        {
            DataDirectory = data.Path, Port = 0, HttpPort = -1, PrintBootstrapKey = false, Durability = Storage.DurabilityMode.Relaxed,
            InferenceProviders = [a, b], InferenceModels = Models,
        });
        var client = await WayangClient.ConnectAsync(ExecutionTestSupport.Options(server, server.BootstrapAdminKey!));
        await client.SetFallbackPolicyAsync(FallbackPolicyStore.ToJson(Policy));
        return (client, new Owner(client, server, data));
    }

    private sealed class Owner(WayangClient client, WayangServer server, TempDirectory data) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await client.DisposeAsync();
            await server.DisposeAsync();
            data.Dispose();
        }
    }
}

public sealed class EmbeddedInferenceClientTests : InferenceClientContractTests
{
    protected override Task<(IInferenceClient Client, IAsyncDisposable Owner)> CreateAsync(FakeProvider a, FakeProvider b)
    {
        var services = new ServiceCollection();
        services.AddWayangInference(o =>
        {
            o.Providers = [a, b];
            o.Models = Models;
            o.FallbackPolicy = Policy;
        });
        var provider = services.BuildServiceProvider();
        return Task.FromResult<(IInferenceClient, IAsyncDisposable)>((provider.GetRequiredService<IInferenceClient>(), provider));
    }
}
