using Microsoft.Extensions.Time.Testing;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Gateway;
using Wayang.Fast.Inference.Routing;
using Wayang.Fast.Inference.Tests.Fakes;
using static Wayang.Fast.Inference.Tests.Gateway.GatewayHarness;

namespace Wayang.Fast.Inference.Tests.Gateway;

public sealed class StreamsTimeoutsAndBreakerTests
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(150);

    [Fact]
    public async Task A_stream_names_its_provider_on_the_first_delta_and_ends_with_the_finish()
    {
        var h = new GatewayHarness();
        var deltas = await CollectAsync(h.Gateway.StreamChatAsync(Request("default")));
        Assert.Equal(("a", "a-small"), (deltas[0].Provider, deltas[0].Model));
        Assert.Equal("ok", string.Concat(deltas.Select(d => d.Content)));
        Assert.Equal(FinishReason.Stop, deltas[^1].FinishReason);
    }

    [Fact]
    public async Task A_stream_falls_back_while_it_has_no_delta_yet()
    {
        var h = new GatewayHarness();
        await h.SetPolicyAsync(new FallbackPolicy { Chain = [new("big")] });
        h.A.OnStream = (_, _, ct) => FakeProvider.Breaks(0, ErrorCode.ProviderUnavailable, ct);

        var deltas = await CollectAsync(h.Gateway.StreamChatAsync(Request()));

        Assert.Equal("b", deltas[0].Provider);
        Assert.Equal("ok", string.Concat(deltas.Select(d => d.Content)));
    }

    [Fact]
    public async Task A_stream_that_breaks_after_its_first_delta_ends_with_the_error_and_no_fallback()
    {
        var h = new GatewayHarness();
        await h.SetPolicyAsync(new FallbackPolicy { Chain = [new("big")] });
        h.A.OnStream = (_, _, ct) => FakeProvider.Breaks(2, ErrorCode.StreamBroken, ct);
        var seen = new List<ChatDelta>();

        var ex = await Assert.ThrowsAsync<WayangException>(async () =>
        {
            await foreach (var d in h.Gateway.StreamChatAsync(Request()))
                seen.Add(d);
        });

        Assert.Equal(ErrorCode.StreamBroken, ex.Code);
        Assert.Equal(["t0", "t1"], seen.Select(d => d.Content));
        Assert.Equal(0, h.B.StreamCalls);
    }

    [Fact]
    public async Task No_first_token_in_time_is_a_first_token_timeout_that_cancels_the_provider_and_falls_back()
    {
        var h = new GatewayHarness();
        await h.SetPolicyAsync(new FallbackPolicy { Chain = [new("big")] });
        h.A.OnStream = (_, _, ct) => FakeProvider.Stalls(0, ct);

        var deltas = await CollectAsync(h.Gateway.StreamChatAsync(Request(timeouts: new InferenceTimeouts(FirstToken: Short))));

        await h.A.Cancelled.Task;
        Assert.Equal("b", deltas[0].Provider);
        Assert.Equal("INFERENCE_TIMEOUT", h.Gateway.Metrics.ErrorsByCode.Keys.Single());
    }

    [Fact]
    public async Task A_stall_between_tokens_is_a_between_tokens_timeout()
    {
        var h = new GatewayHarness();
        h.A.OnStream = (_, _, ct) => FakeProvider.Stalls(1, ct);

        var ex = await Assert.ThrowsAsync<WayangException>(() => CollectAsync(h.Gateway.StreamChatAsync(Request(timeouts: new InferenceTimeouts(BetweenTokens: Short)))));

        Assert.Equal((ErrorCode.InferenceTimeout, "between_tokens"), (ex.Code, ex.Error.Details["timeout"]));
        await h.A.Cancelled.Task;
    }

    [Fact]
    public async Task The_total_timeout_covers_the_whole_request_and_stops_the_fallback_chain()
    {
        var h = new GatewayHarness();
        await h.SetPolicyAsync(new FallbackPolicy { Chain = [new("big")] });
        h.A.OnChat = async (_, _, ct) => { await Task.Delay(Timeout.Infinite, ct); return null!; };

        var ex = await Assert.ThrowsAsync<WayangException>(() => h.Gateway.ChatAsync(Request(timeouts: new InferenceTimeouts(Total: Short))));

        Assert.Equal((ErrorCode.InferenceTimeout, "total"), (ex.Code, ex.Error.Details["timeout"]));
        await h.A.Cancelled.Task;
        Assert.Equal(0, h.B.ChatCalls);
    }

    [Fact]
    public async Task The_total_timeout_ends_a_stream_that_keeps_trickling()
    {
        var h = new GatewayHarness();
        h.A.OnStream = (_, _, ct) => Trickle(ct);

        var ex = await Assert.ThrowsAsync<WayangException>(() => CollectAsync(h.Gateway.StreamChatAsync(Request(timeouts: new InferenceTimeouts(Total: Short)))));

        Assert.Equal((ErrorCode.InferenceTimeout, "total"), (ex.Code, ex.Error.Details["timeout"]));

        static async IAsyncEnumerable<ChatDelta> Trickle([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
        {
            while (true)
            {
                await Task.Delay(10, ct);
                yield return new ChatDelta { Content = "." };
            }
        }
    }

    [Fact]
    public async Task A_failing_target_is_cooled_down_then_probed_and_closed_again()
    {
        var time = new FakeTimeProvider();
        var h = new GatewayHarness(new InferenceGatewayOptions { CircuitBreaker = new CircuitBreakerOptions { FailureThreshold = 2, OpenDuration = TimeSpan.FromSeconds(30) } }, time);
        await h.SetPolicyAsync(new FallbackPolicy { Chain = [new("big")] });
        bool down = true;
        h.A.OnChat = (_, model, _) => down ? FakeProvider.Fails(ErrorCode.ProviderUnavailable, "a") : Task.FromResult(FakeProvider.Answer(model, "back"));

        await h.Gateway.ChatAsync(Request());
        await h.Gateway.ChatAsync(Request());
        Assert.Equal(BreakerState.Open, h.Gateway.Breaker("a", "a-small")!.State);

        // Open: the target is skipped without a call.
        var skipped = await h.Gateway.ChatAsync(Request());
        Assert.Equal(("b", 2), (skipped.Provider, h.A.ChatCalls));
        Assert.Contains("cooled down", skipped.FallbackPath[0].Message, StringComparison.Ordinal);
        var health = (await h.Gateway.ListProvidersAsync()).Single(p => p.Name == "a");
        Assert.Equal(BreakerState.Open, Assert.Single(health.Breakers).State);

        // After the open period one probe goes through; it succeeds and closes the breaker.
        down = false;
        time.Advance(TimeSpan.FromSeconds(31));
        var probe = await h.Gateway.ChatAsync(Request());
        Assert.Equal(("a", 3), (probe.Provider, h.A.ChatCalls));
        Assert.Equal(BreakerState.Closed, h.Gateway.Breaker("a", "a-small")!.State);
    }

    [Fact]
    public async Task A_failed_probe_opens_the_breaker_again()
    {
        var time = new FakeTimeProvider();
        var h = new GatewayHarness(new InferenceGatewayOptions { CircuitBreaker = new CircuitBreakerOptions { FailureThreshold = 1, OpenDuration = TimeSpan.FromSeconds(10) } }, time);
        h.A.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.InferenceTimeout, "a");

        await Assert.ThrowsAsync<WayangException>(() => h.Gateway.ChatAsync(Request()));
        time.Advance(TimeSpan.FromSeconds(11));
        await Assert.ThrowsAsync<WayangException>(() => h.Gateway.ChatAsync(Request()));
        var snapshot = h.Gateway.Breaker("a", "a-small")!;

        Assert.Equal((BreakerState.Open, 2L), (snapshot.State, snapshot.Opened));
        Assert.Equal(2, h.A.ChatCalls);
    }

    [Fact]
    public async Task Errors_about_the_request_do_not_open_the_breaker()
    {
        var h = new GatewayHarness(new InferenceGatewayOptions { CircuitBreaker = new CircuitBreakerOptions { FailureThreshold = 1 } });
        h.A.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.ContextLengthExceeded, "a");

        for (int i = 0; i < 3; i++)
            await Assert.ThrowsAsync<WayangException>(() => h.Gateway.ChatAsync(Request()));

        Assert.Equal(BreakerState.Closed, h.Gateway.Breaker("a", "a-small")!.State);
        Assert.Equal(3, h.A.ChatCalls);
    }
}
