using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Routing;
using Wayang.Fast.Inference.Tests.Fakes;
using static Wayang.Fast.Inference.Tests.Gateway.GatewayHarness;

namespace Wayang.Fast.Inference.Tests.Gateway;

public sealed class RoutingAndFallbackTests
{
    [Fact]
    public async Task An_alias_resolves_to_its_provider_and_remote_name()
    {
        var h = new GatewayHarness();
        var response = await h.Gateway.ChatAsync(Request("default"));
        Assert.Equal(("a", "a-small"), (response.Provider, response.Model));
        Assert.Empty(response.FallbackPath);
        Assert.Equal(["a-small"], h.A.Models);
    }

    [Fact]
    public async Task Provider_slash_model_names_a_providers_model_outside_the_registry()
    {
        var h = new GatewayHarness();
        var response = await h.Gateway.ChatAsync(Request("c/llama3:8b"));
        Assert.Equal(("c", "llama3:8b"), (response.Provider, response.Model));
    }

    [Fact]
    public async Task Unknown_models_and_providers_are_refused_with_their_codes()
    {
        var h = new GatewayHarness();
        var missing = await Assert.ThrowsAsync<WayangException>(() => h.Gateway.ChatAsync(Request("nope")));
        Assert.Equal(ErrorCode.ModelNotFound, missing.Code);
        h.Gateway.Models.Register(new Models.ModelEntry { Id = "orphan", Provider = "gone" });
        var orphan = await Assert.ThrowsAsync<WayangException>(() => h.Gateway.ChatAsync(Request("orphan")));
        Assert.Equal(ErrorCode.ProviderNotFound, orphan.Code);
        Assert.Equal(0, h.A.ChatCalls + h.B.ChatCalls + h.C.ChatCalls);
    }

    [Fact]
    public async Task A_rate_limited_target_falls_back_along_the_tenants_chain_and_the_path_says_why()
    {
        var h = new GatewayHarness();
        await h.SetPolicyAsync(new FallbackPolicy { Chain = [new("big"), new("cheap")] });
        h.A.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.InferenceRateLimited, "a", retryAfterMs: 2000);

        var response = await h.Gateway.ChatAsync(Request());

