using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using System.Net.Sockets;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Discovery;

namespace Wayang.Fast.Client.Tests;

// The SDK finding the real server through a resolver instead of Host:Port.
public sealed class DiscoveryClientTests(RealServerFixture fixture) : IClassFixture<RealServerFixture>
{
    // A loopback port nothing listens on: dialing it is refused at once.
    private static ServiceEndpoint DeadMember()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return new ServiceEndpoint("127.0.0.1", port);
    }

    private ServiceEndpoint LiveMember => new("127.0.0.1", fixture.Server.ProtocolEndPoint.Port);

    private WayangClientOptions Options(IServiceResolver resolver, int maxAttempts)
    {
        var options = fixture.Options();
        options.Host = ""; // not used with a resolver
        options.Resolver = resolver;
        options.ServiceName = "wayang";
        options.Reconnect.MaxAttempts = maxAttempts;
        options.Reconnect.BaseDelay = TimeSpan.FromMilliseconds(1);
        options.Reconnect.MaxDelay = TimeSpan.FromMilliseconds(5);
        return options;
    }

    private sealed class CountingResolver(Func<int, IReadOnlyList<ServiceEndpoint>> answer) : IServiceResolver
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public ValueTask<IReadOnlyList<ServiceEndpoint>> ResolveAsync(string serviceName, CancellationToken ct = default) =>
            new(answer(Interlocked.Increment(ref _calls)));
    }

    [Fact]
    public async Task Connects_through_a_static_resolver_whose_first_member_is_dead()
    {
        var resolver = new StaticServiceResolver("wayang", [DeadMember(), LiveMember]);
        // One attempt only: the dead member must cost a failed dial, not the whole attempt.
        await using var client = new WayangClient(Options(resolver, maxAttempts: 1)) { EndpointCursor = 0 };

        await client.ConnectAsync();
        await client.PingAsync();

        Assert.Equal(1, client.ConnectionCount);
        Assert.Equal("system", client.Session!.TenantId);
        Assert.Equal(1, client.EndpointCursor); // it stays on the member that answered
    }

    [Fact]
    public async Task Every_connect_attempt_resolves_again()
    {
        var dead = DeadMember();
        var resolver = new CountingResolver(call => call == 1 ? [dead] : [LiveMember]);
        await using var client = new WayangClient(Options(resolver, maxAttempts: 3));

        await client.ConnectAsync();

        Assert.Equal(2, resolver.Calls);
        await client.PingAsync();
    }

    [Fact]
    public async Task An_unknown_service_is_NOT_FOUND_at_once()
    {
        var resolver = new StaticServiceResolver("other", [LiveMember]);
        await using var client = new WayangClient(Options(resolver, maxAttempts: 3));

        var e = await Assert.ThrowsAsync<WayangException>(() => client.ConnectAsync());

        Assert.Equal(ErrorCode.NotFound, e.Code);
        Assert.Equal(0, client.ConnectionCount);
    }

    [Fact]
    public async Task No_member_answering_is_NOT_CONNECTED_after_the_attempts()
    {
        var resolver = new CountingResolver(_ => [DeadMember(), DeadMember()]);
        await using var client = new WayangClient(Options(resolver, maxAttempts: 2));

        var e = await Assert.ThrowsAsync<WayangException>(() => client.ConnectAsync());

        Assert.Equal(ErrorCode.NotConnected, e.Code);
        Assert.Contains("service 'wayang'", e.Message, StringComparison.Ordinal);
        Assert.Equal(2, resolver.Calls);
    }

    [Fact]
    public async Task An_empty_member_list_is_retried_and_then_NOT_CONNECTED()
    {
        var resolver = new CountingResolver(_ => []);
        await using var client = new WayangClient(Options(resolver, maxAttempts: 2));

        var e = await Assert.ThrowsAsync<WayangException>(() => client.ConnectAsync());

        Assert.Equal(ErrorCode.NotConnected, e.Code);
        Assert.Contains("no healthy member", e.Message, StringComparison.Ordinal);
        Assert.Equal(2, resolver.Calls);
    }

    [Fact]
    public void A_resolver_needs_a_service_name()
    {
        var options = Options(new StaticServiceResolver("wayang", [LiveMember]), maxAttempts: 1);
        options.ServiceName = " ";

        Assert.Throws<ArgumentException>(() => new WayangClient(options));
    }
    [Fact]
    public async Task AddWayangClient_builds_a_static_resolver_from_configuration_and_connects_through_it()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Wayang:Client:ApiKey"] = fixture.AdminKey,
            ["Wayang:Client:KeepAliveInterval"] = "00:00:00",
            ["Wayang:Client:ServiceName"] = "wayang",
            ["Wayang:Client:Discovery:Static:Services:wayang"] = $"{DeadMember()},{LiveMember}",
        }).Build();
        var services = new ServiceCollection();
        services.AddWayangClient(configuration.GetSection(WayangClientOptions.SectionName));
        await using var provider = services.BuildServiceProvider();

        var client = provider.GetRequiredService<WayangClient>();
        Assert.IsType<StaticServiceResolver>(client.Options.Resolver);
        Assert.Same(provider.GetRequiredService<IServiceResolver>(), client.Options.Resolver);
        await client.PingAsync();
        Assert.Equal("system", client.Session!.TenantId);
    }

    [Fact]
    public async Task AddWayangClient_with_consul_and_a_static_list_falls_back_to_the_list_while_consul_is_unreachable()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Wayang:Client:ApiKey"] = fixture.AdminKey,
            ["Wayang:Client:KeepAliveInterval"] = "00:00:00",
            ["Wayang:Client:Discovery:Consul:Address"] = $"http://{DeadMember()}",
            ["Wayang:Client:Discovery:Consul:RequestTimeout"] = "00:00:05",
            ["Wayang:Client:Discovery:Static:Services:wayang"] = LiveMember.ToString(),
        }).Build();
        var services = new ServiceCollection();
        services.AddWayangClient(configuration.GetSection(WayangClientOptions.SectionName));
        await using var provider = services.BuildServiceProvider();

        var client = provider.GetRequiredService<WayangClient>();
        Assert.IsType<ConsulServiceResolver>(client.Options.Resolver);
        await client.PingAsync();
        Assert.Equal(1, client.ConnectionCount);
    }

    [Fact]
    public void A_discovery_section_without_a_resolver_fails_naming_the_section()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Wayang:Client:Discovery:Nothing"] = "x",
        }).Build();
        var services = new ServiceCollection();
        services.AddWayangClient(configuration.GetSection(WayangClientOptions.SectionName));
        using var provider = services.BuildServiceProvider();

        var e = Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<WayangClient>());
        Assert.Contains("Wayang:Client:Discovery", e.Message, StringComparison.Ordinal);
    }
}
