using System.Text;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Definitions;

namespace Wayang.Fast.Control.Tests;

public sealed class AgentRegistryTests
{
    private readonly InMemoryStateStore _store = new();
    private readonly ManualTime _time = new();

    private static byte[] Agent(string id = "bot", string model = "gpt-4o", string extra = "") =>
        Encoding.UTF8.GetBytes($$"""{"id":"{{id}}","model":"{{model}}"{{extra}}}""");

    private AgentRegistry NewRegistry() => new(_store, _time);

    [Fact]
    public async Task Versions_are_numbered_from_1_per_agent_and_start_in_DRAFT()
    {
        var registry = NewRegistry();
        var v1 = await registry.CreateAsync("acme", Agent());
        var v2 = await registry.CreateAsync("acme", Agent(extra: ",\"version\":41"));
        var other = await registry.CreateAsync("acme", Agent("other"));

        Assert.Equal((1, 2, 1), (v1.Version, v2.Version, other.Version));
        // The client's version is ignored; the registry's is in the definition.
        Assert.Equal(2, v2.Definition.Version);
        Assert.All([v1, v2, other], v => Assert.Equal(DefinitionState.Draft, v.State));
        Assert.Equal([new DefinitionStateChange(DefinitionState.Draft, _time.NowMs)], v1.History);
        Assert.True(_store.TryGet("agent/acme/bot/0000000002"u8, out _));
    }

    [Fact]
    public async Task An_invalid_definition_is_refused_with_every_violation_and_nothing_is_stored()
    {
        var registry = NewRegistry();
        var ex = await Assert.ThrowsAsync<WayangException>(() => registry.CreateAsync("acme", Agent("Bad", extra: ",\"modelAlias\":\"x\",\"foo\":1")).AsTask());

        Assert.Equal(ErrorCode.AgentInvalid, ex.Code);
        Assert.Equal("3", ex.Error.Details["violationCount"]);
        Assert.Equal(0, _store.Writes);
        Assert.Empty(registry.List("acme"));
    }

    [Fact]
    public async Task ValidateOnly_checks_everything_and_stores_nothing()
    {
        var registry = NewRegistry();
        Assert.Equal("bot", registry.ValidateOnly(Agent()).Id);
        var ex = Assert.Throws<WayangException>(() => registry.ValidateOnly(Agent(extra: ",\"promptTemplate\":\"{{x}}\"")));

        Assert.Equal(ErrorCode.AgentInvalid, ex.Code);
        Assert.Equal("placeholder '{{x}}' is not declared in variables", ex.Error.Details["reason"]);
        Assert.Equal(0, _store.Writes);
        await Task.CompletedTask;
    }

    [Fact]
    public async Task A_tenant_id_that_is_not_a_name_is_refused()
    {
        var ex = await Assert.ThrowsAsync<WayangException>(() => NewRegistry().CreateAsync("Acme Corp", Agent()).AsTask());
        Assert.Equal(ErrorCode.InvalidArgument, ex.Code);
    }

    public static TheoryData<DefinitionState, DefinitionState> EveryPair()
    {
        var data = new TheoryData<DefinitionState, DefinitionState>();
        DefinitionState[] reachable = [DefinitionState.Draft, DefinitionState.Validated, DefinitionState.Published, DefinitionState.Archived];
        foreach (var from in reachable)
        {
            foreach (var to in Enum.GetValues<DefinitionState>())
                data.Add(from, to);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(EveryPair))]
    public async Task Every_transition_is_allowed_or_refused_as_the_lifecycle_table_says(DefinitionState from, DefinitionState to)
    {
        var registry = NewRegistry();
        await registry.CreateAsync("acme", Agent());
        if (from != DefinitionState.Draft)
            await registry.TransitionAsync("acme", "bot", 1, from);
        int writes = _store.Writes;

        if (DefinitionLifecycle.IsAllowed(from, to))
        {
            var moved = await registry.TransitionAsync("acme", "bot", 1, to);
            Assert.Equal(to, moved.State);
            Assert.Equal(to, moved.History[^1].State);
            Assert.Equal(to, NewRegistry().Get("acme", "bot", 1).State);
        }
        else
        {
            var ex = await Assert.ThrowsAsync<WayangException>(() => registry.TransitionAsync("acme", "bot", 1, to).AsTask());
            Assert.Equal(ErrorCode.DefinitionStateConflict, ex.Code);
            Assert.Equal(from, registry.Get("acme", "bot", 1).State);
            Assert.Equal(writes, _store.Writes);
        }
    }

    [Fact]
    public async Task Publishing_a_draft_passes_through_VALIDATED_and_records_both_steps()
    {
        var registry = NewRegistry();
        await registry.CreateAsync("acme", Agent());
        long createdAt = _time.NowMs;
        _time.Advance(1000);

        var published = await registry.TransitionAsync("acme", "bot", 1, DefinitionState.Published);

        Assert.Equal(
            [new(DefinitionState.Draft, createdAt), new(DefinitionState.Validated, createdAt + 1000), new DefinitionStateChange(DefinitionState.Published, createdAt + 1000)],
            published.History);
        Assert.Equal(createdAt, published.CreatedAtMs);
        Assert.Equal(createdAt + 1000, published.UpdatedAtMs);
    }

