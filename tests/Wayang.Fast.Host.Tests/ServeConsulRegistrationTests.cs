using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Wayang.Fast.Host.Tests;

// `wayang serve` with Wayang:Discovery:Consul:Registration announces itself to the Consul agent (Consul cannot be
// installed here: the agent is an in-test HTTP server following Consul's agent API), heartbeats its TTL check and
// deregisters when it stops; a configured agent that cannot be reached fails the start.
public sealed class ServeConsulRegistrationTests
{
    private sealed class FakeConsulAgent : IAsyncDisposable
    {
        private readonly WebApplication _app;
        public readonly ConcurrentQueue<JsonElement> Registered = new();
        public readonly ConcurrentQueue<string> Passed = new();
        public readonly ConcurrentQueue<string> Deregistered = new();

        private FakeConsulAgent(WebApplication app) => _app = app;

        public string Address => _app.Urls.First();

        public static async Task<FakeConsulAgent> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
            var app = builder.Build();
            var agent = new FakeConsulAgent(app);
            app.MapPut("/v1/agent/service/register", async (HttpContext context) =>
            {
                using var body = await JsonDocument.ParseAsync(context.Request.Body);
                agent.Registered.Enqueue(body.RootElement.Clone());
                return Results.Ok();
            });
            app.MapPut("/v1/agent/check/pass/{id}", (string id) =>
            {
                agent.Passed.Enqueue(id);
                return Results.Ok();
            });
            app.MapPut("/v1/agent/service/deregister/{id}", (string id) =>
            {
                agent.Deregistered.Enqueue(id);
                return Results.Ok();
            });
            await app.StartAsync();
            return agent;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }

    [Fact]
    public async Task Serve_registers_with_a_ttl_check_heartbeats_and_deregisters_on_stop()
    {
        await using var agent = await FakeConsulAgent.StartAsync();
        using var data = new TempDirectory();
        using var stop = new CancellationTokenSource();
        var variables = new Dictionary<string, string?>
        {
            ["WAYANG_Discovery__Consul__Registration__Address"] = agent.Address,
            ["WAYANG_Discovery__Consul__Registration__ServiceName"] = "wayang-test",
            ["WAYANG_Discovery__Consul__Registration__Ttl"] = "00:00:03",
        };
        var run = new CliRun(variables, data.Path);
        var serving = WayangCli.RunAsync(["serve", "--data-dir", "data", "--port", "0", "--http-port", "-1", "--durability", "relaxed", "--log-level", "warning"],
            run.Environment, stop.Token);
        try
        {
            await Wait.UntilAsync(() => !agent.Registered.IsEmpty || serving.IsCompleted, what: "serve registered with the agent");
            Assert.False(serving.IsCompleted, "serve exited early: " + run.StdErr);
            int port = int.Parse(ServeOutput.ListeningLine().Match(run.StdOut).Groups["port"].Value, System.Globalization.CultureInfo.InvariantCulture);

            var registered = Assert.Single(agent.Registered);
            Assert.Equal("wayang-test", registered.GetProperty("Name").GetString());
            Assert.Equal(port, registered.GetProperty("Port").GetInt32());
            Assert.Equal("127.0.0.1", registered.GetProperty("Address").GetString());
            Assert.Equal("3s", registered.GetProperty("Check").GetProperty("TTL").GetString());
            string serviceId = registered.GetProperty("ID").GetString()!;

            // The TTL check is kept passing (every TTL/3) while the server runs.
            await Wait.UntilAsync(() => !agent.Passed.IsEmpty, what: "a TTL heartbeat");
            Assert.Equal("service:" + serviceId, agent.Passed.First());
            Assert.Empty(agent.Deregistered);

            await stop.CancelAsync();
            Assert.Equal(0, await serving.WaitAsync(TimeSpan.FromSeconds(60)));
            Assert.Equal(serviceId, Assert.Single(agent.Deregistered));
        }
        finally
        {
            await stop.CancelAsync();
            await serving.WaitAsync(TimeSpan.FromSeconds(60));
        }
    }

    [Fact]
    public async Task A_configured_agent_that_cannot_be_reached_fails_the_start_with_unavailable()
    {
        using var data = new TempDirectory();
        var variables = new Dictionary<string, string?>
        {
            // A port nobody listens on: the connection is refused at once.
            ["WAYANG_Discovery__Consul__Registration__Address"] = $"http://127.0.0.1:{ChildServer.FreePort()}",
        };
        var run = new CliRun(variables, data.Path);
        int code = await WayangCli.RunAsync(["serve", "--data-dir", "data", "--port", "0", "--http-port", "-1", "--log-level", "warning"],
            run.Environment, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(2, code);
        Assert.Contains("UNAVAILABLE", run.StdErr, StringComparison.Ordinal);
        Assert.Contains("Consul", run.StdErr, StringComparison.Ordinal);
    }
}
