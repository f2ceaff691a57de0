using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Engine;
using static Wayang.Fast.Execution.Tests.Workflows;

namespace Wayang.Fast.Execution.Tests;

public class WorkflowRegistryTests
{
    private static readonly ValidationContext Ctx = Context();

    private static string Stored(WorkflowDefinition def) => JsonSerializer.Serialize(def, ExecutionJsonContext.Default.WorkflowDefinition);

    [Fact]
    public async Task Versions_increment_per_workflow_and_zero_gets_the_latest()
    {
        var registry = new WorkflowRegistry(new InMemoryStateStore(), Ctx);
        var v1 = await registry.RegisterAsync("acme", OneTask("orders"));
        var v2 = await registry.RegisterAsync("acme", FanOutJoin("orders"));
        var other = await registry.RegisterAsync("acme", OneTask("billing"));

        Assert.Equal(1, v1.Version);
        Assert.Equal(2, v2.Version);
        Assert.Equal(1, other.Version);
        Assert.Same(v2, registry.Get("acme", "orders", 0));
        Assert.Same(v1, registry.Get("acme", "orders", 1));
        Assert.Same(v2, registry.Get("acme", "orders", 2));
        Assert.Null(registry.Get("acme", "orders", 3));
        Assert.Null(registry.Get("acme", "missing", 0));
        Assert.Equal("acme", v1.TenantId);
        Assert.Single(v1.Nodes);
        Assert.Equal(4, v2.Nodes.Length);
    }

    [Fact]
    public async Task Client_supplied_version_is_ignored_and_the_callers_object_is_not_changed()
    {
        var registry = new WorkflowRegistry(new InMemoryStateStore(), Ctx);
        var def = OneTask("orders");
        def.Version = 42;
        var compiled = await registry.RegisterAsync("acme", def);
        Assert.Equal(1, compiled.Version);
        Assert.Equal(42, def.Version);
        // Later changes to the caller's object do not reach the registered version.
        def.Nodes[0].ExecutorType = "changed";
        Assert.Equal(Worker, registry.Get("acme", "orders", 1)!.Nodes[0].ExecutorType);
    }

