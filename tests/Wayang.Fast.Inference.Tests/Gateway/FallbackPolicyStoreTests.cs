using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Routing;

namespace Wayang.Fast.Inference.Tests.Gateway;

public sealed class FallbackPolicyStoreTests
{
    [Fact]
    public async Task A_policy_is_stored_durably_and_loads_again()
    {
        var store = new InMemoryStateStore();
        var policies = FallbackPolicyStore.Load(store);
        var policy = FallbackPolicyStore.FromJson("""
            {"default":{"chain":[{"model":"big"},{"model":"llama3","provider":"ollama"}],
                        "onError":{"INFERENCE_RATE_LIMITED":{"action":"RETRY","retries":2,"backoffMs":100},
                                   "CONTEXT_LENGTH_EXCEEDED":{"action":"TARGET","target":{"model":"big"}}},
                        "maxCostPerRequest":0.5},
             "agents":{"triage":{"chain":[{"model":"cheap"}]}}}
            """);
        await policies.SetAsync("t1", policy);

        var reloaded = FallbackPolicyStore.Load(store).Get("t1");

        Assert.Equal(["big", "ollama/llama3"], reloaded.Default.Chain.Select(t => t.ToString()));
        Assert.Equal((FallbackAction.Retry, 2, 100), (reloaded.Default.OnError["INFERENCE_RATE_LIMITED"].Action, reloaded.Default.OnError["INFERENCE_RATE_LIMITED"].Retries, reloaded.Default.OnError["INFERENCE_RATE_LIMITED"].BackoffMs));
        Assert.Equal("big", reloaded.Default.OnError["CONTEXT_LENGTH_EXCEEDED"].Target!.Model);
        Assert.Equal(0.5, reloaded.Default.MaxCostPerRequest);
        Assert.Equal("cheap", reloaded.Agents["triage"].Chain[0].Model);
        Assert.Empty(FallbackPolicyStore.Load(store).Get("t2").Default.Chain);
    }

    [Theory]
    [InlineData("""{"default":{"onError":{"QUEUE_FULL":{"action":"NEXT"}}}}""", "QUEUE_FULL")]
    [InlineData("""{"default":{"onError":{"NOT_A_CODE":{"action":"NEXT"}}}}""", "NOT_A_CODE")]
    [InlineData("""{"default":{"onError":{"PROVIDER_UNAVAILABLE":{"action":"TARGET"}}}}""", "without a target")]
    [InlineData("""{"default":{"onError":{"PROVIDER_UNAVAILABLE":{"action":"RETRY","retries":0}}}}""", "1 to 10")]
    [InlineData("""{"default":{"maxCostPerRequest":-1}}""", "non-negative")]
    [InlineData("""{"default":{"chain":[{"model":""}]}}""", "needs a model")]
    [InlineData("""{"agents":{"bad name!":{}}}""", "not a valid agent name")]
    [InlineData("""{"default":{"chian":[]}}""", "not valid JSON for a fallback policy")]
    [InlineData("""{"default":{"onError":{"PROVIDER_UNAVAILABLE":{"action":"LOUDLY"}}}}""", "not valid JSON for a fallback policy")]
    public async Task An_invalid_policy_is_refused_with_the_first_problem_and_nothing_is_stored(string json, string expected)
    {
        var store = new InMemoryStateStore();
        var policies = FallbackPolicyStore.Load(store);

        var ex = await Assert.ThrowsAsync<WayangException>(async () => await policies.SetAsync("t1", FallbackPolicyStore.FromJson(json)));

        Assert.Equal(ErrorCode.FallbackPolicyInvalid, ex.Code);
        Assert.Contains(expected, ex.Error.Message, StringComparison.Ordinal);
        Assert.Equal(0, store.Writes);
        Assert.False(policies.TryGet("t1", out _));
    }

    [Fact]
    public async Task Deleting_a_policy_returns_the_tenant_to_the_defaults()
    {
        var store = new InMemoryStateStore();
        var policies = FallbackPolicyStore.Load(store);
        await policies.SetAsync("t1", new TenantFallbackPolicy { Default = new FallbackPolicy { Chain = [new("big")] } });

        Assert.True(await policies.DeleteAsync("t1"));
        Assert.False(await policies.DeleteAsync("t1"));
        Assert.Empty(FallbackPolicyStore.Load(store).Get("t1").Default.Chain);
    }
}