        Assert.Equal("b", response.Provider);
        var step = Assert.Single(response.FallbackPath);
        Assert.Equal(("a", "a-small", "INFERENCE_RATE_LIMITED"), (step.Provider, step.Model, step.ErrorCode));
        Assert.Equal(0, h.C.ChatCalls);
        Assert.Equal(1, h.Gateway.Metrics.Fallbacks);
    }

    [Fact]
    public async Task Another_tenants_policy_does_not_apply()
    {
        var h = new GatewayHarness();
        await h.SetPolicyAsync(new FallbackPolicy { Chain = [new("big")] }, tenant: "other");
        h.A.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.ProviderUnavailable, "a");

        var ex = await Assert.ThrowsAsync<WayangException>(() => h.Gateway.ChatAsync(Request(tenant: "t1")));

        Assert.Equal(ErrorCode.ProviderUnavailable, ex.Code);
        Assert.Equal(0, h.B.ChatCalls);
    }

    [Fact]
    public async Task A_content_refusal_fails_at_once_by_default()
    {
        var h = new GatewayHarness();
        await h.SetPolicyAsync(new FallbackPolicy { Chain = [new("big")] });
        h.A.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.ContentFiltered, "a");

        var ex = await Assert.ThrowsAsync<WayangException>(() => h.Gateway.ChatAsync(Request()));

        Assert.Equal(ErrorCode.ContentFiltered, ex.Code);
        Assert.Equal(0, h.B.ChatCalls);
    }

    [Fact]
    public async Task A_retry_rule_retries_the_same_target_before_moving_on()
    {
        var h = new GatewayHarness();
        await h.SetPolicyAsync(new FallbackPolicy
        {
            Chain = [new("big")],
            OnError = { ["PROVIDER_UNAVAILABLE"] = new FallbackRule { Action = FallbackAction.Retry, Retries = 2, BackoffMs = 0 } },
        });
        int calls = 0;
        h.A.OnChat = (_, model, _) => ++calls < 3 ? FakeProvider.Fails(ErrorCode.ProviderUnavailable, "a") : Task.FromResult(FakeProvider.Answer(model, "third time"));

        var response = await h.Gateway.ChatAsync(Request());

        Assert.Equal(("a", 3), (response.Provider, h.A.ChatCalls));
        Assert.Equal(2, response.FallbackPath.Count);
        Assert.Equal(0, h.B.ChatCalls);
    }

    [Fact]
    public async Task A_target_rule_sends_a_context_length_failure_to_the_larger_model_first()
    {
        var h = new GatewayHarness();
        await h.SetPolicyAsync(new FallbackPolicy
        {
            Chain = [new("cheap")],
            OnError = { ["CONTEXT_LENGTH_EXCEEDED"] = new FallbackRule { Action = FallbackAction.Target, Target = new("big") } },
        });
        h.A.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.ContextLengthExceeded, "a");

        var response = await h.Gateway.ChatAsync(Request());

        Assert.Equal("b", response.Provider);
        Assert.Equal(0, h.C.ChatCalls);
    }

    [Fact]
    public async Task When_every_target_fails_the_error_lists_each_attempt()
    {
        var h = new GatewayHarness();
        await h.SetPolicyAsync(new FallbackPolicy { Chain = [new("big"), new("cheap"), new("missing-model")] });
        h.A.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.InferenceRateLimited, "a");
        h.B.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.ProviderUnavailable, "b");
        h.C.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.ProviderAuthFailed, "c");

        var ex = await Assert.ThrowsAsync<WayangException>(() => h.Gateway.ChatAsync(Request()));

        Assert.Equal(ErrorCode.AllFallbacksFailed, ex.Code);
        var d = ex.Error.Details;
        Assert.Equal("4", d["attempts"]);
        Assert.Equal(("missing-model", "MODEL_NOT_FOUND"), (d["0.target"], d["0.code"]));
        Assert.Equal(("a/a-small", "INFERENCE_RATE_LIMITED"), (d["1.target"], d["1.code"]));
        Assert.Equal(("b/big", "PROVIDER_UNAVAILABLE"), (d["2.target"], d["2.code"]));
        Assert.Equal(("c/cheap", "PROVIDER_AUTH_FAILED"), (d["3.target"], d["3.code"]));
        Assert.Equal(1, h.Gateway.Metrics.Failed);
    }

    [Fact]
    public async Task A_cost_ceiling_skips_targets_priced_above_it()
    {
        var h = new GatewayHarness();
        // "small" costs 100 USD per million tokens both ways: 1,000 max tokens are 0.1 USD; "big" 0.001 USD.
        await h.SetPolicyAsync(new FallbackPolicy { Chain = [new("big")], MaxCostPerRequest = 0.01 });

        var response = await h.Gateway.ChatAsync(Request(maxTokens: 1000));

        Assert.Equal("b", response.Provider);
        Assert.Equal("COST_CEILING", Assert.Single(response.FallbackPath).ErrorCode);
        Assert.Equal(0, h.A.ChatCalls);
    }

    [Fact]
    public async Task An_agent_override_replaces_the_tenant_default_for_that_agent_only()
    {
        var h = new GatewayHarness();
        await h.SetPolicyAsync(new FallbackPolicy { Chain = [new("big")] }, agents: new() { ["triage"] = new FallbackPolicy { Chain = [new("cheap")] } });
        h.A.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.ProviderUnavailable, "a");

        Assert.Equal("c", (await h.Gateway.ChatAsync(Request(agent: "triage"))).Provider);
        Assert.Equal("b", (await h.Gateway.ChatAsync(Request(agent: "other"))).Provider);
        Assert.Equal("b", (await h.Gateway.ChatAsync(Request())).Provider);
    }

    [Fact]
    public async Task Caller_cancellation_ends_the_request_without_falling_back()
    {
        var h = new GatewayHarness();
        await h.SetPolicyAsync(new FallbackPolicy { Chain = [new("big")] });
        h.A.OnChat = async (_, _, ct) => { await Task.Delay(Timeout.Infinite, ct); return null!; };
        using var cts = new CancellationTokenSource();

        var call = h.Gateway.ChatAsync(Request(), cts.Token);
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        await h.A.Cancelled.Task;
        Assert.Equal(0, h.B.ChatCalls);
    }

    [Fact]
    public async Task Embeddings_route_like_chat()
    {
        var h = new GatewayHarness();
        var response = await h.Gateway.EmbedAsync(new Contracts.EmbeddingRequest { Model = "default", TenantId = "t1", Inputs = ["ab", "abc"] });
        Assert.Equal(("a", "a-small"), (response.Provider, response.Model));
        Assert.Equal([2f, 3f], response.Vectors.Select(v => v[0]));
    }

    [Theory]
    [InlineData(RoutePreference.Auto, "a")]
    [InlineData(RoutePreference.Local, "b")]
    [InlineData(RoutePreference.Cloud, "a")]
    public async Task A_route_preference_puts_local_or_cloud_targets_first(RoutePreference preference, string expected)
    {
        var h = new GatewayHarness();
        h.B.Capabilities |= ProviderCapabilities.Local;
        await h.SetPolicyAsync(new FallbackPolicy { Chain = [new("big")] });
        var request = Request();
        request.Preference = preference;

        Assert.Equal(expected, (await h.Gateway.ChatAsync(request)).Provider);
    }
}
