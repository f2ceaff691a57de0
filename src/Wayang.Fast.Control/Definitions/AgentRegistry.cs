using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Control.Definitions;

// One version of an agent as callers see it. Definition is the caller's own copy.
public sealed record AgentVersion(string TenantId, string AgentId, int Version, DefinitionState State, IReadOnlyList<DefinitionStateChange> History, AgentDefinition Definition)
{
    public long CreatedAtMs => History[0].AtMs;
    public long UpdatedAtMs => History[^1].AtMs;
}

public sealed record AgentVersionSummary(int Version, DefinitionState State, long UpdatedAtMs);

// PublishedVersion: the latest PUBLISHED version (what version 0 resolves to), 0 when none is.
public sealed record AgentSummary(string AgentId, int LatestVersion, int PublishedVersion, IReadOnlyList<AgentVersionSummary> Versions, long UpdatedAtMs);

// Tenant-scoped, versioned agent definitions. Every version is kept, each with its lifecycle state and the time of
// every state it has been in, as one JSON record under "agent/<tenantId>/<agentId>/<version:D10>" (rewritten on each
// transition; the definition inside never changes: a change is a new version). Everything is loaded at construction;
// reads are lock-free over immutable snapshots, mutations are serialized and visible only once durable.
// Another tenant's agent answers exactly like a missing one (AGENT_NOT_FOUND, same message).
public sealed class AgentRegistry
{
    private const string Prefix = "agent/";

    private readonly IStateStore _store;
    private readonly TimeProvider _time;
    // Mutations are admin calls: one at a time makes "latest + 1" and check-then-write trivially right.
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, Entry[]>> _tenants = new(StringComparer.Ordinal);

    public AgentRegistry(IStateStore store, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        _store = store;
        _time = time ?? TimeProvider.System;
        Load();
    }

    // Schema and semantic checks; stores nothing. The parsed definition, or AGENT_INVALID listing every violation.
    public AgentDefinition ValidateOnly(ReadOnlySpan<byte> json) => AgentValidator.Parse(json);

