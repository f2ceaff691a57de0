using System.Text.Json;
using System.Text.RegularExpressions;

namespace Wayang.Fast.Host.Tests;

// defs, roles, bindings and audit through the CLI against a real in-process server.
public sealed class ControlCliTests : IAsyncLifetime
{
    private const string GoodWorkflow = """
        {
          "id": "orders",
          "nodes": [ { "id": "charge", "type": "TASK", "executorType": "payments", "config": { "currency": "EUR" } } ]
        }
        """;

    // Three schema violations in one file: a bad id, an empty node list, an unknown property.
    private const string BadWorkflow = """
        { "id": "Not An Id!", "nodes": [], "colour": "blue" }
        """;

    private CliTenantServer _shop = null!;
    private Dictionary<string, string?> _admin = null!, _dev = null!, _viewer = null!, _auditor = null!;
    private string _viewerKeyId = "";

    public async Task InitializeAsync()
    {
        _shop = await CliTenantServer.StartAsync(("tenant-admin", "boss"), ("developer", "dev"), ("auditor", "audit"), ("viewer", "look"));
        (_admin, _dev, _auditor, _viewer) = (_shop.As("tenant-admin"), _shop.As("developer"), _shop.As("auditor"), _shop.As("viewer"));
        _viewerKeyId = _shop.KeyId("viewer");
    }

    public async Task DisposeAsync() => await _shop.DisposeAsync();

    private string WriteFile(string name, string content)
    {
        var path = Path.Combine(_shop.DataPath, name);
        File.WriteAllText(path, content);
        return path;
    }

    private static async Task<CliRun> OkAsync(Dictionary<string, string?> who, params string[] args)
    {
        var (code, run) = await CliRun.ExecAsync(who, args);
        Assert.True(code == 0, $"{string.Join(' ', args)} exited {code}: {run.StdOut}{run.StdErr}");
        return run;
    }

