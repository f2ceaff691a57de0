using Wayang.Fast.Common.Audit;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Host.Tests;

// The control-plane commands' parsing: no server is involved (port 1 refuses, so anything that connects fails with 2).
public sealed class ControlCliParsingTests
{
    private static readonly Dictionary<string, string?> NoServer = new() { ["WAYANG_SERVER"] = "127.0.0.1:1", ["WAYANG_API_KEY"] = "wk_unused" };

    [Fact]
    public async Task Help_lists_the_control_verbs()
    {
        var (code, run) = await CliRun.ExecAsync(null, "--help");

        Assert.Equal(0, code);
        foreach (var verb in new[] { "defs", "roles", "bindings", "audit" })
            Assert.Contains(verb, run.StdOut, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "defs", "validate" }, new[] { "<file>", "--kind", "--server", "--key" })]
    [InlineData(new[] { "defs", "create" }, new[] { "<file>", "--kind", "--json" })]
    [InlineData(new[] { "defs", "transition" }, new[] { "<id>", "--version", "--to", "--kind" })]
    [InlineData(new[] { "defs", "publish" }, new[] { "<id>", "--version", "--kind" })]
    [InlineData(new[] { "defs", "archive" }, new[] { "<id>", "--version", "--kind" })]
    [InlineData(new[] { "defs", "list" }, new[] { "--kind", "--json" })]
    [InlineData(new[] { "defs", "show" }, new[] { "<id>", "--version", "--kind", "--json" })]
    [InlineData(new[] { "roles", "list" }, new[] { "--tenant", "--json" })]
    [InlineData(new[] { "roles", "put" }, new[] { "<name>", "--permission", "--tenant" })]
    [InlineData(new[] { "roles", "delete" }, new[] { "<name>", "--tenant" })]
    [InlineData(new[] { "bindings", "list" }, new[] { "--tenant", "--json" })]
    [InlineData(new[] { "bindings", "grant" }, new[] { "<keyId>", "<role>" })]
    [InlineData(new[] { "bindings", "revoke" }, new[] { "<keyId>", "<role>" })]
    [InlineData(new[] { "audit", "query" }, new[] { "--tenant", "--principal", "--opcode", "--outcome", "--since", "--from", "--until", "--after", "--limit", "--all", "--json" })]
    [InlineData(new[] { "audit", "verify" }, new[] { "--server" })]
    [InlineData(new[] { "audit", "head" }, new[] { "--server" })]
    public async Task Each_command_shows_its_arguments_and_options(string[] command, string[] expected)
    {
        var (code, run) = await CliRun.ExecAsync(null, [.. command, "--help"]);

        Assert.Equal(0, code);
        foreach (var text in expected)
            Assert.Contains(text, run.StdOut, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("defs", "validate")]
    [InlineData("defs", "validate", "/no/such/file.json")]
    [InlineData("defs", "validate", "f.json", "--kind", "pipeline")]
    [InlineData("defs", "create")]
    [InlineData("defs", "transition", "orders", "--version", "1")]
    [InlineData("defs", "transition", "orders", "--version", "1", "--to", "deployed")]
    [InlineData("defs", "transition", "orders", "--to", "published")]
    [InlineData("defs", "publish", "orders")]
    [InlineData("defs", "publish", "orders", "--version", "0")]
    [InlineData("defs", "publish", "orders", "--version", "two")]
    [InlineData("defs", "archive")]
    [InlineData("defs", "show")]
    [InlineData("defs", "show", "orders", "--version", "-1")]
    [InlineData("defs", "list", "--kind", "both")]
    [InlineData("roles", "put", "reporter")]
    [InlineData("roles", "put", "--permission", "runs.read")]
    [InlineData("roles", "put", "reporter", "--permission", ",")]
    [InlineData("roles", "delete")]
    [InlineData("bindings", "grant", "k1")]
    [InlineData("bindings", "revoke")]
    [InlineData("audit", "query", "--outcome", "maybe")]
    [InlineData("audit", "query", "--opcode", "Frobnicate")]
    [InlineData("audit", "query", "--opcode", "0xZZ")]
    [InlineData("audit", "query", "--opcode", "5")]
    [InlineData("audit", "query", "--since", "yesterday")]
    [InlineData("audit", "query", "--since", "1h", "--until", "2h")]
    [InlineData("audit", "query", "--limit", "1001")]
    [InlineData("audit", "query", "--after", "-3")]
    [InlineData("audit", "verify", "now")]
    public async Task Usage_errors_exit_with_1_without_a_server(params string[] args)
    {
        var (code, run) = await CliRun.ExecAsync(NoServer, args);

        Assert.True(code == 1, $"exit {code}: {run.StdOut}{run.StdErr}");
        Assert.DoesNotContain("NOT_CONNECTED", run.StdErr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("defs", "list", "--kind", "agent")]
    [InlineData("defs", "publish", "orders", "--version", "2", "--kind", "workflow")]
    [InlineData("defs", "transition", "orders", "--version", "2", "--to", "validated")]
    [InlineData("roles", "put", "reporter", "-p", "audit.read", "--permission", "runs.read,dlq.read")]
    [InlineData("bindings", "grant", "k1", "developer")]
    [InlineData("audit", "query", "--outcome", "denied", "--opcode", "0x0211", "--from", "1700000000000", "--to", "2025-01-31T12:00:00Z", "--all", "--json")]
    [InlineData("audit", "head")]
    public async Task Valid_commands_get_as_far_as_connecting(params string[] args)
    {
        var (code, run) = await CliRun.ExecAsync(NoServer, args);

        Assert.Equal(2, code);
        Assert.StartsWith("error NOT_CONNECTED:", run.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public void The_kind_of_a_file_is_inferred_from_a_top_level_nodes_property_unless_given()
    {
        Assert.Equal(DefinitionKind.Workflow, WayangCli.FileKind(null, """{ "id": "w", "nodes": [] }"""));
        Assert.Equal(DefinitionKind.Agent, WayangCli.FileKind(null, """{ "id": "a", "model": { "nodes": 1 } }"""));
        Assert.Equal(DefinitionKind.Agent, WayangCli.FileKind(null, "[1, 2]"));
        Assert.Equal(DefinitionKind.Agent, WayangCli.FileKind("agent", """{ "nodes": [] }"""));
        Assert.Equal(DefinitionKind.Workflow, WayangCli.FileKind("workflow", "{ not json"));
        Assert.Throws<UsageException>(() => WayangCli.FileKind(null, "{ not json"));
    }

    [Fact]
    public void Opcodes_are_names_in_any_case_or_hex()
    {
        Assert.Equal(Opcode.RunSubmit, WayangCli.ParseOpcode("RunSubmit"));
        Assert.Equal(Opcode.RunSubmit, WayangCli.ParseOpcode("runsubmit"));
        Assert.Equal(Opcode.AuditQuery, WayangCli.ParseOpcode("0x0110"));
        Assert.Equal(Opcode.DefinitionCreate, WayangCli.ParseOpcode("0X121"));
        Assert.Throws<UsageException>(() => WayangCli.ParseOpcode("None"));
        Assert.Throws<UsageException>(() => WayangCli.ParseOpcode("0x0"));
        Assert.Throws<UsageException>(() => WayangCli.ParseOpcode("272"));
    }

    [Fact]
    public void Outcomes_and_instants_parse()
    {
        Assert.Equal(AuditOutcome.Denied, WayangCli.ParseOutcome("DENIED"));
        Assert.Equal(AuditOutcome.Failed, WayangCli.ParseOutcome("failed"));
        var now = new DateTimeOffset(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_123), WayangCli.ParseAuditInstant("--since", "1700000000123", now));
        Assert.Equal(new DateTimeOffset(2025, 1, 31, 12, 0, 0, TimeSpan.Zero), WayangCli.ParseAuditInstant("--since", "2025-01-31T12:00:00Z", now));
        Assert.Equal(now.AddHours(-2), WayangCli.ParseAuditInstant("--since", "2h", now));
        Assert.Throws<UsageException>(() => WayangCli.ParseAuditInstant("--since", "99999999999999999999", now));
    }
}
