using Wayang.Fast.Common.Errors;
using Wayang.Fast.Discovery.Internal;
using Instance = Wayang.Fast.Discovery.Tests.FakeConsulAgent.Instance;

namespace Wayang.Fast.Discovery.Tests;

public sealed class ConsulServiceResolverTests
{
    private const string HealthPath = "/v1/health/service/wayang";

    private static ConsulServiceResolverOptions Options(Uri address, IServiceResolver? fallback = null, string? token = null) => new()
    {
        Address = address,
        Token = token,
        WaitTime = TimeSpan.FromSeconds(5),
        RequestTimeout = TimeSpan.FromSeconds(30),
        MinQueryInterval = TimeSpan.Zero,
        ErrorBackoffBase = TimeSpan.FromMilliseconds(20),
        ErrorBackoffMax = TimeSpan.FromMilliseconds(200),
        Fallback = fallback,
    };

    private static Instance Member(string id, string address = "10.0.0.1", int port = 7420, params string[] tags) =>
        new(id, "wayang", address, port, tags);

    private static StaticServiceResolver StaticFallback() => new("wayang", [new ServiceEndpoint("192.168.7.7", 7420)]);

    private static bool IsHealth(FakeConsulAgent.RecordedRequest r) => r.Path == HealthPath;

    [Fact]
    public async Task Only_passing_instances_come_back_with_service_address_else_node_address()
    {
        await using var consul = await FakeConsulAgent.StartAsync();
        consul.Upsert(new Instance("web-1", "wayang", "10.0.0.1", 7420, ["primary", "v1"], new() { ["zone"] = "a" }));
        consul.Upsert(Member("web-2", address: "", port: 7421)); // no service address: Consul means the node's
        consul.Upsert(Member("web-3") with { Status = "critical" });
        consul.Upsert(new Instance("other-1", "other", "10.0.0.9", 1, []));
        await using var resolver = new ConsulServiceResolver(Options(consul.Address));

        var list = await resolver.ResolveAsync("wayang").Within();

        Assert.Equal(["web-1", "web-2"], list.Select(e => e.Id));
        Assert.Equal(new ServiceEndpoint("10.0.0.1", 7420, "web-1", ["primary", "v1"], new Dictionary<string, string> { ["zone"] = "a" }), list[0]);
        Assert.Equal(FakeConsulAgent.NodeAddress, list[1].Host);
        Assert.Equal(7421, list[1].Port);
        var first = consul.Requests.First(IsHealth);
        Assert.Equal("GET", first.Method);
        Assert.True(first.Query.ContainsKey("passing"));
        Assert.Null(first.IndexParam); // the first read does not block
    }

    [Fact]
    public async Task The_token_goes_in_the_X_Consul_Token_header()
    {
        await using var consul = await FakeConsulAgent.StartAsync(requiredToken: "s3cret-token");
        consul.Upsert(Member("web-1"));
        await using var resolver = new ConsulServiceResolver(Options(consul.Address, token: "s3cret-token"));

        var list = await resolver.ResolveAsync("wayang").Within();

        Assert.Equal("web-1", Assert.Single(list).Id);
        Assert.All(consul.Requests, r => Assert.Equal("s3cret-token", r.Token));
    }

    [Fact]
    public async Task Without_the_token_Consul_refuses_and_with_no_fallback_that_is_UNAVAILABLE()
    {
        await using var consul = await FakeConsulAgent.StartAsync(requiredToken: "s3cret-token");
        consul.Upsert(Member("web-1"));
        await using var resolver = new ConsulServiceResolver(Options(consul.Address));

        var e = await Assert.ThrowsAsync<WayangException>(async () => await resolver.ResolveAsync("wayang").Within());

        Assert.Equal(ErrorCode.Unavailable, e.Code);
        Assert.True(e.Retryable);
        Assert.Contains("403", e.Message, StringComparison.Ordinal);
        Assert.All(consul.Requests, r => Assert.Null(r.Token));
    }

    [Fact]
    public async Task Datacenter_and_tag_are_sent_and_the_tag_filters()
    {
        await using var consul = await FakeConsulAgent.StartAsync();
        consul.Upsert(Member("web-1", tags: "v1"));
        consul.Upsert(Member("web-2", tags: "v2"));
        var options = Options(consul.Address);
        options.Datacenter = "dc2";
        options.Tag = "v1";
        await using var resolver = new ConsulServiceResolver(options);

        var list = await resolver.ResolveAsync("wayang").Within();

        Assert.Equal("web-1", Assert.Single(list).Id);
        var request = consul.Requests.First(IsHealth);
        Assert.Equal("dc2", request.Query["dc"]);
        Assert.Equal("v1", request.Query["tag"]);
    }

