using Microsoft.Extensions.Time.Testing;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Gateway;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Inference.Routing;
using Wayang.Fast.Inference.Tests.Fakes;

namespace Wayang.Fast.Inference.Tests.Gateway;

// Three fake providers (a, b, c) and models: "small" (alias "default") on a as "a-small", "big" on b (a large context),
// "cheap" on c; tenant policies in an in-memory store.
internal sealed class GatewayHarness
{
    public FakeProvider A { get; } = new("a");
    public FakeProvider B { get; } = new("b");
    public FakeProvider C { get; } = new("c");
    public FakeTimeProvider? Time { get; }
    public InMemoryStateStore Store { get; } = new();
    public FallbackPolicyStore Policies { get; }
    public InferenceGateway Gateway { get; }

    public GatewayHarness(InferenceGatewayOptions? options = null, FakeTimeProvider? time = null)
    {
        Time = time;
        var models = new ModelRegistry();
        models.Register(new ModelEntry { Id = "small", Aliases = ["default"], Provider = "a", RemoteName = "a-small", ContextLength = 4096, InputCostPerMillion = 100, OutputCostPerMillion = 100 });
        models.Register(new ModelEntry { Id = "big", Provider = "b", ContextLength = 128_000, InputCostPerMillion = 1, OutputCostPerMillion = 1 });
        models.Register(new ModelEntry { Id = "cheap", Provider = "c", ContextLength = 8192 });
        Policies = FallbackPolicyStore.Load(Store);
        Gateway = new InferenceGateway([A, B, C], models, Policies, options, time);
    }

    public Task SetPolicyAsync(FallbackPolicy policy, string tenant = "t1", Dictionary<string, FallbackPolicy>? agents = null) =>
        Policies.SetAsync(tenant, new TenantFallbackPolicy { Default = policy, Agents = agents ?? [] }).AsTask();

    public static ChatRequest Request(string model = "small", string tenant = "t1", InferenceTimeouts? timeouts = null, string? agent = null, int? maxTokens = null) => new()
    {
        Model = model,
        TenantId = tenant,
        Messages = [ChatMessage.Text(ChatRole.User, "hello")],
        Timeouts = timeouts,
        Agent = agent,
        MaxTokens = maxTokens,
    };

    public static async Task<List<ChatDelta>> CollectAsync(IAsyncEnumerable<ChatDelta> stream, CancellationToken ct = default)
    {
        var list = new List<ChatDelta>();
        await foreach (var d in stream.WithCancellation(ct))
            list.Add(d);
        return list;
    }
}