    [Fact]
    public async Task Each_step_taken_separately_has_its_own_time()
    {
        var registry = NewRegistry();
        await registry.CreateAsync("acme", Agent());
        _time.Advance(10);
        await registry.TransitionAsync("acme", "bot", 1, DefinitionState.Validated);
        _time.Advance(10);
        await registry.TransitionAsync("acme", "bot", 1, DefinitionState.Published);
        _time.Advance(10);
        var archived = await registry.TransitionAsync("acme", "bot", 1, DefinitionState.Archived);

        Assert.Equal([DefinitionState.Draft, DefinitionState.Validated, DefinitionState.Published, DefinitionState.Archived], archived.History.Select(h => h.State));
        Assert.Equal([0L, 10, 20, 30], archived.History.Select(h => h.AtMs - archived.CreatedAtMs));
    }

    [Fact]
    public async Task Archiving_a_version_in_use_is_refused_and_the_callback_names_the_version()
    {
        var registry = NewRegistry();
        await registry.CreateAsync("acme", Agent());
        await registry.TransitionAsync("acme", "bot", 1, DefinitionState.Published);
        (string, string, int)? asked = null;

        var ex = await Assert.ThrowsAsync<WayangException>(() => registry.TransitionAsync("acme", "bot", 1, DefinitionState.Archived, (t, a, v) =>
        {
            asked = (t, a, v);
            return true;
        }).AsTask());

        Assert.Equal(ErrorCode.DefinitionInUse, ex.Code);
        Assert.Equal(("acme", "bot", 1), asked);
        Assert.Equal(DefinitionState.Published, registry.Get("acme", "bot", 1).State);
        Assert.Equal(DefinitionState.Archived, (await registry.TransitionAsync("acme", "bot", 1, DefinitionState.Archived, (_, _, _) => false)).State);
    }

    [Fact]
    public async Task The_in_use_callback_is_not_asked_for_other_transitions_nor_for_refused_ones()
    {
        var registry = NewRegistry();
        await registry.CreateAsync("acme", Agent());
        int asked = 0;
        await registry.TransitionAsync("acme", "bot", 1, DefinitionState.Published, (_, _, _) => ++asked > 0);
        await registry.TransitionAsync("acme", "bot", 1, DefinitionState.Archived);
        await Assert.ThrowsAsync<WayangException>(() => registry.TransitionAsync("acme", "bot", 1, DefinitionState.Archived, (_, _, _) => ++asked > 0).AsTask());

        Assert.Equal(0, asked);
    }

    [Fact]
    public async Task Version_0_is_the_latest_published_version()
    {
        var registry = NewRegistry();
        await registry.CreateAsync("acme", Agent(model: "m1"));
        await registry.CreateAsync("acme", Agent(model: "m2"));
        await registry.CreateAsync("acme", Agent(model: "m3"));
        Assert.False(registry.IsPublished("acme", "bot", 0));
        Assert.Equal(ErrorCode.AgentNotFound, Assert.Throws<WayangException>(() => registry.Get("acme", "bot", 0)).Code);

        await registry.TransitionAsync("acme", "bot", 1, DefinitionState.Published);
        Assert.Equal("m1", registry.Get("acme", "bot", 0).Definition.Model);
        await registry.TransitionAsync("acme", "bot", 2, DefinitionState.Published);
        Assert.Equal(2, registry.Get("acme", "bot", 0).Version);
        await registry.TransitionAsync("acme", "bot", 2, DefinitionState.Archived);
        Assert.Equal(1, registry.Get("acme", "bot", 0).Version);

        Assert.True(registry.IsPublished("acme", "bot", 0));
        Assert.True(registry.IsPublished("acme", "bot", 1));
        Assert.False(registry.IsPublished("acme", "bot", 2));
        Assert.False(registry.IsPublished("acme", "bot", 3));
        var summary = Assert.Single(registry.List("acme"));
        Assert.Equal(("bot", 3, 1), (summary.AgentId, summary.LatestVersion, summary.PublishedVersion));
        Assert.Equal([DefinitionState.Published, DefinitionState.Archived, DefinitionState.Draft], summary.Versions.Select(v => v.State));
    }