    [Fact]
    public async Task A_watch_follows_a_changing_member_list_through_blocking_queries()
    {
        await using var consul = await FakeConsulAgent.StartAsync();
        consul.Upsert(Member("web-1"));
        await using var resolver = new ConsulServiceResolver(Options(consul.Address));
        var watch = resolver.WatchAsync("wayang").GetAsyncEnumerator();
        try
        {
            async Task<List<string>> NextAsync()
            {
                Assert.True(await watch.MoveNextAsync().AsTask().WaitAsync(Eventually.Deadline));
                return [.. watch.Current.Select(e => e.Id ?? "")];
            }

            Assert.Equal(["web-1"], await NextAsync());
            // The loop now blocks on the index it was given; each change below wakes it.
            ulong firstIndex = consul.Index;
            await consul.WaitForRequestAsync(r => IsHealth(r) && r.IndexParam == firstIndex);

            consul.Upsert(Member("web-2", address: "10.0.0.2"));
            Assert.Equal(["web-1", "web-2"], await NextAsync());

            consul.SetStatus("web-1", "critical"); // leaves the ?passing answer
            Assert.Equal(["web-2"], await NextAsync());

            consul.Remove("web-2");
            Assert.Empty(await NextAsync());

            consul.Upsert(Member("web-3"));
            Assert.Equal(["web-3"], await NextAsync());

            // ResolveAsync answers from the watched cache.
            Assert.Equal("web-3", Assert.Single(await resolver.ResolveAsync("wayang").Within()).Id);
        }
        finally
        {
            await watch.DisposeAsync();
        }

        var health = consul.Requests.Where(IsHealth).ToList();
        Assert.Null(health[0].IndexParam);
        Assert.All(health.Skip(1), r =>
        {
            Assert.NotNull(r.IndexParam);
            Assert.Equal("5s", r.Query["wait"]);
        });
    }

    [Fact]
    public async Task Each_blocking_query_carries_the_last_X_Consul_Index()
    {
        await using var consul = await FakeConsulAgent.StartAsync();
        consul.Upsert(Member("web-1"));
        ulong index = consul.Index;
        await using var resolver = new ConsulServiceResolver(Options(consul.Address));

        await resolver.ResolveAsync("wayang").Within();
        await consul.WaitForRequestAsync(r => IsHealth(r) && r.IndexParam == index);
        consul.Upsert(Member("web-2"));
        ulong next = consul.Index;
        await consul.WaitForRequestAsync(r => IsHealth(r) && r.IndexParam == next);

        Assert.Equal(next, resolver.CurrentIndex("wayang"));
        // Every blocking query asked for an index Consul had returned: never a made-up or stale-but-newer one.
        Assert.All(consul.Requests.Where(IsHealth).Skip(1), r => Assert.Contains(r.IndexParam!.Value, new[] { index, next }));
    }

    [Fact]
    public async Task An_index_that_goes_backwards_restarts_with_a_plain_read()
    {
        await using var consul = await FakeConsulAgent.StartAsync();
        consul.Upsert(Member("web-1"));
        ulong before = consul.Index;
        await using var resolver = new ConsulServiceResolver(Options(consul.Address));
        await resolver.ResolveAsync("wayang").Within();
        await consul.WaitForRequestAsync(r => IsHealth(r) && r.IndexParam == before);

        consul.Restore(3, Member("web-9", address: "10.0.0.9")); // a restored snapshot: index 3 < before

        await Eventually.UntilAsync(async () => await resolver.ResolveAsync("wayang"), l => l.Count == 1 && l[0].Id == "web-9", "the restored member");
        await consul.WaitForRequestAsync(r => IsHealth(r) && r.IndexParam == 3);
        var health = consul.Requests.Where(IsHealth).ToList();
        int blockedOnRestored = health.FindIndex(r => r.IndexParam == 3);
        Assert.Null(health[blockedOnRestored - 1].IndexParam); // reset to 0: a plain read, not a block on the old index
        Assert.Equal(before, health[blockedOnRestored - 2].IndexParam);
    }

    [Theory]
    [InlineData(0UL, 7UL, 7UL)]     // first read
    [InlineData(7UL, 7UL, 7UL)]     // wait elapsed, nothing changed
    [InlineData(7UL, 9UL, 9UL)]     // changed
    [InlineData(9UL, 3UL, 0UL)]     // went backwards: reset
    [InlineData(0UL, 0UL, 1UL)]     // a zero index would never block: use 1
    [InlineData(5UL, 0UL, 0UL)]     // backwards to zero: reset first, the next read sanitises
    public void Next_index_follows_Consuls_rules(ulong sent, ulong returned, ulong expected) =>
        Assert.Equal(expected, ConsulServiceResolver.NextIndex(sent, returned));

