using System.Text.Json;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Discovery.Tests;

public sealed class ConsulServiceRegistrationTests
{
    private static ConsulRegistrationOptions Options(Uri address, string? token = null) => new()
    {
        Address = address,
        Token = token,
        ServiceName = "wayang",
        ServiceId = "wayang-a",
        ServiceAddress = "10.0.0.5",
        ServicePort = 7420,
        Tags = ["primary"],
        Meta = new() { ["version"] = "0.1.0" },
        Ttl = TimeSpan.FromSeconds(30),
        // Frequent heartbeats so the test sees several without waiting long; the TTL itself never expires here.
        HeartbeatInterval = TimeSpan.FromMilliseconds(50),
    };

    [Fact]
    public async Task Registers_with_a_TTL_check_heartbeats_and_deregisters_on_dispose()
    {
        await using var consul = await FakeConsulAgent.StartAsync(requiredToken: "agent-token");
        var registration = await ConsulServiceRegistration.RegisterAsync(Options(consul.Address, "agent-token")).Within();

        var register = consul.Requests.Single(r => r.Path == "/v1/agent/service/register");
        Assert.Equal("PUT", register.Method);
        using (var body = JsonDocument.Parse(register.Body))
        {
            var root = body.RootElement;
            Assert.Equal("wayang-a", root.GetProperty("ID").GetString());
            Assert.Equal("wayang", root.GetProperty("Name").GetString());
            Assert.Equal("10.0.0.5", root.GetProperty("Address").GetString());
            Assert.Equal(7420, root.GetProperty("Port").GetInt32());
            Assert.Equal("primary", root.GetProperty("Tags")[0].GetString());
            Assert.Equal("0.1.0", root.GetProperty("Meta").GetProperty("version").GetString());
            var check = root.GetProperty("Check");
            Assert.Equal("service:wayang-a", check.GetProperty("CheckID").GetString());
            Assert.Equal("30s", check.GetProperty("TTL").GetString());
            Assert.Equal("60s", check.GetProperty("DeregisterCriticalServiceAfter").GetString());
        }
        Assert.Equal("service:wayang-a", registration.CheckId);

        // Heartbeats: PUT /v1/agent/check/pass/service:<id>, repeatedly.
        await Eventually.UntilAsync(
            () => consul.Requests.Count(r => r is { Method: "PUT", Path: "/v1/agent/check/pass/service:wayang-a" }) >= 3, "three heartbeats");
        Assert.True(registration.HeartbeatsSent >= 1);

        // Clients find it as a passing instance.
        await using (var resolver = new ConsulServiceResolver(new ConsulServiceResolverOptions { Address = consul.Address, Token = "agent-token" }))
        {
            var found = Assert.Single(await resolver.ResolveAsync("wayang").Within());
            Assert.Equal(new ServiceEndpoint("10.0.0.5", 7420), new ServiceEndpoint(found.Host, found.Port));
        }

        await registration.DisposeAsync().AsTask().WaitAsync(Eventually.Deadline);

        Assert.Contains(consul.Requests, r => r is { Method: "PUT", Path: "/v1/agent/service/deregister/wayang-a" });
        Assert.False(consul.Has("wayang-a"));
        Assert.All(consul.Requests, r => Assert.Equal("agent-token", r.Token));
    }

    [Fact]
    public async Task An_agent_that_lost_the_registration_gets_it_again()
    {
        await using var consul = await FakeConsulAgent.StartAsync();
        await using var registration = await ConsulServiceRegistration.RegisterAsync(Options(consul.Address)).Within();
        await Eventually.UntilAsync(() => registration.HeartbeatsSent >= 1, "a heartbeat");

        consul.Forget("wayang-a"); // an agent restart drops API registrations

        await Eventually.UntilAsync(() => consul.Has("wayang-a") && registration.Registrations >= 2, "the registration to be sent again");
        Assert.Equal(2, consul.Requests.Count(r => r.Path == "/v1/agent/service/register"));
        Assert.Contains(consul.Requests, r => r.Path == "/v1/agent/check/pass/service:wayang-a");
    }

    [Fact]
    public async Task An_unreachable_agent_fails_registration_with_UNAVAILABLE()
    {
        var e = await Assert.ThrowsAsync<WayangException>(() => ConsulServiceRegistration.RegisterAsync(Options(FakeConsulAgent.UnreachableAddress())).WaitAsync(Eventually.Deadline));

        Assert.Equal(ErrorCode.Unavailable, e.Code);
    }

    [Fact]
    public async Task Dispose_does_not_fail_when_the_agent_is_gone()
    {
        var consul = await FakeConsulAgent.StartAsync();
        var registration = await ConsulServiceRegistration.RegisterAsync(Options(consul.Address)).Within();
        await consul.DisposeAsync();

        await registration.DisposeAsync().AsTask().WaitAsync(Eventually.Deadline); // best effort: Consul's DeregisterCriticalServiceAfter cleans up
    }

    [Fact]
    public async Task Explicit_deregistration_reports_a_refusal()
    {
        await using var consul = await FakeConsulAgent.StartAsync();
        var options = Options(consul.Address);
        options.HeartbeatInterval = TimeSpan.FromSeconds(20); // no heartbeat may re-register it during the test
        await using var registration = await ConsulServiceRegistration.RegisterAsync(options).Within();
        consul.Forget("wayang-a");

        var e = await Assert.ThrowsAsync<WayangException>(() => registration.DeregisterAsync().WaitAsync(Eventually.Deadline));

        Assert.Equal(ErrorCode.Unavailable, e.Code);
        Assert.Contains("404", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_default_id_names_the_service_host_and_port_and_the_interval_is_a_third_of_the_TTL()
    {
        await using var consul = await FakeConsulAgent.StartAsync();
        var options = Options(consul.Address);
        options.ServiceId = null;
        options.HeartbeatInterval = null;
        options.Ttl = TimeSpan.FromSeconds(15);
        await using var registration = await ConsulServiceRegistration.RegisterAsync(options).Within();

        Assert.Equal("wayang-10.0.0.5-7420", registration.ServiceId);
        Assert.Equal(TimeSpan.FromSeconds(5), registration.HeartbeatInterval);
    }

    [Fact]
    public async Task Bad_options_are_refused()
    {
        var address = FakeConsulAgent.UnreachableAddress();
        var noPort = Options(address);
        noPort.ServicePort = 0;
        var slowBeat = Options(address);
        slowBeat.HeartbeatInterval = TimeSpan.FromSeconds(31);
        var badHost = Options(address);
        badHost.ServiceAddress = "not a host";

        await Assert.ThrowsAsync<ArgumentException>(() => ConsulServiceRegistration.RegisterAsync(noPort));
        await Assert.ThrowsAsync<ArgumentException>(() => ConsulServiceRegistration.RegisterAsync(slowBeat));
        await Assert.ThrowsAsync<ArgumentException>(() => ConsulServiceRegistration.RegisterAsync(badHost));
    }
}
