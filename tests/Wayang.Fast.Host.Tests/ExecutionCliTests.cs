using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Wayang.Fast.Client;
using Wayang.Fast.Client.Execution;
using Wayang.Fast.Server;

namespace Wayang.Fast.Host.Tests;

public sealed partial class ExecutionCliTests
{
    [GeneratedRegex(@"^run id:\s+(?<id>\S+)$", RegexOptions.Multiline)]
    private static partial Regex RunIdLine();

    [Fact]
    public async Task Help_lists_the_execution_verbs()
    {
        var (code, run) = await CliRun.ExecAsync(null, "--help");

        Assert.Equal(0, code);
        foreach (var verb in new[] { "workflows", "runs", "dlq", "queues", "scheduling" })
            Assert.Contains(verb, run.StdOut, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "workflows", "register" }, new[] { "<file>", "--json", "--server", "--key" })]
    [InlineData(new[] { "workflows", "get" }, new[] { "<id>", "--version" })]
    [InlineData(new[] { "workflows", "list" }, new[] { "--json" })]
    [InlineData(new[] { "runs", "submit" }, new[] { "<workflow>", "--input", "--idempotency-key", "--version", "--json" })]
    [InlineData(new[] { "runs", "get" }, new[] { "<runId>", "--events", "--json" })]
    [InlineData(new[] { "runs", "list" }, new[] { "--status", "--limit", "--json" })]
    [InlineData(new[] { "runs", "cancel" }, new[] { "<runId>", "--reason" })]
    [InlineData(new[] { "runs", "suspend" }, new[] { "<runId>" })]
    [InlineData(new[] { "runs", "resume" }, new[] { "<runId>" })]
    [InlineData(new[] { "runs", "signal" }, new[] { "<runId>", "<name>", "--payload" })]
    [InlineData(new[] { "dlq", "list" }, new[] { "--workflow", "--node", "--error", "--since", "--until", "--limit", "--json" })]
    [InlineData(new[] { "dlq", "show" }, new[] { "<id>", "--json" })]
    [InlineData(new[] { "dlq", "replay" }, new[] { "<id>", "--all", "--rate", "--workflow", "--node", "--error", "--since", "--until" })]
    [InlineData(new[] { "dlq", "discard" }, new[] { "<id>", "--all", "--workflow", "--since" })]
    [InlineData(new[] { "queues" }, new[] { "--all-tenants", "--json" })]
    public async Task Each_command_shows_its_arguments_and_options(string[] command, string[] expected)
    {
        var (code, run) = await CliRun.ExecAsync(null, [.. command, "--help"]);

        Assert.Equal(0, code);
        foreach (var text in expected)
            Assert.Contains(text, run.StdOut, StringComparison.Ordinal);
    }

    // Usage errors are found before any connection is made: no server runs here (port 1 refuses), exit code 1.
    [Theory]
    [InlineData("workflows", "register")]
    [InlineData("workflows", "register", "/no/such/file.json")]
    [InlineData("workflows", "get")]
    [InlineData("workflows", "get", "wf", "--version", "-1")]
    [InlineData("workflows", "get", "wf", "--version", "latest")]
    [InlineData("runs", "submit")]
    [InlineData("runs", "submit", "wf", "--input", "{not json")]
    [InlineData("runs", "submit", "wf", "--input", "@/no/such/input.json")]
    [InlineData("runs", "submit", "wf", "--version", "-2")]
    [InlineData("runs", "get")]
    [InlineData("runs", "list", "--status", "SLEEPING")]
    [InlineData("runs", "list", "--limit", "5000")]
    [InlineData("runs", "cancel")]
    [InlineData("runs", "suspend", "r1", "--reason", "no such option here")]
    [InlineData("runs", "signal", "r1")]
    [InlineData("runs", "signal", "r1", "go", "--payload", "[1,")]
    [InlineData("dlq", "list", "--since", "yesterday")]
    [InlineData("dlq", "list", "--since", "1h", "--until", "2h")]
    [InlineData("dlq", "list", "--limit", "-1")]
    [InlineData("dlq", "show")]
    [InlineData("dlq", "replay")]
    [InlineData("dlq", "replay", "--workflow", "wf")]
    [InlineData("dlq", "replay", "d1", "--all")]
    [InlineData("dlq", "replay", "d1", "--workflow", "wf")]
    [InlineData("dlq", "replay", "--all", "--rate", "-5")]
    [InlineData("dlq", "discard")]
    [InlineData("dlq", "discard", "d1", "--all")]
    [InlineData("queues", "--all-tenants", "yes-please")]
    public async Task Usage_errors_exit_with_1_without_a_server(params string[] args)
    {
        var variables = new Dictionary<string, string?> { ["WAYANG_SERVER"] = "127.0.0.1:1", ["WAYANG_API_KEY"] = "wk_unused" };
        var (code, run) = await CliRun.ExecAsync(variables, args);

        Assert.True(code == 1, $"exit {code}: {run.StdOut}{run.StdErr}");
    }

    [Fact]
    public async Task A_valid_command_without_a_server_is_a_connection_error()
    {
        var variables = new Dictionary<string, string?> { ["WAYANG_SERVER"] = "127.0.0.1:1", ["WAYANG_API_KEY"] = "wk_unused" };
        var (code, run) = await CliRun.ExecAsync(variables, "runs", "list", "--status", "running");

        Assert.Equal(2, code);
        Assert.StartsWith("error ", run.StdErr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("30m", -30 * 60)]
    [InlineData("2h", -2 * 3600)]
    [InlineData("1.5d", -36 * 3600)]
    [InlineData("45s", -45)]
    public void Relative_instants_count_back_from_now(string value, int offsetSeconds)
    {
        var now = new DateTimeOffset(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);
        Assert.Equal(now.AddSeconds(offsetSeconds), WayangCli.ParseInstant("--since", value, now));
    }

    [Fact]
    public void Absolute_instants_are_ISO_8601_and_default_to_UTC()
    {
        var now = DateTimeOffset.UnixEpoch;
        Assert.Equal(new DateTimeOffset(2025, 1, 31, 12, 0, 0, TimeSpan.Zero), WayangCli.ParseInstant("--until", "2025-01-31T12:00:00Z", now));
        Assert.Equal(new DateTimeOffset(2025, 1, 31, 0, 0, 0, TimeSpan.Zero), WayangCli.ParseInstant("--until", "2025-01-31", now));
        Assert.Throws<UsageException>(() => WayangCli.ParseInstant("--until", "soon", now));
        Assert.Throws<UsageException>(() => WayangCli.ParseInstant("--until", "-5m", now));
    }

    [Fact]
    public void Json_arguments_are_inline_or_read_from_a_file()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(Path.Combine(dir.Path, "in.json"), """{ "x": 1 }""");
        var env = new CliRun(workingDirectory: dir.Path).Environment;

        Assert.Null(WayangCli.JsonArgument(env, "--input", null));
        Assert.Equal("[1,2]", WayangCli.JsonArgument(env, "--input", "[1,2]"));
        Assert.Equal("""{"x":1}""", WayangCli.JsonArgument(env, "--input", "@in.json"));
        Assert.Equal("""{"a":[1,2],"b":"c"}""", WayangCli.JsonArgument(env, "--payload", " { \"a\" : [ 1, 2 ],\n  \"b\": \"c\" } "));
        Assert.Throws<UsageException>(() => WayangCli.JsonArgument(env, "--input", "@missing.json"));
        Assert.Throws<UsageException>(() => WayangCli.JsonArgument(env, "--input", "{"));
    }

    [Fact]
    public async Task Scheduling_set_and_list_through_the_cli_are_platform_admin_only()
    {
        using var data = new TempDirectory();
        await using var server = await StartServerAsync(data);
        var endpoint = EndpointOf(server);
        string tenantAdminKey;
        await using (var admin = await WayangClient.ConnectAsync(Options(server, server.BootstrapAdminKey!)))
        {
            await admin.CreateTenantAsync("shop");
            tenantAdminKey = (await admin.CreateKeyAsync("shop", "boss", ["tenant-admin"])).Secret;
        }
        var platform = new Dictionary<string, string?> { ["WAYANG_SERVER"] = endpoint, ["WAYANG_API_KEY"] = server.BootstrapAdminKey };

        var (code, run) = await CliRun.ExecAsync(platform, "scheduling", "set", "shop", "--weight", "3", "--max-concurrent", "8", "--max-submits-per-second", "100");
        Assert.True(code == 0, run.StdErr);
        Assert.Contains("tenant shop: weight 3, max concurrent 8, max queued -, max submits/s 100", run.StdOut, StringComparison.Ordinal);
        (code, run) = await CliRun.ExecAsync(platform, "scheduling", "list");
        Assert.True(code == 0, run.StdErr);
        Assert.Matches(@"shop\s+3\s+8\s+-\s+100", run.StdOut);

        (code, run) = await CliRun.ExecAsync(platform, "scheduling", "set", "shop", "--weight", "0");
        Assert.Equal(WayangCli.ExitUsage, code);

        // A tenant admin cannot raise its own share.
        var own = new Dictionary<string, string?> { ["WAYANG_SERVER"] = endpoint, ["WAYANG_API_KEY"] = tenantAdminKey };
        (code, run) = await CliRun.ExecAsync(own, "scheduling", "set", "shop", "--weight", "1000");
        Assert.NotEqual(0, code);
        Assert.Contains("PERMISSION_DENIED", run.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Register_submit_get_and_the_DLQ_through_the_cli_against_a_real_server()
    {
        using var data = new TempDirectory();
        await using var server = await StartServerAsync(data, Storage.DurabilityMode.Relaxed);
        var endpoint = EndpointOf(server);
        string userKey, executorKey;
        await using (var admin = await WayangClient.ConnectAsync(Options(server, server.BootstrapAdminKey!)))
        {
            await admin.CreateTenantAsync("shop");
            userKey = (await admin.CreateKeyAsync("shop", "ops", ["developer", "operator"])).Secret;
            executorKey = (await admin.CreateKeyAsync("shop", "worker", ["executor"])).Secret;
        }
        var user = new Dictionary<string, string?> { ["WAYANG_SERVER"] = endpoint, ["WAYANG_API_KEY"] = userKey };

        var file = Path.Combine(data.Path, "orders.json");
        await File.WriteAllTextAsync(file, """
            {
              "id": "orders",
              "nodes": [ { "id": "charge", "type": "TASK", "executorType": "payments", "config": { "currency": "EUR" } } ],
              "outputs": { "receipt": { "path": "charge.receipt" } }
            }
            """);
        var (code, run) = await CliRun.ExecAsync(user, "workflows", "register", file);
        Assert.True(code == 0, run.StdErr);
        Assert.Contains("registered workflow orders version 1", run.StdOut, StringComparison.Ordinal);

        (code, run) = await CliRun.ExecAsync(user, "workflows", "list");
        Assert.True(code == 0, run.StdErr);
        Assert.Matches(@"orders\s+1\s+1\s+\S+Z", run.StdOut);
        (code, run) = await CliRun.ExecAsync(user, "workflows", "get", "orders", "--version", "1");
        Assert.True(code == 0, run.StdErr);
        Assert.Contains("\"executorType\": \"payments\"", run.StdOut, StringComparison.Ordinal);

        // An executor that declines every charge: the task goes to the DLQ.
        bool decline = true;
        await using var executorClient = await WayangClient.ConnectAsync(Options(server, executorKey));
        await using var executor = executorClient.StartExecutor(new ExecutorOptions { ExecutorId = "pay-1", Types = ["payments"], Slots = 2 }, (task, _) =>
            ValueTask.FromResult(Volatile.Read(ref decline)
                ? TaskOutcome.Failure("CARD_DECLINED", "insufficient funds", retryable: false)
                : TaskOutcome.Success(new { receipt = "r-" + task.GetInput<JsonElement>().GetProperty("order").GetInt32() })));

        (code, run) = await CliRun.ExecAsync(user, "runs", "submit", "orders", "--input", """{ "order": 17 }""", "--idempotency-key", "order-17");
        Assert.True(code == 0, run.StdErr);
        var runId = RunIdLine().Match(run.StdOut).Groups["id"].Value;
        Assert.False(string.IsNullOrEmpty(runId), run.StdOut);
        Assert.Contains("replayed: no", run.StdOut, StringComparison.Ordinal);
        (code, run) = await CliRun.ExecAsync(user, "runs", "submit", "orders", "--input", """{"order":17}""", "--idempotency-key", "order-17", "--json");
        Assert.True(code == 0, run.StdErr);
        using (var replay = JsonDocument.Parse(run.StdOut))
        {
            Assert.Equal(runId, replay.RootElement.GetProperty("runId").GetString());
            Assert.True(replay.RootElement.GetProperty("replayed").GetBoolean());
        }

        await WaitForStatusAsync(user, runId, "FAILED");
        (code, run) = await CliRun.ExecAsync(user, "runs", "get", runId, "--events");
        Assert.True(code == 0, run.StdErr);
        Assert.Contains("status:    FAILED", run.StdOut, StringComparison.Ordinal);
        Assert.Matches(@"charge\s+FAILED\s+1\s+CARD_DECLINED: insufficient funds", run.StdOut);
        Assert.Contains("NODE_DEAD_LETTERED", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("idempotency key: order-17", run.StdOut, StringComparison.Ordinal);

        (code, run) = await CliRun.ExecAsync(user, "dlq", "list", "--workflow", "orders", "--since", "1h");
        Assert.True(code == 0, run.StdErr);
        Assert.Matches($@"\S+\s+{Regex.Escape(runId)}\s+orders\s+charge\s+1\s+CARD_DECLINED\s+\S+Z", run.StdOut);
        (code, run) = await CliRun.ExecAsync(user, "dlq", "list", "--json", "--error", "CARD_DECLINED");
        Assert.True(code == 0, run.StdErr);
        string deadLetterId;
        using (var list = JsonDocument.Parse(run.StdOut))
            deadLetterId = Assert.Single(list.RootElement.EnumerateArray()).GetProperty("id").GetString()!;

        (code, run) = await CliRun.ExecAsync(user, "dlq", "show", deadLetterId);
        Assert.True(code == 0, run.StdErr);
        Assert.Contains("last error:    CARD_DECLINED: insufficient funds", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("last executor: pay-1", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("\"order\": 17", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("\"currency\": \"EUR\"", run.StdOut, StringComparison.Ordinal);

        (code, run) = await CliRun.ExecAsync(user, "queues");
        Assert.True(code == 0, run.StdErr);
        Assert.Matches(@"pay-1\s+shop\s+payments\s+2\s+", run.StdOut);

        Volatile.Write(ref decline, false);
        (code, run) = await CliRun.ExecAsync(user, "dlq", "replay", deadLetterId, "--rate", "10");
        Assert.True(code == 0, run.StdOut + run.StdErr);
        Assert.Contains($"replayed {deadLetterId} (run {runId})", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("replayed 1 of 1", run.StdOut, StringComparison.Ordinal);
        await WaitForStatusAsync(user, runId, "COMPLETED");

        (code, run) = await CliRun.ExecAsync(user, "runs", "get", runId, "--json");
        Assert.True(code == 0, run.StdErr);
        using (var json = JsonDocument.Parse(run.StdOut))
        {
            Assert.Equal("COMPLETED", json.RootElement.GetProperty("status").GetString());
            Assert.Equal("r-17", json.RootElement.GetProperty("output").GetProperty("receipt").GetString());
        }
        (code, run) = await CliRun.ExecAsync(user, "runs", "list", "--status", "completed");
        Assert.True(code == 0, run.StdErr);
        Assert.Matches($@"{Regex.Escape(runId)}\s+orders\s+1\s+COMPLETED", run.StdOut);
        (code, run) = await CliRun.ExecAsync(user, "dlq", "list");
        Assert.True(code == 0, run.StdErr);
        Assert.DoesNotContain(runId, run.StdOut, StringComparison.Ordinal);

        // Server errors keep the CLI's format: exit 2 and `error CODE_NAME: message`.
        (code, run) = await CliRun.ExecAsync(user, "dlq", "show", deadLetterId);
        Assert.Equal(2, code);
        Assert.StartsWith("error DEAD_LETTER_NOT_FOUND: ", run.StdErr, StringComparison.Ordinal);
        (code, run) = await CliRun.ExecAsync(user, "runs", "submit", "no-such-workflow");
        Assert.Equal(2, code);
        Assert.StartsWith("error WORKFLOW_NOT_FOUND: ", run.StdErr, StringComparison.Ordinal);

        // A run nobody serves yet can be suspended, resumed and cancelled.
        await executor.StopAsync();
        (code, run) = await CliRun.ExecAsync(user, "runs", "submit", "orders", "--input", """{ "order": 18 }""");
        var second = RunIdLine().Match(run.StdOut).Groups["id"].Value;
        (code, run) = await CliRun.ExecAsync(user, "runs", "suspend", second);
        Assert.True(code == 0, run.StdErr);
        Assert.Contains($"{second}: SUSPENDED", run.StdOut, StringComparison.Ordinal);
        (code, run) = await CliRun.ExecAsync(user, "runs", "resume", second);
        Assert.True(code == 0, run.StdErr);
        (code, run) = await CliRun.ExecAsync(user, "runs", "cancel", second, "--reason", "customer left");
        Assert.True(code == 0, run.StdErr);
        Assert.Contains($"{second}: CANCELLED", run.StdOut, StringComparison.Ordinal);
    }

    // Polls `runs get --json` until the run has the status; fails after a generous deadline.
    private static async Task WaitForStatusAsync(Dictionary<string, string?> variables, string runId, string status)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        string? last = null;
        while (DateTime.UtcNow < deadline)
        {
            var (code, run) = await CliRun.ExecAsync(variables, "runs", "get", runId, "--json");
            Assert.True(code == 0, run.StdErr);
            using (var json = JsonDocument.Parse(run.StdOut))
                last = json.RootElement.GetProperty("status").GetString();
            if (last == status)
                return;
            await Task.Delay(20);
        }
        throw new TimeoutException($"run {runId} is {last}, expected {status}");
    }

    private static Task<WayangServer> StartServerAsync(TempDirectory data, Storage.DurabilityMode durability = Storage.DurabilityMode.Fsync) =>
        WayangServer.StartAsync(new WayangServerOptions
        {
            DataDirectory = Path.Combine(data.Path, "data"),
            Port = 0,
            HttpPort = -1,
            PrintBootstrapKey = false,
            Durability = durability,
        });

    private static string EndpointOf(WayangServer server) => "127.0.0.1:" + server.ProtocolEndPoint.Port.ToString(CultureInfo.InvariantCulture);

    private static WayangClientOptions Options(WayangServer server, string key) => new()
    {
        Host = "127.0.0.1",
        Port = server.ProtocolEndPoint.Port,
        ApiKey = key,
        KeepAliveInterval = TimeSpan.Zero,
    };
}