    [Fact]
    public async Task Unreachable_Consul_falls_back_to_the_static_resolver()
    {
        await using var resolver = new ConsulServiceResolver(Options(FakeConsulAgent.UnreachableAddress(), StaticFallback()));

        var list = await resolver.ResolveAsync("wayang").Within();
        var again = await resolver.ResolveAsync("wayang").Within();

        Assert.Equal("192.168.7.7", Assert.Single(list).Host);
        Assert.Equal(list, again);
        Assert.NotNull(resolver.LastError("wayang"));
    }

    [Fact]
    public async Task Unreachable_Consul_without_fallback_is_UNAVAILABLE()
    {
        await using var resolver = new ConsulServiceResolver(Options(FakeConsulAgent.UnreachableAddress()));

        var e = await Assert.ThrowsAsync<WayangException>(async () => await resolver.ResolveAsync("wayang").Within());

        Assert.Equal(ErrorCode.Unavailable, e.Code);
        Assert.True(e.Retryable);
    }

    [Fact]
    public async Task The_fallback_answers_while_Consul_errors_and_Consul_wins_once_it_recovers()
    {
        await using var consul = await FakeConsulAgent.StartAsync();
        consul.Upsert(Member("web-1"));
        consul.HealthErrorStatus = 500;
        await using var resolver = new ConsulServiceResolver(Options(consul.Address, StaticFallback()));

        Assert.Equal("192.168.7.7", Assert.Single(await resolver.ResolveAsync("wayang").Within()).Host);

        consul.HealthErrorStatus = 0;
        await Eventually.UntilAsync(async () => await resolver.ResolveAsync("wayang"), l => l.Count == 1 && l[0].Id == "web-1", "Consul's answer after recovery");
    }

    [Fact]
    public async Task A_cached_list_outlives_a_Consul_outage()
    {
        var consul = await FakeConsulAgent.StartAsync();
        consul.Upsert(Member("web-1"));
        await using var resolver = new ConsulServiceResolver(Options(consul.Address, StaticFallback()));
        Assert.Equal("web-1", Assert.Single(await resolver.ResolveAsync("wayang").Within()).Id);

        await consul.DisposeAsync();
        await Eventually.UntilAsync(() => resolver.LastError("wayang") is not null, "the watch to notice the outage");

        Assert.Equal("web-1", Assert.Single(await resolver.ResolveAsync("wayang").Within()).Id);
    }

    [Fact]
    public async Task No_passing_instance_is_an_empty_answer_not_a_fallback()
    {
        await using var consul = await FakeConsulAgent.StartAsync();
        consul.Upsert(Member("web-1") with { Status = "critical" });
        await using var resolver = new ConsulServiceResolver(Options(consul.Address, StaticFallback()));

        Assert.Empty(await resolver.ResolveAsync("wayang").Within());
    }

    [Fact]
    public async Task Dispose_ends_watches_and_later_calls_are_refused()
    {
        await using var consul = await FakeConsulAgent.StartAsync();
        consul.Upsert(Member("web-1"));
        var resolver = new ConsulServiceResolver(Options(consul.Address));
        var watch = resolver.WatchAsync("wayang").GetAsyncEnumerator();
        Assert.True(await watch.MoveNextAsync().AsTask().WaitAsync(Eventually.Deadline));

        await resolver.DisposeAsync().AsTask().WaitAsync(Eventually.Deadline);

        Assert.False(await watch.MoveNextAsync().AsTask().WaitAsync(Eventually.Deadline));
        await watch.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await resolver.ResolveAsync("wayang"));
    }

    [Fact]
    public void Entries_that_cannot_be_dialed_are_skipped()
    {
        List<ConsulHealthEntry> entries =
        [
            new() { Node = new() { Address = "10.0.0.1" }, Service = new() { Id = "ok", Port = 7420 } },
            new() { Node = new() { Address = "10.0.0.2" }, Service = new() { Id = "no-port", Port = 0 } },
            new() { Node = new() { Address = "" }, Service = new() { Id = "no-address", Port = 7420 } },
            new() { Node = null, Service = null },
        ];

        var endpoints = ConsulServiceResolver.ToEndpoints(entries);

        Assert.Equal("ok", Assert.Single(endpoints).Id);
    }

    [Fact]
    public void Bad_options_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new ConsulServiceResolver(new ConsulServiceResolverOptions { Address = new Uri("ftp://x") }));
        Assert.Throws<ArgumentException>(() => new ConsulServiceResolver(new ConsulServiceResolverOptions { WaitTime = TimeSpan.FromMinutes(11) }));
        Assert.Throws<ArgumentException>(() => new ConsulServiceResolver(new ConsulServiceResolverOptions { RequestTimeout = TimeSpan.Zero }));
    }

    [Theory]
    [InlineData(5000, "5s")]
    [InlineData(60000, "60s")]
    [InlineData(250, "250ms")]
    [InlineData(1500, "1500ms")]
    public void Durations_go_out_as_Go_durations(int ms, string expected) =>
        Assert.Equal(expected, ConsulDuration.Format(TimeSpan.FromMilliseconds(ms)));
}
