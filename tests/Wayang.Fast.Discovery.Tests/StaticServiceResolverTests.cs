using Microsoft.Extensions.Configuration;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Discovery.Tests;

public sealed class StaticServiceResolverTests
{
    [Fact]
    public async Task Parses_host_port_lists_including_IPv6_and_blanks()
    {
        var resolver = new StaticServiceResolver(new Dictionary<string, string>
        {
            ["wayang"] = "10.0.0.1:7420, wayang-2.internal:7421 ,[::1]:7422",
        });

        var list = await resolver.ResolveAsync("wayang");

        Assert.Equal(["10.0.0.1:7420", "wayang-2.internal:7421", "[::1]:7422"], list.Select(e => e.ToString()));
        Assert.Equal("::1", list[2].Host);
    }

    [Fact]
    public async Task Names_are_case_insensitive_like_configuration_keys()
    {
        var resolver = new StaticServiceResolver(new Dictionary<string, string> { ["Wayang"] = "h:1" });

        Assert.Single(await resolver.ResolveAsync("wayang"));
    }

    [Fact]
    public async Task A_default_port_fills_entries_without_one()
    {
        var resolver = new StaticServiceResolver(new Dictionary<string, string> { ["wayang"] = "a,b:9,[fe80::1],::2" }, defaultPort: 7420);

        var list = await resolver.ResolveAsync("wayang");

        Assert.Equal(["a:7420", "b:9", "[fe80::1]:7420", "[::2]:7420"], list.Select(e => e.ToString()));
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("host")]                // no port
    [InlineData("host:")]
    [InlineData("host:http")]
    [InlineData("host:0")]
    [InlineData("host:65536")]
    [InlineData("host:-1")]
    [InlineData(":7420")]
    [InlineData("bad host:7420")]
    [InlineData("[::1:7420")]
    [InlineData("[::1]7420")]
    [InlineData("a:1,,b:2")]            // an empty entry is a typo, not nothing
    [InlineData("::1")]                 // a bare IPv6 address cannot carry a port
    public void Malformed_lists_fail_at_construction_naming_the_service(string list)
    {
        var e = Assert.Throws<ArgumentException>(() => new StaticServiceResolver(new Dictionary<string, string> { ["wayang"] = list }));

        Assert.Contains("'wayang'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_service_is_NOT_FOUND()
    {
        var resolver = new StaticServiceResolver("wayang", [new ServiceEndpoint("h", 1)]);

        var e = await Assert.ThrowsAsync<WayangException>(async () => await resolver.ResolveAsync("other"));

        Assert.Equal(ErrorCode.NotFound, e.Code);
        Assert.False(e.Retryable);
    }

    [Fact]
    public void An_empty_endpoint_list_is_refused()
    {
        Assert.Throws<ArgumentException>(() => new StaticServiceResolver("wayang", []));
    }

    [Fact]
    public async Task Binds_from_configuration()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Wayang:Discovery:Static:Services:wayang"] = "10.0.0.1:7420,10.0.0.2:7420",
            ["Wayang:Discovery:Static:DefaultPort"] = "7420",
            ["Wayang:Discovery:Consul:Address"] = "http://consul.internal:8500",
            ["Wayang:Discovery:Consul:Token"] = "t",
            ["Wayang:Discovery:Consul:WaitTime"] = "00:00:30",
        }).Build();

        var staticOptions = configuration.GetSection("Wayang:Discovery:Static").Get<StaticServiceResolverOptions>()!;
        var consulOptions = configuration.GetSection("Wayang:Discovery:Consul").Get<ConsulServiceResolverOptions>()!;

        Assert.Equal(2, (await new StaticServiceResolver(staticOptions).ResolveAsync("wayang")).Count);
        Assert.Equal(new Uri("http://consul.internal:8500"), consulOptions.Address);
        Assert.Equal("t", consulOptions.Token);
        Assert.Equal(TimeSpan.FromSeconds(30), consulOptions.WaitTime);
        Assert.Null(consulOptions.Fallback);
    }

    [Fact]
    public async Task Watch_yields_the_fixed_list_once()
    {
        var resolver = new StaticServiceResolver("wayang", [new ServiceEndpoint("h", 1)]);
        using var cts = new CancellationTokenSource();
        var seen = new List<IReadOnlyList<ServiceEndpoint>>();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var list in resolver.WatchAsync("wayang", cts.Token))
            {
                seen.Add(list);
                await cts.CancelAsync();
            }
        });

        Assert.Single(seen);
    }

    [Fact]
    public void Endpoints_compare_by_value_and_print_parseably()
    {
        var a = new ServiceEndpoint("Host", 1, "id", ["t"], new Dictionary<string, string> { ["k"] = "v" });
        var b = new ServiceEndpoint("host", 1, "id", ["t"], new Dictionary<string, string> { ["k"] = "v" });
        var c = new ServiceEndpoint("host", 1, "id", ["u"]);

        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, c);
        Assert.Equal(new ServiceEndpoint("::1", 5), ServiceEndpoint.Parse(new ServiceEndpoint("::1", 5).ToString()));
        Assert.False(ServiceEndpoint.TryParse("nope", null, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ServiceEndpoint("h", 0));
        Assert.Throws<ArgumentException>(() => new ServiceEndpoint("", 1));
    }
}
