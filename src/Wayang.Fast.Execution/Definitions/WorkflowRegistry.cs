using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Execution.Planning;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Execution.Definitions;

// Tenant-scoped, versioned workflow definitions with a lifecycle per version (DefinitionState: DRAFT -> VALIDATED ->
// PUBLISHED -> ARCHIVED, see DefinitionLifecycle). Every version is kept (runs pin the version they started with).
//
// Storage, per version, same suffix "<tenantId>/<workflowId>/<version:D10>":
//   "wf/..."  the definition's JSON (never rewritten: a change is a new version);
//   "wfs/..." the lifecycle record (WorkflowVersionRecord JSON: state and the times of its changes), rewritten on
//             each transition;
//   "wft/..." legacy: the registration time (8 bytes little-endian ms) of versions stored before the lifecycle. A
//             version without a "wfs/" record was registered by that code, which only had runnable versions, so it
//             loads as PUBLISHED.
// Everything is loaded at construction; reads are lock-free over immutable snapshots (a version's record is
// replaced, never mutated).
public sealed class WorkflowRegistry
{
    private const string DefinitionPrefix = "wf/";
    private const string StatePrefix = "wfs/";
    private const string LegacyTimePrefix = "wft/";

    private readonly IStateStore _store;
    private readonly ValidationContext _validation;
    private readonly TimeProvider _time;
    private readonly IWorkflowVersionUsage? _usage;
    // Writes are rare; one at a time makes "latest + 1", the transition checks and the publish order trivially right.
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, Versions>> _tenants = new(StringComparer.Ordinal);

    // usage: who knows the active runs of a version (the engine); null: archiving never finds a version in use.
    public WorkflowRegistry(IStateStore store, ValidationContext validation, TimeProvider? time = null, IWorkflowVersionUsage? usage = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(validation);
        _store = store;
        _validation = validation;
        _time = time ?? TimeProvider.System;
        _usage = usage;
        Load();
    }

    // Create and publish in one step: every check (references included), then stored as PUBLISHED with the next
    // version number. What registration meant before the lifecycle, so its callers see no difference.
    public async ValueTask<CompiledWorkflow> RegisterAsync(string tenantId, WorkflowDefinition definition, CancellationToken cancellationToken = default)
    {
        var copy = PrepareNew(tenantId, definition);
        WorkflowValidator.Validate(copy, _validation, tenantId);
        var slot = await StoreNewAsync(tenantId, copy, DefinitionState.Published, cancellationToken).ConfigureAwait(false);
        return slot.Workflow;
    }

    // A new DRAFT with the next version number. Only the structure is checked: the agents it names need not exist yet
    // (they are checked when it is validated or published).
    public async ValueTask<WorkflowVersionInfo> CreateAsync(string tenantId, WorkflowDefinition definition, CancellationToken cancellationToken = default)
    {
        var copy = PrepareNew(tenantId, definition);
        WorkflowValidator.ValidateStructure(copy, _validation);
        var slot = await StoreNewAsync(tenantId, copy, DefinitionState.Draft, cancellationToken).ConfigureAwait(false);
        return slot.Info();
    }