    [Fact]
    public async Task Versions_are_immutable_a_change_is_a_new_version()
    {
        var registry = NewRegistry();
        await registry.CreateAsync("acme", Agent(extra: ",\"description\":\"first\""));
        var published = await registry.TransitionAsync("acme", "bot", 1, DefinitionState.Published);

        // What a caller gets is its own copy.
        published.Definition.Description = "changed by a caller";
        registry.Get("acme", "bot", 1).Definition.Model = "changed too";
        Assert.Equal("first", registry.Get("acme", "bot", 1).Definition.Description);
        Assert.Equal("gpt-4o", registry.Get("acme", "bot", 1).Definition.Model);

        var second = await registry.CreateAsync("acme", Agent(extra: ",\"description\":\"second\""));
        Assert.Equal(2, second.Version);
        Assert.Equal("first", registry.Get("acme", "bot", 1).Definition.Description);
        Assert.Equal(DefinitionState.Published, registry.Get("acme", "bot", 1).State);
        // A published version can only be archived, never edited back into a draft.
        Assert.Equal(ErrorCode.DefinitionStateConflict, (await Assert.ThrowsAsync<WayangException>(() => registry.TransitionAsync("acme", "bot", 1, DefinitionState.Draft).AsTask())).Code);
    }

    [Fact]
    public async Task Another_tenants_agent_is_indistinguishable_from_a_missing_one()
    {
        var registry = NewRegistry();
        await registry.CreateAsync("acme", Agent());
        await registry.TransitionAsync("acme", "bot", 1, DefinitionState.Published);

        var foreign = Assert.Throws<WayangException>(() => registry.Get("globex", "bot", 1));
        var missing = Assert.Throws<WayangException>(() => registry.Get("globex", "nobody", 1));
        var missingVersion = Assert.Throws<WayangException>(() => registry.Get("acme", "bot", 9));
        Assert.All([foreign, missing, missingVersion], ex => Assert.Equal(ErrorCode.AgentNotFound, ex.Code));
        // The same message and details as for a tenant that has no agent at all, and the same shape as a missing version.
        var nowhere = Assert.Throws<WayangException>(() => registry.Get("empty-tenant", "bot", 1));
        Assert.Equal(nowhere.Error.Message, foreign.Error.Message);
        Assert.Equal(nowhere.Error.Details, foreign.Error.Details);
        Assert.Equal(missingVersion.Error.Message.Replace("9", "1", StringComparison.Ordinal), foreign.Error.Message);

        var transition = await Assert.ThrowsAsync<WayangException>(() => registry.TransitionAsync("globex", "bot", 1, DefinitionState.Archived).AsTask());
        Assert.Equal(ErrorCode.AgentNotFound, transition.Code);
        Assert.Equal(foreign.Error.Message, transition.Error.Message);
        Assert.False(registry.IsPublished("globex", "bot", 1));
        Assert.False(registry.TryGet("globex", "bot", 0, out _));
        Assert.Empty(registry.List("globex"));
        Assert.Equal(DefinitionState.Published, registry.Get("acme", "bot", 1).State);
    }

    [Fact]
    public async Task A_new_registry_over_the_same_store_sees_every_version_with_its_state_and_history()
    {
        var registry = NewRegistry();
        await registry.CreateAsync("acme", Agent(extra: ",\"promptTemplate\":\"{{q}}\",\"variables\":[{\"name\":\"q\",\"required\":true}]"));
        await registry.CreateAsync("acme", Agent());
        await registry.CreateAsync("globex", Agent("helper", extra: ",\"providerPreference\":\"LOCAL\""));
        _time.Advance(5);
        await registry.TransitionAsync("acme", "bot", 1, DefinitionState.Published);
        await registry.TransitionAsync("acme", "bot", 2, DefinitionState.Validated);

        var reloaded = NewRegistry();

        foreach (var (tenant, id, version) in new[] { ("acme", "bot", 1), ("acme", "bot", 2), ("globex", "helper", 1) })
        {
            var before = registry.Get(tenant, id, version);
            var after = reloaded.Get(tenant, id, version);
            Assert.Equal((before.State, before.Version), (after.State, after.Version));
            Assert.Equal(before.History, after.History);
            Assert.Equal(before.Definition.PromptTemplate, after.Definition.PromptTemplate);
            Assert.Equal(before.Definition.ProviderPreference, after.Definition.ProviderPreference);
            Assert.Equal(before.Definition.Variables.Select(v => (v.Name, v.Required)), after.Definition.Variables.Select(v => (v.Name, v.Required)));
        }
        Assert.Equal(3, (await reloaded.CreateAsync("acme", Agent())).Version);
        Assert.Equal(1, reloaded.Get("acme", "bot", 0).Version);
    }

    [Fact]
    public async Task Unknown_versions_and_ids_are_AGENT_NOT_FOUND_for_transitions()
    {
        var registry = NewRegistry();
        await registry.CreateAsync("acme", Agent());

        foreach (var (id, version) in new[] { ("bot", 2), ("bot", 0), ("bot", -1), ("nobody", 1) })
        {
            var ex = await Assert.ThrowsAsync<WayangException>(() => registry.TransitionAsync("acme", id, version, DefinitionState.Published).AsTask());
            Assert.Equal(ErrorCode.AgentNotFound, ex.Code);
        }
    }

    private sealed class ManualTime : TimeProvider
    {
        private DateTimeOffset _now = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

        public long NowMs => _now.ToUnixTimeMilliseconds();

        public void Advance(long ms) => _now = _now.AddMilliseconds(ms);

        public override DateTimeOffset GetUtcNow() => _now;
    }
}
