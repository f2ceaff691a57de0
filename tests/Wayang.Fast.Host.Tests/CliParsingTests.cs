using System.Net;
using System.Net.Sockets;

namespace Wayang.Fast.Host.Tests;

public sealed class CliParsingTests
{
    [Fact]
    public async Task Help_lists_the_verbs()
    {
        var (code, run) = await CliRun.ExecAsync(null, "--help");

        Assert.Equal(0, code);
        foreach (var verb in new[] { "serve", "ping", "keys", "tenants" })
            Assert.Contains(verb, run.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Keys_create_help_shows_its_options()
    {
        var (code, run) = await CliRun.ExecAsync(null, "keys", "create", "--help");

        Assert.Equal(0, code);
        Assert.Contains("--tenant", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("--role", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("--server", run.StdOut, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("frobnicate")]
    [InlineData("keys", "create", "--name", "n", "--role", "viewer")]
    [InlineData("keys", "revoke")]
    [InlineData("serve", "--durability", "sometimes")]
    [InlineData("serve", "--log-format", "xml")]
    [InlineData("ping", "--count", "many")]
    public async Task Usage_errors_exit_with_1(params string[] args)
    {
        var (code, _) = await CliRun.ExecAsync(null, args);
        Assert.Equal(1, code);
    }

    [Fact]
    public async Task Client_commands_require_a_key()
    {
        var (code, run) = await CliRun.ExecAsync(null, "ping", "--server", "127.0.0.1:1");

        Assert.Equal(1, code);
        Assert.Contains("WAYANG_API_KEY", run.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_with_a_missing_config_file_exits_with_1()
    {
        using var dir = new TempDirectory();
        var (code, run) = await CliRun.ExecAsync(null, "serve", "--config", Path.Combine(dir.Path, "missing.json"), "--data-dir", dir.Path);

        Assert.Equal(1, code);
        Assert.Contains("does not exist", run.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unreachable_server_exits_with_2_and_prints_the_error_code()
    {
        // A port that was just free: nothing listens there.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var variables = new Dictionary<string, string?> { ["WAYANG_API_KEY"] = "k", ["WAYANG_SERVER"] = "127.0.0.1:" + port };

        var (code, run) = await CliRun.ExecAsync(variables, "ping");

        Assert.Equal(2, code);
        Assert.StartsWith("error NOT_CONNECTED:", run.StdErr, StringComparison.Ordinal);
    }
}
