using System.Buffers.Binary;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Engine;
using static Wayang.Fast.Execution.Tests.Workflows;

namespace Wayang.Fast.Execution.Tests;

public sealed class WorkflowLifecycleTests
{
    private const string Tenant = EngineHarness.Tenant;
    private static readonly ValidationContext Ctx = Context();

    private static FakeTimeProvider Clock() => new(DateTimeOffset.FromUnixTimeMilliseconds(1_000_000));

    private static async Task<WayangException> Refused(ErrorCode code, Func<Task> action) => await EngineHarness.ThrowsAsync(code, action);

    // ---- transitions ----

    // The table, written out here rather than read from DefinitionLifecycle, so a change to either is noticed.
    public static TheoryData<DefinitionState, DefinitionState, bool> Moves()
    {
        var allowed = new HashSet<(DefinitionState, DefinitionState)>
        {
            (DefinitionState.Draft, DefinitionState.Validated),
            (DefinitionState.Draft, DefinitionState.Published),
            (DefinitionState.Validated, DefinitionState.Published),
            (DefinitionState.Draft, DefinitionState.Archived),
            (DefinitionState.Validated, DefinitionState.Archived),
            (DefinitionState.Published, DefinitionState.Archived),
        };
        DefinitionState[] from = [DefinitionState.Draft, DefinitionState.Validated, DefinitionState.Published, DefinitionState.Archived];
        DefinitionState[] to = [DefinitionState.Unspecified, .. from];
        var data = new TheoryData<DefinitionState, DefinitionState, bool>();
        foreach (var f in from)
        {
            foreach (var t in to)
                data.Add(f, t, allowed.Contains((f, t)));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Moves))]
    public async Task Every_move_is_allowed_or_refused_per_the_table(DefinitionState from, DefinitionState to, bool allowed)
    {
        var time = Clock();
        var registry = new WorkflowRegistry(new InMemoryStateStore(), Ctx, time);
        var created = await registry.CreateAsync(Tenant, OneTask("orders"));
        var before = await BringToAsync(registry, created.Version, from);
        time.Advance(TimeSpan.FromSeconds(1));
        long now = time.GetUtcNow().ToUnixTimeMilliseconds();

        if (allowed)
        {
            var after = await registry.TransitionAsync(Tenant, "orders", created.Version, to);
            Assert.Equal(to, after.State);
            Assert.Equal(after, registry.GetVersion(Tenant, "orders", created.Version));
            Assert.Equal(before.CreatedAtMs, after.CreatedAtMs);
            switch (to)
            {
                case DefinitionState.Validated:
                    Assert.Equal(now, after.ValidatedAtMs);
                    break;
                case DefinitionState.Published:
                    Assert.Equal(now, after.PublishedAtMs);
                    // Straight from DRAFT it was validated on the way; from VALIDATED it keeps that time.
                    Assert.Equal(from == DefinitionState.Draft ? now : before.ValidatedAtMs, after.ValidatedAtMs);
                    break;
                case DefinitionState.Archived:
                    Assert.Equal(now, after.ArchivedAtMs);
                    Assert.Equal(before.PublishedAtMs, after.PublishedAtMs);
                    break;
            }
        }
        else
        {
            var ex = await Refused(ErrorCode.DefinitionStateConflict, () => registry.TransitionAsync(Tenant, "orders", created.Version, to).AsTask());
            Assert.Contains(from.ToString().ToUpperInvariant(), ex.Message, StringComparison.Ordinal);
            Assert.Contains(to.ToString().ToUpperInvariant(), ex.Message, StringComparison.Ordinal);
            Assert.Equal(before, registry.GetVersion(Tenant, "orders", created.Version));
        }
    }

    private static async Task<WorkflowVersionInfo> BringToAsync(WorkflowRegistry registry, int version, DefinitionState state)
    {
        var path = state switch
        {
            DefinitionState.Draft => [],
            DefinitionState.Validated => [DefinitionState.Validated],
            DefinitionState.Published => [DefinitionState.Validated, DefinitionState.Published],
            _ => new[] { DefinitionState.Archived },
        };
        foreach (var step in path)
            await registry.TransitionAsync(Tenant, "orders", version, step);
        var info = registry.GetVersion(Tenant, "orders", version)!;
        Assert.Equal(state, info.State);
        return info;
    }

    [Fact]
    public async Task Create_stores_a_draft_with_only_its_creation_time_and_register_publishes_at_once()
    {
        var time = Clock();
        var store = new InMemoryStateStore();
        var registry = new WorkflowRegistry(store, Ctx, time);

        var draft = await registry.CreateAsync(Tenant, OneTask("orders"));
        Assert.Equal(new WorkflowVersionInfo("orders", 1, DefinitionState.Draft, draft.Definition, 1_000_000, null, null, null), draft);
        Assert.True(store.TryGet(Encoding.UTF8.GetBytes("wfs/acme/orders/0000000001"), out var record));
        Assert.Equal("""{"state":"DRAFT","createdAtMs":1000000}""", Encoding.UTF8.GetString(record));

        time.Advance(TimeSpan.FromSeconds(1));
        var registered = await registry.RegisterAsync(Tenant, OneTask("orders"));
        Assert.Equal(2, registered.Version);
        Assert.Equal(new WorkflowVersionInfo("orders", 2, DefinitionState.Published, registered.Definition, 1_001_000, 1_001_000, 1_001_000, null),
            registry.GetVersion(Tenant, "orders", 2));
    }

    [Fact]
    public async Task Versions_are_numbered_across_create_and_register_and_listed_with_their_states()
    {
        var time = Clock();
        var registry = new WorkflowRegistry(new InMemoryStateStore(), Ctx, time);
        Assert.Equal(1, (await registry.CreateAsync(Tenant, OneTask("orders"))).Version);
        Assert.Equal(2, (await registry.RegisterAsync(Tenant, OneTask("orders"))).Version);
        Assert.Equal(3, (await registry.CreateAsync(Tenant, FanOutJoin("orders"))).Version);
        Assert.Equal(1, (await registry.CreateAsync(Tenant, OneTask("billing"))).Version);
        time.Advance(TimeSpan.FromSeconds(3));
        await registry.TransitionAsync(Tenant, "orders", 1, DefinitionState.Archived);

        var orders = registry.List(Tenant).Single(s => s.WorkflowId == "orders");
        Assert.Equal([1, 2, 3], orders.Versions);
        Assert.Equal([DefinitionState.Archived, DefinitionState.Published, DefinitionState.Draft], orders.States);
        Assert.Equal(3, orders.LatestVersion);
        Assert.Equal(2, orders.LatestPublishedVersion);
        Assert.Equal(1_003_000, orders.UpdatedAtMs);
        var billing = registry.List(Tenant).Single(s => s.WorkflowId == "billing");
        Assert.Equal(0, billing.LatestPublishedVersion);

        // Version 0 runs the latest PUBLISHED version; it shows the newest version in any state.
        Assert.Equal(2, registry.Get(Tenant, "orders", 0)!.Version);
        Assert.Equal(3, registry.GetVersion(Tenant, "orders", 0)!.Version);
        Assert.Null(registry.Get(Tenant, "billing", 0));
        Assert.Equal(DefinitionState.Draft, registry.GetVersion(Tenant, "billing", 0)!.State);
        // Any state by number (what pinned runs and recovery need).
        Assert.Equal(1, registry.Get(Tenant, "orders", 1)!.Version);
        Assert.Equal(4, (await registry.RegisterAsync(Tenant, OneTask("orders"))).Version);
    }

    [Fact]
    public async Task Transitions_of_a_missing_version_or_another_tenants_are_workflow_not_found()
    {
        var registry = new WorkflowRegistry(new InMemoryStateStore(), Ctx);
        await registry.CreateAsync(Tenant, OneTask("orders"));
        await Refused(ErrorCode.WorkflowNotFound, () => registry.TransitionAsync(Tenant, "orders", 2, DefinitionState.Validated).AsTask());
        await Refused(ErrorCode.WorkflowNotFound, () => registry.TransitionAsync(Tenant, "nope", 1, DefinitionState.Validated).AsTask());
        await Refused(ErrorCode.WorkflowNotFound, () => registry.TransitionAsync("other", "orders", 1, DefinitionState.Validated).AsTask());
        Assert.Null(registry.GetVersion("other", "orders", 1));
    }

    [Fact]
    public async Task Create_checks_the_structure_and_stores_nothing_invalid()
    {
        var store = new InMemoryStateStore();
        var registry = new WorkflowRegistry(store, Ctx);
        var ex = await Refused(ErrorCode.WorkflowInvalid, () => registry.CreateAsync(Tenant, Define("orders", TaskNode("a", "ghost"))).AsTask());
        Assert.Equal("a", ex.Error.Details["node"]);
        Assert.Equal(0, store.Writes);
        Assert.Empty(registry.List(Tenant));
    }

    [Fact]
    public async Task A_draft_may_name_agents_without_an_inference_plane_but_cannot_be_validated_there()
    {
        var registry = new WorkflowRegistry(new InMemoryStateStore(), Context(inference: false));
        var draft = await registry.CreateAsync(Tenant, AgentFlow());
        await Refused(ErrorCode.AgentUnavailable, () => registry.TransitionAsync(Tenant, "agentic", draft.Version, DefinitionState.Validated).AsTask());
        await Refused(ErrorCode.AgentUnavailable, () => registry.TransitionAsync(Tenant, "agentic", draft.Version, DefinitionState.Published).AsTask());
        Assert.Equal(DefinitionState.Draft, registry.GetVersion(Tenant, "agentic", draft.Version)!.State);
    }

    // ---- agent references ----

    private static WorkflowDefinition AgentFlowAt(int? agentVersion, string agent = "summarizer")
    {
        var def = AgentFlow();
        def.Nodes[0].Agent = agent;
        def.Nodes[0].AgentVersion = agentVersion;
        return def;
    }

    public static TheoryData<string, string, int?, string> BadAgentReferences() => new()
    {
        // tenant, agent, version, the field the error points at
        { Tenant, "ghost", 1, "$.nodes[0].agent" },
        { Tenant, "summarizer", 2, "$.nodes[0].agent" },     // exists, not published
        { "other", "summarizer", 1, "$.nodes[0].agent" },    // published, but in another tenant
        { Tenant, "summarizer", null, "$.nodes[0].agentVersion" },
    };

    [Theory]
    [MemberData(nameof(BadAgentReferences))]
    public async Task Validating_publishing_and_registering_need_a_published_agent_of_the_tenant(string tenant, string agent, int? version, string path)
    {
        var catalog = new FakeAgentCatalog();
        catalog.Publish(Tenant, "summarizer", 1);
        var registry = new WorkflowRegistry(new InMemoryStateStore(), Context() with { Agents = catalog });

        // A draft is stored whatever it names.
        var draft = await registry.CreateAsync(tenant, AgentFlowAt(version, agent));
        foreach (var target in new[] { DefinitionState.Validated, DefinitionState.Published })
        {
            var ex = await Refused(ErrorCode.WorkflowInvalid, () => registry.TransitionAsync(tenant, "agentic", draft.Version, target).AsTask());
            Assert.Equal("ask", ex.Error.Details["node"]);
            Assert.Equal(path, ex.Error.Details["path"]);
            Assert.Contains(agent, ex.Error.Details["reason"], StringComparison.Ordinal);
        }
        Assert.Equal(DefinitionState.Draft, registry.GetVersion(tenant, "agentic", draft.Version)!.State);
        var registerError = await Refused(ErrorCode.WorkflowInvalid, () => registry.RegisterAsync(tenant, AgentFlowAt(version, agent)).AsTask());
        Assert.Equal("ask", registerError.Error.Details["node"]);
        Assert.Equal([DefinitionState.Draft], registry.List(tenant).Single().States);
    }

    [Fact]
    public async Task A_published_agent_version_passes_and_a_draft_passes_once_its_agent_is_published()
    {
        var catalog = new FakeAgentCatalog();
        var registry = new WorkflowRegistry(new InMemoryStateStore(), Context() with { Agents = catalog });
        var draft = await registry.CreateAsync(Tenant, AgentFlowAt(3));
        await Refused(ErrorCode.WorkflowInvalid, () => registry.TransitionAsync(Tenant, "agentic", draft.Version, DefinitionState.Validated).AsTask());

        catalog.Publish(Tenant, "summarizer", 3);
        Assert.Equal(DefinitionState.Validated, (await registry.TransitionAsync(Tenant, "agentic", draft.Version, DefinitionState.Validated)).State);
        // Publishing checks again: the agent was archived in between.
        catalog.Unpublish(Tenant, "summarizer", 3);
        await Refused(ErrorCode.WorkflowInvalid, () => registry.TransitionAsync(Tenant, "agentic", draft.Version, DefinitionState.Published).AsTask());
        catalog.Publish(Tenant, "summarizer", 3);
        Assert.Equal(DefinitionState.Published, (await registry.TransitionAsync(Tenant, "agentic", draft.Version, DefinitionState.Published)).State);
        Assert.Equal(2, (await registry.RegisterAsync(Tenant, AgentFlowAt(3))).Version);
    }

    [Fact]
    public void Agent_version_is_checked_for_shape_in_every_state()
    {
        var zero = AgentFlowAt(0);
        Assert.Equal("ask", Assert.Throws<WayangException>(() => WorkflowValidator.ValidateStructure(zero, Ctx)).Error.Details["node"]);
        var onTask = OneTask();
        onTask.Nodes[0].AgentVersion = 1;
        var ex = Assert.Throws<WayangException>(() => WorkflowValidator.ValidateStructure(onTask, Ctx));
        Assert.Equal(ErrorCode.WorkflowInvalid, ex.Code);
        Assert.Contains("agentVersion", ex.Error.Details["reason"], StringComparison.Ordinal);
        // Without a catalog the version stays optional (the agent is a name for the inference plane).
        WorkflowValidator.Validate(AgentFlow(), Ctx, Tenant);
    }

    [Fact]
    public async Task Agent_nodes_carry_their_version_to_the_inference_plane()
    {
        var catalog = new FakeAgentCatalog();
        catalog.Publish(Tenant, "summarizer", 2);
        var options = EngineHarness.DefaultOptions();
        options.AgentCatalog = catalog;
        var gateway = new ScriptedGateway();
        await using var h = await EngineHarness.StartAsync(options, gateway);
        await Refused(ErrorCode.WorkflowInvalid, () => h.RegisterAsync(AgentFlow()));
        await h.RegisterAsync(AgentFlowAt(2));
        var executor = h.Connect();
        await h.SubmitAsync("agentic");
        await executor.NextAsync("the task after the agent");
        var call = Assert.Single(gateway.Calls);
        Assert.Equal(("summarizer", 2), (call.Agent, call.AgentVersion));
    }

    // ---- what runs ----

    [Fact]
    public async Task Only_published_versions_run_and_version_zero_is_the_latest_published()
    {
        await using var h = await EngineHarness.StartAsync();
        var e = h.Engine;
        await e.CreateWorkflowAsync(Tenant, OneTask("orders"));                                 // 1 DRAFT
        var none = await Refused(ErrorCode.WorkflowNotPublished, () => h.SubmitAsync("orders"));
        Assert.Contains("orders", none.Message, StringComparison.Ordinal);
        await h.RegisterAsync(OneTask("orders"));                                                // 2 PUBLISHED
        await e.CreateWorkflowAsync(Tenant, OneTask("orders"));                                 // 3 VALIDATED
        await e.TransitionWorkflowAsync(Tenant, "orders", 3, DefinitionState.Validated);
        await h.RegisterAsync(OneTask("orders"));                                                // 4 PUBLISHED, then ARCHIVED
        await e.TransitionWorkflowAsync(Tenant, "orders", 4, DefinitionState.Archived);

        foreach (int version in new[] { 1, 3, 4 })
            await Refused(ErrorCode.WorkflowNotPublished, () => h.SubmitAsync("orders", version: version));
        await Refused(ErrorCode.WorkflowNotFound, () => h.SubmitAsync("orders", version: 5));
        await Refused(ErrorCode.WorkflowNotFound, () => h.SubmitAsync("missing"));
        await Refused(ErrorCode.WorkflowNotFound, () => h.SubmitAsync("orders", tenant: "other"));
        await Refused(ErrorCode.WorkflowNotFound, () => h.SubmitAsync("orders", version: 2, tenant: "other"));

        Assert.Equal(2, (await h.SubmitAsync("orders")).WorkflowVersion);
        Assert.Equal(2, (await h.SubmitAsync("orders", version: 2)).WorkflowVersion);
        await e.TransitionWorkflowAsync(Tenant, "orders", 3, DefinitionState.Published);
        Assert.Equal(3, (await h.SubmitAsync("orders")).WorkflowVersion);
    }

    [Fact]
    public async Task Archiving_is_refused_while_a_run_is_unfinished_and_allowed_after_it_completes()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask("orders"));
        var executor = h.Connect();
        var run = await h.SubmitAsync("orders");
        var task = await executor.NextAsync();

        var ex = await Refused(ErrorCode.DefinitionInUse, () => h.Engine.TransitionWorkflowAsync(Tenant, "orders", 1, DefinitionState.Archived).AsTask());
        Assert.Contains("1 unfinished run", ex.Message, StringComparison.Ordinal);
        Assert.Equal(DefinitionState.Published, h.Engine.GetWorkflowVersion(Tenant, "orders", 1)!.State);
        // A refused archive leaves the version runnable.
        var second = await h.SubmitAsync("orders");
        await Refused(ErrorCode.DefinitionInUse, () => h.Engine.TransitionWorkflowAsync(Tenant, "orders", 1, DefinitionState.Archived).AsTask());

        await h.SucceedAsync(executor, task);
        await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        await h.Engine.SuspendRunAsync(Tenant, second.RunId);
        // Suspended is not finished.
        await Refused(ErrorCode.DefinitionInUse, () => h.Engine.TransitionWorkflowAsync(Tenant, "orders", 1, DefinitionState.Archived).AsTask());
        await h.Engine.CancelRunAsync(Tenant, second.RunId, "done with it");

        var archived = await h.Engine.TransitionWorkflowAsync(Tenant, "orders", 1, DefinitionState.Archived);
        Assert.Equal(DefinitionState.Archived, archived.State);
        await Refused(ErrorCode.WorkflowNotPublished, () => h.SubmitAsync("orders"));
    }

    [Fact]
    public async Task A_failed_run_on_an_archived_version_can_still_be_replayed_because_it_pinned_the_version()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(RetryingTask("flaky", maxAttempts: 1));
        var executor = h.Connect();
        var run = await h.SubmitAsync("flaky");
        await h.FailAsync(executor, await executor.NextAsync());
        await h.WaitStatusAsync(run.RunId, RunStatus.Failed);
        await h.Engine.TransitionWorkflowAsync(Tenant, "flaky", 1, DefinitionState.Archived);

        var dl = Assert.Single(h.Engine.ListDeadLetters(Tenant, new DeadLetterFilter()));
        Assert.True(Assert.Single(await h.Engine.ReplayDeadLettersAsync(Tenant, [dl.Id], null, 0)).Replayed);
        await h.SucceedAsync(executor, await executor.NextAsync("the replayed attempt"));
        var done = await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        Assert.Equal(1, done.WorkflowVersion);
    }

    [Fact]
    public async Task A_submission_racing_an_archive_never_starts_a_run_on_the_archived_version()
    {
        await using var h = await EngineHarness.StartAsync();
        for (int i = 0; i < 200; i++)
        {
            var id = $"race-{i}";
            await h.RegisterAsync(OneTask(id));
            using var go = new ManualResetEventSlim();
            var submit = Task.Run(async () =>
            {
                go.Wait();
                return await h.SubmitAsync(id, version: 1);
            });
            var archive = Task.Run(async () =>
            {
                go.Wait();
                return await h.Engine.TransitionWorkflowAsync(Tenant, id, 1, DefinitionState.Archived);
            });
            go.Set();
            var outcomes = await Task.WhenAll(Outcome(submit), Outcome(archive));
            // Exactly one wins: the run (and the archive is refused as in use), or the archive (and the submission
            // finds the version no longer published).
            Assert.Single(outcomes, o => o == ErrorCode.None);
            Assert.Single(outcomes, o => o is ErrorCode.DefinitionInUse or ErrorCode.WorkflowNotPublished);
        }

        static async Task<ErrorCode> Outcome(Task task)
        {
            try
            {
                await task;
                return ErrorCode.None;
            }
            catch (WayangException ex)
            {
                return ex.Code;
            }
        }
    }

    // The registry's half of the race above, made deterministic: a submission that checks while the archive is
    // deciding waits for the decision. Counted by the archive (refused): it runs; not counted (archived): refused.
    [Theory]
    [InlineData(1, true)]
    [InlineData(0, false)]
    public async Task A_run_check_during_an_archive_waits_for_its_decision(int activeRuns, bool runnable)
    {
        var usage = new CheckingUsage { Active = activeRuns };
        var registry = new WorkflowRegistry(new InMemoryStateStore(), Ctx, usage: usage);
        usage.Registry = registry;
        var workflow = await registry.RegisterAsync(Tenant, OneTask("orders"));
        usage.Workflow = workflow;

        var archive = registry.TransitionAsync(Tenant, "orders", 1, DefinitionState.Archived).AsTask();
        if (runnable)
            await Refused(ErrorCode.DefinitionInUse, () => archive);
        else
            Assert.Equal(DefinitionState.Archived, (await archive).State);
        Assert.Equal(runnable, await usage.CheckedDuringArchive!);
        Assert.Equal(runnable, registry.IsRunnable(workflow));
    }

    private sealed class CheckingUsage : IWorkflowVersionUsage
    {
        public int Active;
        public WorkflowRegistry Registry = null!;
        public Planning.CompiledWorkflow Workflow = null!;
        public Task<bool>? CheckedDuringArchive;

        // Called while the version is marked: a submission checks now, on another thread.
        public int ActiveRuns(string tenantId, string workflowId, int version)
        {
            CheckedDuringArchive = Task.Run(() => Registry.IsRunnable(Workflow));
            // It cannot answer before the archive has decided (a bounded negative check: a slow machine only makes it
            // weaker, never false).
            Assert.False(CheckedDuringArchive.Wait(50));
            return Active;
        }
    }

    // ---- durability ----

    [Fact]
    public async Task States_times_and_active_runs_survive_a_restart_over_the_real_store()
    {
        using var dir = new TempDirectory("lifecycle");
        var time = Clock();
        string runId;
        IReadOnlyList<WorkflowVersionInfo> before;
        await using (var h = await EngineHarness.StartOnDiskAsync(dir.Path, time))
        {
            var e = h.Engine;
            await e.CreateWorkflowAsync(Tenant, OneTask("orders"));
            time.Advance(TimeSpan.FromSeconds(1));
            await e.TransitionWorkflowAsync(Tenant, "orders", 1, DefinitionState.Validated);
            await h.RegisterAsync(OneTask("orders"));
            time.Advance(TimeSpan.FromSeconds(1));
            await e.TransitionWorkflowAsync(Tenant, "orders", 1, DefinitionState.Published);
            await e.CreateWorkflowAsync(Tenant, OneTask("orders"));
            time.Advance(TimeSpan.FromSeconds(1));
            await e.TransitionWorkflowAsync(Tenant, "orders", 3, DefinitionState.Archived);
            runId = (await h.SubmitAsync("orders", version: 2)).RunId;
            before = [.. Enumerable.Range(1, 3).Select(v => e.GetWorkflowVersion(Tenant, "orders", v)!)];
        }

        await using var reopened = await EngineHarness.StartOnDiskAsync(dir.Path, time);
        var after = Enumerable.Range(1, 3).Select(v => reopened.Engine.GetWorkflowVersion(Tenant, "orders", v)!).ToList();
        Assert.Equal([DefinitionState.Published, DefinitionState.Published, DefinitionState.Archived], after.Select(v => v.State));
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal((before[i].CreatedAtMs, before[i].ValidatedAtMs, before[i].PublishedAtMs, before[i].ArchivedAtMs),
                (after[i].CreatedAtMs, after[i].ValidatedAtMs, after[i].PublishedAtMs, after[i].ArchivedAtMs));
        }
        Assert.Equal((1_000_000, 1_001_000, 1_002_000), (after[0].CreatedAtMs, after[0].ValidatedAtMs!.Value, after[0].PublishedAtMs!.Value));

        // The count of unfinished runs is rebuilt from the recovered runs.
        await Refused(ErrorCode.DefinitionInUse, () => reopened.Engine.TransitionWorkflowAsync(Tenant, "orders", 2, DefinitionState.Archived).AsTask());
        var executor = reopened.Connect();
        await reopened.SucceedAsync(executor, await executor.NextAsync());
        await reopened.WaitStatusAsync(runId, RunStatus.Completed);
        await reopened.Engine.TransitionWorkflowAsync(Tenant, "orders", 2, DefinitionState.Archived);
        Assert.Equal(1, (await reopened.SubmitAsync("orders")).WorkflowVersion);
        Assert.Equal(4, (await reopened.Engine.CreateWorkflowAsync(Tenant, OneTask("orders"))).Version);
    }

    [Fact]
    public async Task Versions_stored_before_the_lifecycle_load_as_published_over_the_real_store()
    {
        using var dir = new TempDirectory("lifecycle-legacy");
        var time = Clock();
        await using (var h = await EngineHarness.StartOnDiskAsync(dir.Path, time))
        {
            // What the registry wrote before: the definition and its registration time, no lifecycle record.
            var legacy = OneTask("orders");
            legacy.Version = 1;
            var definitionJson = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(legacy, ExecutionJsonContext.Default.WorkflowDefinition);
            var at = new byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(at, 777_000);
            await h.Store.PutAsync(Encoding.UTF8.GetBytes("wft/acme/orders/0000000001"), at);
            await h.Store.PutAsync(Encoding.UTF8.GetBytes("wf/acme/orders/0000000001"), definitionJson);
        }

        await using var reopened = await EngineHarness.StartOnDiskAsync(dir.Path, time);
        var v1 = reopened.Engine.GetWorkflowVersion(Tenant, "orders", 1)!;
        Assert.Equal((DefinitionState.Published, 777_000L, (long?)777_000, (long?)777_000, (long?)null),
            (v1.State, v1.CreatedAtMs, v1.ValidatedAtMs, v1.PublishedAtMs, v1.ArchivedAtMs));
        var summary = Assert.Single(reopened.Engine.ListWorkflows(Tenant));
        Assert.Equal((1, 777_000L), (summary.LatestPublishedVersion, summary.UpdatedAtMs));
        Assert.Equal(1, (await reopened.SubmitAsync("orders")).WorkflowVersion);
        // It follows the lifecycle from here: a new version after it, and it can be archived once unused.
        Assert.Equal(2, (await reopened.Engine.CreateWorkflowAsync(Tenant, OneTask("orders"))).Version);
        await Refused(ErrorCode.DefinitionStateConflict, () => reopened.Engine.TransitionWorkflowAsync(Tenant, "orders", 1, DefinitionState.Validated).AsTask());
    }

    [Fact]
    public async Task A_corrupt_lifecycle_record_fails_loading_with_storage_corrupt()
    {
        var store = new InMemoryStateStore();
        await new WorkflowRegistry(store, Ctx).CreateAsync(Tenant, OneTask("orders"));
        await store.PutAsync(Encoding.UTF8.GetBytes("wfs/acme/orders/0000000001"), """{"state":"SHIPPED","createdAtMs":1}"""u8.ToArray());
        Assert.Equal(ErrorCode.StorageCorrupt, Assert.Throws<WayangException>(() => new WorkflowRegistry(store, Ctx)).Code);
    }
}

// Published agent versions per tenant, as the control plane's agent registry would answer.
internal sealed class FakeAgentCatalog : IAgentCatalog
{
    private readonly HashSet<(string Tenant, string Agent, int Version)> _published = [];
    private readonly Lock _gate = new();

    public void Publish(string tenant, string agent, int version)
    {
        lock (_gate)
            _published.Add((tenant, agent, version));
    }

    public void Unpublish(string tenant, string agent, int version)
    {
        lock (_gate)
            _published.Remove((tenant, agent, version));
    }

    public bool IsPublished(string tenantId, string agentId, int version)
    {
        lock (_gate)
            return _published.Contains((tenantId, agentId, version));
    }
}