    [Fact]
    public async Task List_is_sorted_by_id_with_versions_and_time()
    {
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_000_000));
        var registry = new WorkflowRegistry(new InMemoryStateStore(), Ctx, time);
        await registry.RegisterAsync("acme", OneTask("zeta"));
        await registry.RegisterAsync("acme", OneTask("alpha"));
        time.Advance(TimeSpan.FromSeconds(5));
        await registry.RegisterAsync("acme", OneTask("alpha"));

        var list = registry.List("acme");
        Assert.Equal(["alpha", "zeta"], list.Select(s => s.WorkflowId));
        Assert.Equal(2, list[0].LatestVersion);
        Assert.Equal([1, 2], list[0].Versions);
        Assert.Equal(1_005_000, list[0].UpdatedAtMs);
        Assert.Equal(1_000_000, list[1].UpdatedAtMs);
        Assert.Empty(registry.List("nobody"));
    }

    [Fact]
    public async Task Tenants_are_isolated()
    {
        var registry = new WorkflowRegistry(new InMemoryStateStore(), Ctx);
        var a = await registry.RegisterAsync("tenant-a", OneTask("orders"));
        var b1 = await registry.RegisterAsync("tenant-b", FanOutJoin("orders"));
        var b2 = await registry.RegisterAsync("tenant-b", FanOutJoin("orders"));

        Assert.Equal(1, a.Version);
        Assert.Equal(1, b1.Version);
        Assert.Equal(2, b2.Version);
        Assert.Same(a, registry.Get("tenant-a", "orders", 0));
        Assert.Same(b2, registry.Get("tenant-b", "orders", 0));
        Assert.Null(registry.Get("tenant-a", "orders", 2));
        Assert.Single(registry.List("tenant-a")[0].Versions);
        Assert.Null(registry.Get("tenant-c", "orders", 0));
    }

    [Fact]
    public async Task Reload_from_the_store_gives_the_same_definitions()
    {
        var store = new InMemoryStateStore();
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(7_000));
        var registry = new WorkflowRegistry(store, Ctx, time);
        var registered = new[]
        {
            await registry.RegisterAsync("acme", DecisionFlow("orders")),
            await registry.RegisterAsync("acme", RetryingTask("orders")),
            await registry.RegisterAsync("acme", Parse(DecisionJson)),
            await registry.RegisterAsync("other", WaitSignalFlow("orders", timeoutMs: 500)),
        };

        var reloaded = new WorkflowRegistry(store, Ctx, new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(99_000)));
        foreach (var original in registered)
        {
            var loaded = reloaded.Get(original.TenantId, original.WorkflowId, original.Version);
            Assert.NotNull(loaded);
            Assert.Equal(Stored(original.Definition), Stored(loaded.Definition));
            Assert.Equal(original.TopologicalOrder, loaded.TopologicalOrder);
        }
        Assert.Equal(2, reloaded.Get("acme", "orders", 0)!.Version);
        Assert.Equal(registry.List("acme"), reloaded.List("acme"), SummaryComparer.Instance);
        Assert.Equal(7_000, reloaded.List("acme")[0].UpdatedAtMs);

        // Registration continues from the stored versions.
        var next = await reloaded.RegisterAsync("acme", OneTask("orders"));
        Assert.Equal(3, next.Version);
    }

    [Fact]
    public async Task Reload_works_over_the_real_store()
    {
        using var dir = new TempDirectory();
        var options = new Wayang.Fast.Storage.StorageOptions { DataDirectory = dir.Path };
        string expected;
        await using (var store = await Wayang.Fast.Storage.FasterStateStore.OpenAsync(options, logger: null))
        {
            var registry = new WorkflowRegistry(store, Ctx);
            await registry.RegisterAsync("acme", OneTask("orders"));
            expected = Stored((await registry.RegisterAsync("acme", FanOutJoin("orders"))).Definition);
        }
        await using (var store = await Wayang.Fast.Storage.FasterStateStore.OpenAsync(options, logger: null))
        {
            var reloaded = new WorkflowRegistry(store, Ctx);
            Assert.Equal(expected, Stored(reloaded.Get("acme", "orders", 0)!.Definition));
            Assert.Equal(2, reloaded.Get("acme", "orders", 0)!.Version);
        }
    }

    [Fact]
    public async Task Stored_keys_and_values_follow_the_documented_layout()
    {
        var store = new InMemoryStateStore();
        var registry = new WorkflowRegistry(store, Ctx);
        await registry.RegisterAsync("acme", OneTask("orders"));
        Assert.True(store.TryGet(Encoding.UTF8.GetBytes("wf/acme/orders/0000000001"), out var value));
        var def = JsonSerializer.Deserialize(value, ExecutionJsonContext.Default.WorkflowDefinition)!;
        Assert.Equal(1, def.Version);
        Assert.Equal("orders", def.Id);
    }

    [Fact]
    public async Task Invalid_definitions_are_rejected_and_not_stored()
    {
        var store = new InMemoryStateStore();
        var registry = new WorkflowRegistry(store, Ctx);
        var ex = await Assert.ThrowsAsync<WayangException>(async () => await registry.RegisterAsync("acme", Define("orders", TaskNode("a", "ghost"))));
        Assert.Equal(ErrorCode.WorkflowInvalid, ex.Code);
        Assert.Equal("a", ex.Error.Details["node"]);
        Assert.Equal(0, store.Writes);
        Assert.Null(registry.Get("acme", "orders", 0));

        var agentless = new WorkflowRegistry(store, Context(inference: false));
        var agentError = await Assert.ThrowsAsync<WayangException>(async () => await agentless.RegisterAsync("acme", AgentFlow()));
        Assert.Equal(ErrorCode.AgentUnavailable, agentError.Code);
    }

    [Fact]
    public async Task Invalid_tenant_id_is_rejected()
    {
        var registry = new WorkflowRegistry(new InMemoryStateStore(), Ctx);
        var ex = await Assert.ThrowsAsync<WayangException>(async () => await registry.RegisterAsync("a/b", OneTask()));
        Assert.Equal(ErrorCode.InvalidArgument, ex.Code);
    }

    [Fact]
    public async Task Concurrent_registrations_get_distinct_consecutive_versions()
    {
        var registry = new WorkflowRegistry(new InMemoryStateStore(), Ctx);
        var tasks = Enumerable.Range(0, 20).Select(_ => Task.Run(async () => await registry.RegisterAsync("acme", OneTask("orders")))).ToArray();
        var versions = (await Task.WhenAll(tasks)).Select(w => w.Version).Order().ToArray();
        Assert.Equal(Enumerable.Range(1, 20), versions);
        Assert.Equal(20, registry.Get("acme", "orders", 0)!.Version);
    }

    [Fact]
    public void Parse_accepts_a_valid_definition()
    {
        var def = WorkflowRegistry.ParseDefinition(Encoding.UTF8.GetBytes(DecisionJson));
        Assert.Equal("decide-json", def.Id);
        Assert.Equal(NodeType.Decision, def.Nodes[0].Type);
        Assert.Equal(ConditionOperator.GreaterThan, def.Nodes[0].Transitions[0].Condition!.Op);
        Assert.Equal(3, def.Nodes[2].Retry!.MaxAttempts);
        WorkflowValidator.Validate(def, Ctx);
    }

    [Theory]
    [InlineData("""{ "id": "w", "nodes": [ { "id": "a", "type": "TASK", "bogus": 1 } ] }""", "$.nodes[0]")]
    [InlineData("""{ "id": "w", "nodes": [ { "id": "a", "type": "NOPE" } ] }""", "$.nodes[0].type")]
    [InlineData("""{ "id": "w", "nodes": [ { "id": "a", "type": "TASK", "transitions": [ { "on": "SOMETIMES" } ] } ] }""", "$.nodes[0].transitions[0].on")]
    [InlineData("""{ "id": "w", "nodes": "many" }""", "$.nodes")]
    [InlineData("""{ "id": "w", "nodes": [] ,}""", "$")]
    [InlineData("""{ "id": 5 }""", "$.id")]
    [InlineData("""not json""", "$")]
    [InlineData("""{ "id": "w" } trailing""", "$")]
    [InlineData("", "$")]
    public void Parse_errors_are_workflow_invalid_with_the_json_path(string json, string pathPrefix)
    {
        var ex = Assert.Throws<WayangException>(() => WorkflowRegistry.ParseDefinition(Encoding.UTF8.GetBytes(json)));
        Assert.Equal(ErrorCode.WorkflowInvalid, ex.Code);
        Assert.StartsWith(pathPrefix, ex.Error.Details["path"], StringComparison.Ordinal);
        Assert.Equal("", ex.Error.Details["node"]);
        Assert.Contains(ex.Error.Details["path"], ex.Error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_of_json_null_is_workflow_invalid()
    {
        var ex = Assert.Throws<WayangException>(() => WorkflowRegistry.ParseDefinition("null"u8));
        Assert.Equal(ErrorCode.WorkflowInvalid, ex.Code);
    }

    [Fact]
    public async Task Corrupt_stored_definition_fails_loading_with_storage_corrupt()
    {
        var store = new InMemoryStateStore();
        await store.PutAsync(Encoding.UTF8.GetBytes("wf/acme/orders/0000000001"), "{ not json"u8.ToArray());
        var ex = Assert.Throws<WayangException>(() => new WorkflowRegistry(store, Ctx));
        Assert.Equal(ErrorCode.StorageCorrupt, ex.Code);
    }

    private sealed class SummaryComparer : IEqualityComparer<WorkflowSummary>
    {
        public static readonly SummaryComparer Instance = new();

        public bool Equals(WorkflowSummary? x, WorkflowSummary? y) =>
            x is not null && y is not null && x.WorkflowId == y.WorkflowId && x.LatestVersion == y.LatestVersion
            && x.Versions.SequenceEqual(y.Versions) && x.UpdatedAtMs == y.UpdatedAtMs;

        public int GetHashCode(WorkflowSummary obj) => obj.WorkflowId.GetHashCode(StringComparison.Ordinal);
    }
}