    [Fact]
    public async Task Validate_of_a_bad_file_lists_every_violation_exits_1_and_stores_nothing()
    {
        var bad = WriteFile("bad.json", BadWorkflow);

        var (code, run) = await CliRun.ExecAsync(_dev, "defs", "validate", bad);

        Assert.True(code == WayangCli.ExitUsage, $"exit {code}: {run.StdOut}{run.StdErr}");
        var lines = run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(lines.Length >= 3, run.StdOut);
        Assert.Contains(lines, l => l.StartsWith("/id: ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("/nodes: ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("colour", StringComparison.Ordinal));
        Assert.All(lines, l => Assert.Matches(@"^(\(root\)|/\S*): \S", l));

        var list = await OkAsync(_dev, "defs", "list");
        Assert.DoesNotContain("workflow", list.StdOut, StringComparison.Ordinal);

        // A good file is "valid", and validating it stores nothing either.
        run = await OkAsync(_dev, "defs", "validate", WriteFile("good.json", GoodWorkflow));
        Assert.Equal("valid", run.StdOut.Trim());
        list = await OkAsync(_dev, "defs", "list", "--json");
        using var json = JsonDocument.Parse(list.StdOut);
        Assert.Equal(0, json.RootElement.GetArrayLength());

        // create refuses the bad file with the stable code and the same violations.
        (code, run) = await CliRun.ExecAsync(_dev, "defs", "create", bad);
        Assert.Equal(WayangCli.ExitServerError, code);
        Assert.StartsWith("error WORKFLOW_INVALID: ", run.StdErr, StringComparison.Ordinal);
        Assert.Contains("\n/nodes: ", run.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Create_publish_list_and_show_a_workflow()
    {
        var file = WriteFile("orders.json", GoodWorkflow);

        var run = await OkAsync(_dev, "defs", "create", file);
        Assert.Contains("created workflow orders version 1 (DRAFT)", run.StdOut, StringComparison.Ordinal);
        run = await OkAsync(_dev, "defs", "create", file, "--kind", "workflow");
        Assert.Contains("created workflow orders version 2 (DRAFT)", run.StdOut, StringComparison.Ordinal);

        // No --kind: the CLI finds which kind has the id.
        run = await OkAsync(_dev, "defs", "publish", "orders", "--version", "1");
        Assert.Contains("workflow orders version 1: PUBLISHED", run.StdOut, StringComparison.Ordinal);
        run = await OkAsync(_dev, "defs", "transition", "orders", "--version", "2", "--to", "validated", "--kind", "workflow");
        Assert.Contains("workflow orders version 2: VALIDATED", run.StdOut, StringComparison.Ordinal);

        run = await OkAsync(_viewer, "defs", "list");
        Assert.Matches(@"workflow\s+orders\s+2\s+1\s+1:PUBLISHED,2:VALIDATED\s+\S+Z", run.StdOut);
        run = await OkAsync(_viewer, "defs", "list", "--kind", "agent");
        Assert.DoesNotContain("orders", run.StdOut, StringComparison.Ordinal);

        run = await OkAsync(_viewer, "defs", "show", "orders", "--version", "1");
        Assert.Contains("state:   PUBLISHED", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("version: 1", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("\"executorType\": \"payments\"", run.StdOut, StringComparison.Ordinal);
        run = await OkAsync(_viewer, "defs", "show", "orders");
        Assert.Contains("version: 2", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("state:   VALIDATED", run.StdOut, StringComparison.Ordinal);

        // A move the lifecycle does not allow keeps the CLI's error format.
        var (code, failed) = await CliRun.ExecAsync(_dev, "defs", "transition", "orders", "--version", "1", "--to", "validated");
        Assert.Equal(WayangCli.ExitServerError, code);
        Assert.StartsWith("error DEFINITION_STATE_CONFLICT: ", failed.StdErr, StringComparison.Ordinal);

        run = await OkAsync(_dev, "defs", "archive", "orders", "--version", "2");
        Assert.Contains("workflow orders version 2: ARCHIVED", run.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Audit_verify_head_and_a_viewers_denial_in_the_query()
    {
        var file = WriteFile("orders.json", GoodWorkflow);
        var (code, run) = await CliRun.ExecAsync(_viewer, "defs", "create", file);
        Assert.Equal(WayangCli.ExitServerError, code);
        Assert.StartsWith("error PERMISSION_DENIED: ", run.StdErr, StringComparison.Ordinal);

        run = await OkAsync(_auditor, "audit", "query", "--outcome", "denied");
        Assert.Matches($@"{Regex.Escape(_viewerKeyId)}\s+DefinitionCreate\s+DENIED\s+.*PERMISSION_DENIED", run.StdOut);

        run = await OkAsync(_auditor, "audit", "query", "--outcome", "denied", "--opcode", "0x0121", "--principal", _viewerKeyId, "--json");
        var line = Assert.Single(run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        using (var record = JsonDocument.Parse(line))
        {
            Assert.Equal(_viewerKeyId, record.RootElement.GetProperty("principalId").GetString());
            Assert.Equal("DENIED", record.RootElement.GetProperty("outcome").GetString());
            Assert.Equal("shop", record.RootElement.GetProperty("tenantId").GetString());
            Assert.Matches("^[0-9a-f]{64}$", record.RootElement.GetProperty("hash").GetString()!);
        }

        // Paging: one record per page, following the cursor, gives the same records as one big page.
        run = await OkAsync(_auditor, "audit", "query", "--limit", "1000", "--json");
        var all = run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(all.Length >= 2, run.StdOut);
        run = await OkAsync(_auditor, "audit", "query", "--limit", "1", "--all", "--json");
        var paged = run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(all.Select(Sequence).ToList(), paged.Select(Sequence).Take(all.Length).ToList());
        run = await OkAsync(_auditor, "audit", "query", "--limit", "1");
        Assert.Contains("more records: --after ", run.StdErr, StringComparison.Ordinal);

        run = await OkAsync(_auditor, "audit", "verify");
        Assert.Matches(@"^ok: \d+ records, head \d+ [0-9a-f]{64}", run.StdOut);
        run = await OkAsync(_auditor, "audit", "head");
        Assert.Matches(@"sequence: \d+\s+hash:\s+[0-9a-f]{64}", run.StdOut);

        // Only audit.read may read the log.
        (code, run) = await CliRun.ExecAsync(_viewer, "audit", "verify");
        Assert.Equal(WayangCli.ExitServerError, code);
        Assert.StartsWith("error PERMISSION_DENIED: ", run.StdErr, StringComparison.Ordinal);

        static long Sequence(string jsonLine)
        {
            using var d = JsonDocument.Parse(jsonLine);
            return d.RootElement.GetProperty("sequence").GetInt64();
        }
    }

    [Fact]
    public async Task A_tenant_role_bound_to_a_key_changes_what_the_key_may_do()
    {
        var file = WriteFile("orders.json", GoodWorkflow);
        await OkAsync(_dev, "defs", "create", file);

        var (code, run) = await CliRun.ExecAsync(_viewer, "defs", "publish", "orders", "--version", "1", "--kind", "workflow");
        Assert.Equal(WayangCli.ExitServerError, code);
        Assert.StartsWith("error PERMISSION_DENIED: ", run.StdErr, StringComparison.Ordinal);

        run = await OkAsync(_admin, "roles", "put", "publisher", "--permission", "definitions.read", "-p", "definitions.publish");
        Assert.Contains("role publisher (tenant shop): ", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("definitions.publish", run.StdOut, StringComparison.Ordinal);
        run = await OkAsync(_admin, "roles", "list");
        Assert.Matches(@"publisher\s+tenant\s+\S*definitions\.publish", run.StdOut);
        Assert.Matches(@"viewer\s+built-in\s+", run.StdOut);

        run = await OkAsync(_admin, "bindings", "grant", _viewerKeyId, "publisher");
        Assert.Contains($"key {_viewerKeyId} (look) roles: viewer,publisher", run.StdOut, StringComparison.Ordinal);
        run = await OkAsync(_admin, "bindings", "list");
        Assert.Matches($@"{Regex.Escape(_viewerKeyId)}\s+look\s+viewer,publisher\s+active", run.StdOut);

        run = await OkAsync(_viewer, "defs", "publish", "orders", "--version", "1", "--kind", "workflow");
        Assert.Contains("workflow orders version 1: PUBLISHED", run.StdOut, StringComparison.Ordinal);

        // A role in use cannot be deleted; once unbound it can, and the key is back to viewing.
        (code, run) = await CliRun.ExecAsync(_admin, "roles", "delete", "publisher");
        Assert.Equal(WayangCli.ExitServerError, code);
        Assert.StartsWith("error ROLE_IN_USE: ", run.StdErr, StringComparison.Ordinal);
        run = await OkAsync(_admin, "bindings", "revoke", _viewerKeyId, "publisher");
        Assert.Contains("roles: viewer", run.StdOut, StringComparison.Ordinal);
        run = await OkAsync(_admin, "roles", "delete", "publisher");
        Assert.Contains("deleted role publisher (tenant shop)", run.StdOut, StringComparison.Ordinal);

        (code, run) = await CliRun.ExecAsync(_viewer, "defs", "archive", "orders", "--version", "1", "--kind", "workflow");
        Assert.Equal(WayangCli.ExitServerError, code);
        Assert.StartsWith("error PERMISSION_DENIED: ", run.StdErr, StringComparison.Ordinal);

        (code, run) = await CliRun.ExecAsync(_admin, "roles", "delete", "viewer");
        Assert.Equal(WayangCli.ExitServerError, code);
        Assert.StartsWith("error ROLE_BUILT_IN: ", run.StdErr, StringComparison.Ordinal);
    }
}
