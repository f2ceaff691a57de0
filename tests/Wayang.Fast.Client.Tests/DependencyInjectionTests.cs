using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Wayang.Fast.Client.Tests;

public sealed class DependencyInjectionTests
{
    [Fact]
    public async Task Options_bind_from_configuration_section()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Wayang:Client:Host"] = "wayang.internal",
            ["Wayang:Client:Port"] = "9000",
            ["Wayang:Client:ApiKey"] = "wk_abc",
            ["Wayang:Client:ClientName"] = "svc",
            ["Wayang:Client:DefaultTimeout"] = "00:00:05",
            ["Wayang:Client:InitialStreamCredit"] = "128",
            ["Wayang:Client:KeepAliveInterval"] = "00:00:10",
            ["Wayang:Client:Reconnect:MaxAttempts"] = "7",
            ["Wayang:Client:Reconnect:BaseDelay"] = "00:00:00.250",
        }).Build();
        var services = new ServiceCollection();

        services.AddWayangClient(configuration.GetSection(WayangClientOptions.SectionName));
        await using var provider = services.BuildServiceProvider();

        var options = provider.GetRequiredService<IOptions<WayangClientOptions>>().Value;
        Assert.Equal("wayang.internal", options.Host);
        Assert.Equal(9000, options.Port);
        Assert.Equal("wk_abc", options.ApiKey);
        Assert.Equal("svc", options.ClientName);
        Assert.Equal(TimeSpan.FromSeconds(5), options.DefaultTimeout);
        Assert.Equal(128u, options.InitialStreamCredit);
        Assert.Equal(TimeSpan.FromSeconds(10), options.KeepAliveInterval);
        Assert.Equal(7, options.Reconnect.MaxAttempts);
        Assert.Equal(TimeSpan.FromMilliseconds(250), options.Reconnect.BaseDelay);

        var client = provider.GetRequiredService<WayangClient>();
        Assert.Same(client, provider.GetRequiredService<WayangClient>());
        Assert.Same(options, client.Options);
        Assert.False(client.IsConnected);
    }

    [Fact]
    public async Task Delegate_registration_yields_a_client_that_connects_on_first_call()
    {
        await using var server = new FakeServer();
        var services = new ServiceCollection();
        services.AddWayangClient(o =>
        {
            o.Port = server.Port;
            o.ApiKey = "k";
            o.KeepAliveInterval = TimeSpan.Zero;
        });
        await using var provider = services.BuildServiceProvider();

        var client = provider.GetRequiredService<WayangClient>();
        await client.PingAsync();

        Assert.Equal(1, server.Accepted);
        Assert.Equal("k", server.Session(1).Hello!.ApiKey);
    }
}