    // A new version (latest + 1, starting at 1) in DRAFT. The JSON must pass every check.
    public async ValueTask<AgentVersion> CreateAsync(string tenantId, ReadOnlyMemory<byte> json, CancellationToken cancellationToken = default)
    {
        if (!Ids.IsValidName(tenantId))
            throw new WayangException(ErrorCode.InvalidArgument, $"'{tenantId}' is not a valid tenant id.");
        var definition = AgentValidator.Parse(json.Span);

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var agents = _tenants.GetOrAdd(tenantId, _ => new(StringComparer.Ordinal));
            var existing = agents.TryGetValue(definition.Id, out var versions) ? versions : [];
            definition.Version = existing.Length == 0 ? 1 : existing[^1].Version + 1;
            var entry = new Entry(definition.Version, DefinitionState.Draft, [new DefinitionStateChange(DefinitionState.Draft, NowMs())], definition);
            await PersistAsync(tenantId, definition.Id, entry).ConfigureAwait(false);
            agents[definition.Id] = [.. existing, entry];
            return entry.ToVersion(tenantId, definition.Id);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // Moves one version along the lifecycle (DefinitionLifecycle.IsAllowed). DRAFT -> PUBLISHED passes through
    // VALIDATED: the checks run again and both steps are recorded. Archiving asks inUse(tenantId, agentId, version)
    // first and refuses with DEFINITION_IN_USE when it answers true.
    public async ValueTask<AgentVersion> TransitionAsync(string tenantId, string agentId, int version, DefinitionState target,
        Func<string, string, int, bool>? inUse = null, CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!TryFind(tenantId, agentId, out var versions) || FindIndex(versions, version) is not (>= 0 and var index))
                throw NotFound(agentId, version);
            var entry = versions[index];
            if (!DefinitionLifecycle.IsAllowed(entry.State, target))
            {
                throw new WayangException(new WayangError(ErrorCode.DefinitionStateConflict,
                    $"agent '{agentId}' version {version} is {DefinitionLifecycle.NameOf(entry.State)} and cannot become {DefinitionLifecycle.NameOf(target)}.",
                    details: new Dictionary<string, string>(StringComparer.Ordinal) { ["state"] = DefinitionLifecycle.NameOf(entry.State), ["target"] = DefinitionLifecycle.NameOf(target) }));
            }
            if (target == DefinitionState.Archived && inUse is not null && inUse(tenantId, agentId, version))
            {
                throw new WayangException(new WayangError(ErrorCode.DefinitionInUse,
                    $"agent '{agentId}' version {version} is in use and cannot be archived.",
                    details: new Dictionary<string, string>(StringComparer.Ordinal) { ["state"] = DefinitionLifecycle.NameOf(entry.State) }));
            }

            long now = NowMs();
            var history = new List<DefinitionStateChange>(entry.History);
            if (target == DefinitionState.Validated || (target == DefinitionState.Published && entry.State == DefinitionState.Draft))
            {
                // The definition cannot have changed, but the checks may have (a newer build): what becomes VALIDATED
                // passes today's.
                var violations = AgentValidator.Validate(JsonSerializer.SerializeToUtf8Bytes(entry.Definition, AgentJsonContext.Default.AgentDefinition));
                if (violations.Count > 0)
                    throw DefinitionSchemas.ToException(DefinitionKind.Agent, violations);
                history.Add(new DefinitionStateChange(DefinitionState.Validated, now));
            }
            if (target != DefinitionState.Validated)
                history.Add(new DefinitionStateChange(target, now));

            var updated = entry with { State = target, History = [.. history] };
            await PersistAsync(tenantId, agentId, updated).ConfigureAwait(false);
            var replaced = (Entry[])versions.Clone();
            replaced[index] = updated;
            _tenants[tenantId][agentId] = replaced;
            return updated.ToVersion(tenantId, agentId);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // version 0: the latest PUBLISHED version. AGENT_NOT_FOUND for an unknown agent or version (or none published).
    public AgentVersion Get(string tenantId, string agentId, int version) =>
        TryGet(tenantId, agentId, version, out var found) ? found : throw NotFound(agentId, version);

    public bool TryGet(string tenantId, string agentId, int version, out AgentVersion found)
    {
        found = null!;
        if (!TryFind(tenantId, agentId, out var versions))
            return false;
        var entry = version == 0 ? LatestPublished(versions) : FindIndex(versions, version) is >= 0 and var index ? versions[index] : null;
        if (entry is null)
            return false;
        found = entry.ToVersion(tenantId, agentId);
        return true;
    }

    // version 0: whether any version is published.
    public bool IsPublished(string tenantId, string agentId, int version)
    {
        if (!TryFind(tenantId, agentId, out var versions))
            return false;
        if (version == 0)
            return LatestPublished(versions) is not null;
        return FindIndex(versions, version) is >= 0 and var index && versions[index].State == DefinitionState.Published;
    }

    public IReadOnlyList<AgentSummary> List(string tenantId)
    {
        if (tenantId is null || !_tenants.TryGetValue(tenantId, out var agents))
            return [];
        var list = new List<AgentSummary>(agents.Count);
        foreach (var (id, versions) in agents)
        {
            var summaries = Array.ConvertAll(versions, e => new AgentVersionSummary(e.Version, e.State, e.History[^1].AtMs));
            list.Add(new AgentSummary(id, versions[^1].Version, LatestPublished(versions)?.Version ?? 0, summaries, summaries.Max(s => s.UpdatedAtMs)));
        }
        list.Sort((a, b) => string.CompareOrdinal(a.AgentId, b.AgentId));
        return list;
    }

    private bool TryFind(string tenantId, string agentId, out Entry[] versions)
    {
        versions = [];
        if (tenantId is null || agentId is null || !_tenants.TryGetValue(tenantId, out var agents) || !agents.TryGetValue(agentId, out var found))
            return false;
        versions = found;
        return true;
    }

    private static Entry? LatestPublished(Entry[] versions)
    {
        for (int i = versions.Length - 1; i >= 0; i--)
        {
            if (versions[i].State == DefinitionState.Published)
                return versions[i];
        }
        return null;
    }

    // Versions are ascending and dense from 1, except after a partial load; search to be safe.
    private static int FindIndex(Entry[] versions, int version) => version < 1 ? -1 : Array.FindIndex(versions, e => e.Version == version);

    private async ValueTask PersistAsync(string tenantId, string agentId, Entry entry)
    {
        var record = new StoredAgentVersion
        {
            TenantId = tenantId,
            AgentId = agentId,
            Version = entry.Version,
            State = entry.State,
            History = [.. entry.History],
            Definition = entry.Definition,
        };
        // Not cancellable once issued: a write that may be durable must also become visible.
        await _store.PutAsync(Encoding.UTF8.GetBytes(Key(tenantId, agentId, entry.Version)),
            JsonSerializer.SerializeToUtf8Bytes(record, AgentStoreJsonContext.Default.StoredAgentVersion), CancellationToken.None).ConfigureAwait(false);
    }

    private static string Key(string tenantId, string agentId, int version) =>
        Prefix + VersionedKey.Suffix(tenantId, agentId, version);

    private void Load()
    {
        var loaded = new Dictionary<(string Tenant, string Id), List<Entry>>();
        foreach (var (keyBytes, value) in _store.ScanPrefix(Encoding.UTF8.GetBytes(Prefix)))
        {
            var suffix = Encoding.UTF8.GetString(keyBytes.AsSpan(Prefix.Length));
            if (!VersionedKey.TryParse(suffix, out var tenantId, out var agentId, out int version))
                throw Corrupt(suffix, "malformed key");
            StoredAgentVersion record;
            try
            {
                record = JsonSerializer.Deserialize(value, AgentStoreJsonContext.Default.StoredAgentVersion) ?? throw new JsonException("null record");
            }
            catch (JsonException ex)
            {
                throw Corrupt(suffix, ex.Message);
            }
            if (record.History.Count == 0 || record.Definition is null)
                throw Corrupt(suffix, "no history or no definition");
            // The key is authoritative; the checks are not re-run, so a version stored under older rules stays loadable.
            record.Definition.Version = version;
            var id = (tenantId, agentId);
            if (!loaded.TryGetValue(id, out var list))
                loaded[id] = list = [];
            list.Add(new Entry(version, record.State, [.. record.History], record.Definition));
        }
        foreach (var ((tenant, id), list) in loaded)
        {
            list.Sort((a, b) => a.Version.CompareTo(b.Version));
            _tenants.GetOrAdd(tenant, _ => new(StringComparer.Ordinal))[id] = [.. list];
        }
    }

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    // The same answer for a missing agent, a missing version and another tenant's agent.
    private static WayangException NotFound(string agentId, int version) => new(new WayangError(ErrorCode.AgentNotFound,
        version == 0 ? $"agent '{agentId}' has no published version." : $"agent '{agentId}' version {version} does not exist.",
        details: new Dictionary<string, string>(StringComparer.Ordinal) { ["agent"] = agentId ?? "", ["version"] = version.ToString(CultureInfo.InvariantCulture) }));

    private static WayangException Corrupt(string key, string reason) =>
        new(ErrorCode.StorageCorrupt, $"Stored agent definition '{key}' cannot be loaded: {reason}");

    // Immutable: a transition replaces the entry. Definition is never handed out (ToVersion copies it).
    private sealed record Entry(int Version, DefinitionState State, DefinitionStateChange[] History, AgentDefinition Definition)
    {
        public AgentVersion ToVersion(string tenantId, string agentId)
        {
            var copy = JsonSerializer.Deserialize(JsonSerializer.SerializeToUtf8Bytes(Definition, AgentJsonContext.Default.AgentDefinition), AgentJsonContext.Default.AgentDefinition)!;
            return new AgentVersion(tenantId, agentId, Version, State, Array.AsReadOnly(History), copy);
        }
    }
}