    // Moves one version along the lifecycle. DEFINITION_STATE_CONFLICT for a move the table does not allow (PUBLISHED
    // and ARCHIVED versions never change back); entering VALIDATED or PUBLISHED runs every check again, references
    // included (an agent may have been archived since the last check); ARCHIVED is refused with DEFINITION_IN_USE
    // while runs that are not finished use the version.
    public async ValueTask<WorkflowVersionInfo> TransitionAsync(string tenantId, string workflowId, int version, DefinitionState target,
        CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var slot = FindSlot(tenantId, workflowId, version)
                ?? throw new WayangException(ErrorCode.WorkflowNotFound, $"Workflow '{workflowId}' version {version} does not exist.");
            var record = slot.Record;
            var from = record.State;
            if (!DefinitionLifecycle.IsAllowed(from, target))
            {
                throw new WayangException(ErrorCode.DefinitionStateConflict,
                    $"Workflow '{workflowId}' version {version} is {DefinitionLifecycle.NameOf(from)}; it cannot move to {DefinitionLifecycle.NameOf(target)}.");
            }
            long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            WorkflowVersionRecord next;
            switch (target)
            {
                case DefinitionState.Validated or DefinitionState.Published:
                    WorkflowValidator.Validate(slot.Workflow.Definition, _validation, tenantId);
                    next = target == DefinitionState.Validated
                        ? record with { State = target, ValidatedAtMs = now }
                        : record with { State = target, ValidatedAtMs = record.ValidatedAtMs ?? now, PublishedAtMs = now };
                    await WriteRecordAsync(tenantId, workflowId, version, next).ConfigureAwait(false);
                    break;
                case DefinitionState.Archived:
                    next = record with { State = target, ArchivedAtMs = now };
                    await ArchiveAsync(slot, next).ConfigureAwait(false);
                    break;
                default:
                    throw new UnreachableException();
            }
            slot.Record = next;
            return slot.Info();
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // The version is marked as being archived BEFORE the active runs are counted, and the engine counts a new run
    // BEFORE it checks IsRunnable: whichever comes second sees the other (both sides are full fences), so no run can
    // start on a version that archiving found unused (see IsRunnable). Called under the write lock.
    private async ValueTask ArchiveAsync(VersionSlot slot, WorkflowVersionRecord next)
    {
        var workflow = slot.Workflow;
        Interlocked.Exchange(ref slot.Archiving, 1);
        try
        {
            int active = _usage?.ActiveRuns(workflow.TenantId, workflow.WorkflowId, workflow.Version) ?? 0;
            if (active > 0)
            {
                throw new WayangException(ErrorCode.DefinitionInUse,
                    $"Workflow '{workflow.WorkflowId}' version {workflow.Version} is used by {active.ToString(CultureInfo.InvariantCulture)} unfinished run(s); archive it when they have finished.");
            }
            await WriteRecordAsync(workflow.TenantId, workflow.WorkflowId, workflow.Version, next).ConfigureAwait(false);
            // Published before the mark is cleared (a release write): a reader that sees the mark cleared sees ARCHIVED.
            slot.Record = next;
        }
        finally
        {
            Volatile.Write(ref slot.Archiving, 0);
        }
    }

    // For running a workflow. version 0: the latest PUBLISHED version. WORKFLOW_NOT_FOUND when the workflow or the
    // version does not exist in this tenant; WORKFLOW_NOT_PUBLISHED when it exists but is not runnable (a DRAFT,
    // VALIDATED or ARCHIVED version, or, for version 0, a workflow with no PUBLISHED version).
    public CompiledWorkflow GetRunnable(string tenantId, string workflowId, int version)
    {
        var versions = Find(tenantId, workflowId)
            ?? throw new WayangException(ErrorCode.WorkflowNotFound, version == 0
                ? $"Workflow '{workflowId}' does not exist."
                : $"Workflow '{workflowId}' version {version} does not exist.");
        if (version == 0)
        {
            return versions.LatestPublished()?.Workflow
                ?? throw new WayangException(ErrorCode.WorkflowNotPublished, $"Workflow '{workflowId}' has no PUBLISHED version.");
        }
        var slot = versions.Find(version)
            ?? throw new WayangException(ErrorCode.WorkflowNotFound, $"Workflow '{workflowId}' version {version} does not exist.");
        if (slot.Record.State != DefinitionState.Published)
        {
            throw new WayangException(ErrorCode.WorkflowNotPublished,
                $"Workflow '{workflowId}' version {version} is {DefinitionLifecycle.NameOf(slot.Record.State)}; only PUBLISHED versions run.");
        }
        return slot.Workflow;
    }

    // What GetRunnable returns, or null where it would refuse.
    public CompiledWorkflow? FindRunnable(string tenantId, string workflowId, int version)
    {
        var versions = Find(tenantId, workflowId);
        if (versions is null)
            return null;
        if (version == 0)
            return versions.LatestPublished()?.Workflow;
        var slot = versions.Find(version);
        return slot is not null && slot.Record.State == DefinitionState.Published ? slot.Workflow : null;
    }

    // Whether a run may still start on this version: PUBLISHED once any archive in progress has decided. The engine
    // asks this after it has counted the new run (see ArchiveAsync). While the version is marked, the archive either
    // counted this run (and will refuse) or did not (and will archive): waiting for its decision, instead of refusing
    // on the mark, keeps a refused archive from also refusing the submission. The wait is at most one store write,
    // and only while an archive of this very version runs.
    public bool IsRunnable(CompiledWorkflow workflow)
    {
        ArgumentNullException.ThrowIfNull(workflow);
        var slot = FindSlot(workflow.TenantId, workflow.WorkflowId, workflow.Version);
        if (slot is null)
            return false;
        var spin = new SpinWait();
        while (Volatile.Read(ref slot.Archiving) != 0)
            spin.SpinOnce();
        // Read after the mark: an archive publishes ARCHIVED before it clears the mark.
        return slot.Record.State == DefinitionState.Published;
    }

    // Any state, for the runs that pinned a version (recovery, replays) and for showing. version 0: the latest
    // PUBLISHED version (what a run would get).
    // Every check a publication would run (structure and references), storing nothing: WORKFLOW_INVALID and the
    // like as exceptions. DefinitionValidate and `wayang defs validate`.
    public void Validate(string tenantId, WorkflowDefinition definition) => WorkflowValidator.Validate(definition, _validation, tenantId);

    public CompiledWorkflow? Get(string tenantId, string workflowId, int version)
    {
        var versions = Find(tenantId, workflowId);
        if (versions is null)
            return null;
        return version == 0 ? versions.LatestPublished()?.Workflow : versions.Find(version)?.Workflow;
    }

    // A version with its state and times. version 0: the newest version in any state (what its author last made).
    public WorkflowVersionInfo? GetVersion(string tenantId, string workflowId, int version)
    {
        var versions = Find(tenantId, workflowId);
        if (versions is null)
            return null;
        return (version == 0 ? versions.All[^1] : versions.Find(version))?.Info();
    }

    public IReadOnlyList<WorkflowSummary> List(string tenantId)
    {
        if (tenantId is null || !_tenants.TryGetValue(tenantId, out var workflows))
            return [];
        var list = new List<WorkflowSummary>(workflows.Count);
        foreach (var (id, versions) in workflows)
            list.Add(versions.Summary(id));
        list.Sort((a, b) => string.CompareOrdinal(a.WorkflowId, b.WorkflowId));
        return list;
    }

    private Versions? Find(string tenantId, string workflowId)
    {
        if (tenantId is null || workflowId is null || !_tenants.TryGetValue(tenantId, out var workflows) || !workflows.TryGetValue(workflowId, out var versions))
            return null;
        return versions;
    }

    private VersionSlot? FindSlot(string tenantId, string workflowId, int version) => Find(tenantId, workflowId)?.Find(version);

    // Our own copy, exactly what is stored: the caller may keep mutating its object, and the definition JSON
    // round-trip is what a restart will see.
    private static WorkflowDefinition PrepareNew(string tenantId, WorkflowDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        if (!Ids.IsValidName(tenantId))
            throw new WayangException(ErrorCode.InvalidArgument, $"'{tenantId}' is not a valid tenant id.");
        return JsonSerializer.Deserialize(JsonSerializer.SerializeToUtf8Bytes(definition, ExecutionJsonContext.Default.WorkflowDefinition), ExecutionJsonContext.Default.WorkflowDefinition)!;
    }

    // Assigns the next version (1, 2, ... over every state), stores durably, publishes in memory.
    private async ValueTask<VersionSlot> StoreNewAsync(string tenantId, WorkflowDefinition copy, DefinitionState state, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var workflows = _tenants.GetOrAdd(tenantId, _ => new(StringComparer.Ordinal));
            workflows.TryGetValue(copy.Id, out var existing);
            copy.Version = (existing?.All[^1].Workflow.Version ?? 0) + 1;
            var compiled = CompiledWorkflow.Compile(tenantId, copy);
            long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            var record = state == DefinitionState.Published
                ? new WorkflowVersionRecord { State = state, CreatedAtMs = now, ValidatedAtMs = now, PublishedAtMs = now }
                : new WorkflowVersionRecord { State = state, CreatedAtMs = now };

            // The record first, both issued before either is awaited: the journal keeps a prefix, so a stored
            // definition always has its record. The other order could leave a DRAFT's definition without one after a
            // crash, which would then load as PUBLISHED. Not cancellable once issued: a write that may be durable
            // must also be published.
            var suffix = KeySuffix(tenantId, copy.Id, copy.Version);
            var recordWrite = _store.PutAsync(Encoding.UTF8.GetBytes(StatePrefix + suffix), JsonSerializer.SerializeToUtf8Bytes(record, ExecutionJsonContext.Default.WorkflowVersionRecord), CancellationToken.None);
            var definitionWrite = _store.PutAsync(Encoding.UTF8.GetBytes(DefinitionPrefix + suffix), JsonSerializer.SerializeToUtf8Bytes(copy, ExecutionJsonContext.Default.WorkflowDefinition), CancellationToken.None);
            await recordWrite.ConfigureAwait(false);
            await definitionWrite.ConfigureAwait(false);

            var slot = new VersionSlot(compiled, record);
            workflows[copy.Id] = existing is null ? new Versions([slot]) : existing.Add(slot);
            return slot;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // Not cancellable once issued (as in StoreNewAsync).
    private async ValueTask WriteRecordAsync(string tenantId, string workflowId, int version, WorkflowVersionRecord record) =>
        await _store.PutAsync(Encoding.UTF8.GetBytes(StatePrefix + KeySuffix(tenantId, workflowId, version)),
            JsonSerializer.SerializeToUtf8Bytes(record, ExecutionJsonContext.Default.WorkflowVersionRecord), CancellationToken.None).ConfigureAwait(false);

    // Parses a client's definition JSON strictly (unknown properties are errors). Shared by the server and the CLI so
    // both report the same WORKFLOW_INVALID for the same bytes.
    public static WorkflowDefinition ParseDefinition(ReadOnlySpan<byte> json)
    {
        WorkflowDefinition? definition;
        try
        {
            definition = JsonSerializer.Deserialize(json, ExecutionJsonContext.Default.WorkflowDefinition);
        }
        catch (JsonException ex)
        {
            var path = ex.Path ?? "$";
            throw new WayangException(new WayangError(ErrorCode.WorkflowInvalid, $"workflow: invalid definition JSON at {path}: {ex.Message}",
                details: new Dictionary<string, string>(StringComparer.Ordinal) { ["node"] = "", ["path"] = path, ["reason"] = ex.Message }));
        }
        return definition ?? throw new WayangException(new WayangError(ErrorCode.WorkflowInvalid, "workflow: the definition is null",
            details: new Dictionary<string, string>(StringComparer.Ordinal) { ["node"] = "", ["path"] = "$", ["reason"] = "the definition is null" }));
    }

    private static string KeySuffix(string tenantId, string workflowId, int version) => VersionedKey.Suffix(tenantId, workflowId, version);

    private void Load()
    {
        var records = new Dictionary<string, WorkflowVersionRecord>(StringComparer.Ordinal);
        foreach (var (key, value) in _store.ScanPrefix(Encoding.UTF8.GetBytes(StatePrefix)))
        {
            var suffix = Encoding.UTF8.GetString(key.AsSpan(StatePrefix.Length));
            try
            {
                var record = JsonSerializer.Deserialize(value, ExecutionJsonContext.Default.WorkflowVersionRecord) ?? throw new JsonException("null record");
                if (record.State == DefinitionState.Unspecified || !Enum.IsDefined(record.State))
                    throw new JsonException($"unknown state {(int)record.State}");
                records[suffix] = record;
            }
            catch (JsonException ex)
            {
                throw Corrupt(suffix, "lifecycle record: " + ex.Message);
            }
        }
        var legacyTimes = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (key, value) in _store.ScanPrefix(Encoding.UTF8.GetBytes(LegacyTimePrefix)))
        {
            if (value.Length == 8)
                legacyTimes[Encoding.UTF8.GetString(key.AsSpan(LegacyTimePrefix.Length))] = BinaryPrimitives.ReadInt64LittleEndian(value);
        }

        var loaded = new Dictionary<(string Tenant, string Id), List<VersionSlot>>();
        foreach (var (keyBytes, value) in _store.ScanPrefix(Encoding.UTF8.GetBytes(DefinitionPrefix)))
        {
            var suffix = Encoding.UTF8.GetString(keyBytes.AsSpan(DefinitionPrefix.Length));
            if (!VersionedKey.TryParse(suffix, out var tenantId, out var workflowId, out int version))
                throw Corrupt(suffix, "malformed key");
            CompiledWorkflow compiled;
            try
            {
                var definition = JsonSerializer.Deserialize(value, ExecutionJsonContext.Default.WorkflowDefinition) ?? throw new JsonException("null definition");
                // The key is authoritative; the validator is not re-run, so a workflow stored under an older
                // configuration (executor types, limits, agents) stays loadable, whatever its state.
                definition.Version = version;
                compiled = CompiledWorkflow.Compile(tenantId, definition);
            }
            catch (Exception ex)
            {
                throw Corrupt(suffix, ex.Message);
            }
            if (!records.TryGetValue(suffix, out var record))
            {
                legacyTimes.TryGetValue(suffix, out long atMs);
                record = new WorkflowVersionRecord { State = DefinitionState.Published, CreatedAtMs = atMs, ValidatedAtMs = atMs, PublishedAtMs = atMs };
            }
            var keyId = (tenantId, workflowId);
            if (!loaded.TryGetValue(keyId, out var list))
                loaded[keyId] = list = [];
            list.Add(new VersionSlot(compiled, record));
        }

        foreach (var ((tenant, id), list) in loaded)
        {
            list.Sort((a, b) => a.Workflow.Version.CompareTo(b.Workflow.Version));
            var workflows = _tenants.GetOrAdd(tenant, _ => new(StringComparer.Ordinal));
            workflows[id] = new Versions([.. list]);
        }
    }

    private static WayangException Corrupt(string key, string reason) =>
        new(ErrorCode.StorageCorrupt, $"Stored workflow definition '{key}' cannot be loaded: {reason}");

    // One version: its compiled definition (fixed) and its lifecycle record (replaced on a transition, under the
    // write lock; read without it).
    private sealed class VersionSlot(CompiledWorkflow workflow, WorkflowVersionRecord record)
    {
        private volatile WorkflowVersionRecord _record = record;

        public CompiledWorkflow Workflow { get; } = workflow;

        public WorkflowVersionRecord Record
        {
            get => _record;
            set => _record = value;
        }

        // 1 while archiving checks for active runs (see ArchiveAsync).
        public int Archiving;

        public WorkflowVersionInfo Info()
        {
            var r = _record;
            return new WorkflowVersionInfo(Workflow.WorkflowId, Workflow.Version, r.State, Workflow.Definition, r.CreatedAtMs, r.ValidatedAtMs, r.PublishedAtMs, r.ArchivedAtMs);
        }
    }

    // One workflow's versions, ascending; replaced (never mutated) when a version is added.
    private sealed class Versions(VersionSlot[] all)
    {
        public VersionSlot[] All { get; } = all;

        public Versions Add(VersionSlot slot) => new([.. All, slot]);

        // Newest first: usually the newest version is the published one.
        public VersionSlot? LatestPublished()
        {
            var all = All;
            for (int i = all.Length - 1; i >= 0; i--)
            {
                if (all[i].Record.State == DefinitionState.Published)
                    return all[i];
            }
            return null;
        }

        public WorkflowSummary Summary(string workflowId)
        {
            var all = All;
            var numbers = new int[all.Length];
            var states = new DefinitionState[all.Length];
            long updatedAtMs = 0;
            int latestPublished = 0;
            for (int i = 0; i < all.Length; i++)
            {
                var r = all[i].Record;
                numbers[i] = all[i].Workflow.Version;
                states[i] = r.State;
                if (r.State == DefinitionState.Published)
                    latestPublished = numbers[i];
                updatedAtMs = Math.Max(updatedAtMs, Math.Max(Math.Max(r.CreatedAtMs, r.ValidatedAtMs ?? 0), Math.Max(r.PublishedAtMs ?? 0, r.ArchivedAtMs ?? 0)));
            }
            return new WorkflowSummary(workflowId, numbers[^1], Array.AsReadOnly(numbers), updatedAtMs)
            {
                States = Array.AsReadOnly(states),
                LatestPublishedVersion = latestPublished,
            };
        }

        public VersionSlot? Find(int version)
        {
            var all = All;
            int lo = 0, hi = all.Length - 1;
            while (lo <= hi)
            {
                int mid = (lo + hi) >>> 1;
                int v = all[mid].Workflow.Version;
                if (v == version)
                    return all[mid];
                if (v < version)
                    lo = mid + 1;
                else
                    hi = mid - 1;
            }
            return null;
        }
    }
}

// Who knows how many runs of a version have not finished (the engine, which owns the runs).
public interface IWorkflowVersionUsage
{
    int ActiveRuns(string tenantId, string workflowId, int version);
}

// A version's lifecycle record as stored under "wfs/..." (camelCase JSON, times in unix ms, unset times omitted).
public sealed record WorkflowVersionRecord
{
    public DefinitionState State { get; init; }
    public long CreatedAtMs { get; init; }
    public long? ValidatedAtMs { get; init; }
    public long? PublishedAtMs { get; init; }
    public long? ArchivedAtMs { get; init; }
}
