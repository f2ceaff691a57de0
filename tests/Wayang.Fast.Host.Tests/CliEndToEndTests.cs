using System.Text.RegularExpressions;

namespace Wayang.Fast.Host.Tests;

public sealed partial class CliEndToEndTests
{
    [GeneratedRegex(@"^  (?<key>\S+)$", RegexOptions.Multiline)]
    private static partial Regex BootstrapKeyLine();

    [GeneratedRegex(@"^secret: (?<secret>\S+)$", RegexOptions.Multiline)]
    private static partial Regex SecretLine();

    [GeneratedRegex(@"^key id: (?<id>\S+)$", RegexOptions.Multiline)]
    private static partial Regex KeyIdLine();

    [Fact]
    public async Task Serve_then_ping_tenants_and_keys_through_the_cli()
    {
        using var data = new TempDirectory();
        using var stop = new CancellationTokenSource();
        var serveRun = new CliRun(workingDirectory: data.Path);
        var serving = WayangCli.RunAsync(["serve", "--data-dir", "data", "--port", "0", "--http-port", "-1", "--durability", "relaxed", "--log-level", "warning"],
            serveRun.Environment, stop.Token);

        try
        {
            await Wait.UntilAsync(() => ServeOutput.ListeningLine().IsMatch(serveRun.StdOut) || serving.IsCompleted, what: "serve printed its endpoint");
            Assert.False(serving.IsCompleted, "serve exited early: " + serveRun.StdErr);
            var stdout = serveRun.StdOut;
            var endpoint = ServeOutput.ListeningLine().Match(stdout);
            var server = endpoint.Groups["host"].Value + ":" + endpoint.Groups["port"].Value;
            var adminKey = BootstrapKeyLine().Match(stdout).Groups["key"].Value;
            Assert.False(string.IsNullOrEmpty(adminKey), stdout);
            var keyFile = Path.Combine(data.Path, "data", "bootstrap-admin.key");
            Assert.Contains("stored at " + keyFile, stdout, StringComparison.Ordinal);
            Assert.Contains("durability relaxed", stdout, StringComparison.Ordinal);

            var variables = new Dictionary<string, string?> { ["WAYANG_SERVER"] = server, ["WAYANG_API_KEY"] = adminKey };

            var (code, run) = await CliRun.ExecAsync(variables, "ping", "--count", "3");
            Assert.True(code == 0, run.StdErr);
            Assert.Equal(3, Regex.Matches(run.StdOut, "seq=\\d+ time=").Count);
            Assert.Contains("3 pings: min/avg/max", run.StdOut, StringComparison.Ordinal);

            // --server and --key flags work instead of the environment.
            (code, run) = await CliRun.ExecAsync(null, "ping", "-c", "1", "--server", server, "--key", adminKey);
            Assert.True(code == 0, run.StdErr);

            (code, run) = await CliRun.ExecAsync(variables, "tenants", "create", "acme", "--name", "Acme Corp");
            Assert.True(code == 0, run.StdErr);
            Assert.Contains("created tenant acme (Acme Corp)", run.StdOut, StringComparison.Ordinal);

            (code, run) = await CliRun.ExecAsync(variables, "tenants", "list");
            Assert.True(code == 0, run.StdErr);
            Assert.Contains("acme", run.StdOut, StringComparison.Ordinal);
            Assert.Contains("system", run.StdOut, StringComparison.Ordinal);

            (code, run) = await CliRun.ExecAsync(variables, "keys", "create", "--tenant", "acme", "--name", "ci", "--role", "developer", "--role", "viewer");
            Assert.True(code == 0, run.StdErr);
            var secret = SecretLine().Match(run.StdOut).Groups["secret"].Value;
            var keyId = KeyIdLine().Match(run.StdOut).Groups["id"].Value;
            Assert.False(string.IsNullOrEmpty(secret), run.StdOut);
            Assert.Contains("roles:  developer,viewer", run.StdOut, StringComparison.Ordinal);

            (code, run) = await CliRun.ExecAsync(variables, "keys", "list", "--tenant", "acme");
            Assert.True(code == 0, run.StdErr);
            Assert.Matches($"{Regex.Escape(keyId)}\\s+acme\\s+ci\\s+developer,viewer\\s+\\S+\\s+active", run.StdOut);

            // The new key works for ping.
            (code, run) = await CliRun.ExecAsync(new Dictionary<string, string?> { ["WAYANG_SERVER"] = server, ["WAYANG_API_KEY"] = secret }, "ping", "-c", "1");
            Assert.True(code == 0, run.StdErr);

            (code, run) = await CliRun.ExecAsync(variables, "keys", "revoke", keyId);
            Assert.True(code == 0, run.StdErr);
            Assert.Contains("revoked " + keyId, run.StdOut, StringComparison.Ordinal);

            (code, run) = await CliRun.ExecAsync(variables, "keys", "list", "--tenant", "acme");
            Assert.Matches($"{Regex.Escape(keyId)}.*revoked", run.StdOut);

            // Server errors: exit 2 with `error CODE_NAME: message`.
            (code, run) = await CliRun.ExecAsync(variables, "keys", "revoke", "no-such-key");
            Assert.Equal(2, code);
            Assert.StartsWith("error KEY_NOT_FOUND: ", run.StdErr, StringComparison.Ordinal);

            (code, run) = await CliRun.ExecAsync(new Dictionary<string, string?> { ["WAYANG_SERVER"] = server, ["WAYANG_API_KEY"] = secret }, "ping");
            Assert.Equal(2, code);
            Assert.Matches("^error (KEY_REVOKED|UNAUTHENTICATED): ", run.StdErr);

            (code, run) = await CliRun.ExecAsync(variables, "tenants", "create", "acme");
            Assert.Equal(2, code);
            Assert.StartsWith("error TENANT_EXISTS: ", run.StdErr, StringComparison.Ordinal);
        }
        finally
        {
            await stop.CancelAsync();
        }
        Assert.Equal(0, await serving.WaitAsync(TimeSpan.FromSeconds(60)));
    }

    [Fact]
    public async Task Serve_as_a_child_process_prints_the_key_once_and_stops_gracefully_on_SIGTERM()
    {
        if (OperatingSystem.IsWindows())
            return;
        using var data = new TempDirectory();

        var (first, firstOut) = await RunServeUntilSigtermAsync(data.Path);
        Assert.Equal(0, first);
        Assert.Contains("bootstrap admin key", firstOut, StringComparison.Ordinal);

        // Second start on the same data directory: the key is not shown again.
        var (second, secondOut) = await RunServeUntilSigtermAsync(data.Path);
        Assert.Equal(0, second);
        Assert.Matches(ServeOutput.ListeningLine(), secondOut);
        Assert.DoesNotContain("bootstrap admin key", secondOut, StringComparison.Ordinal);
    }

    private static async Task<(int ExitCode, string StdOut)> RunServeUntilSigtermAsync(string dataDirectory)
    {
        await using var child = await ChildServer.StartAsync(Path.Combine(dataDirectory, "data"), port: 0, "--log-format", "json");
        int code = await child.TerminateAsync();
        return (code, child.StdOut);
    }
}
