using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Execution.Planning;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Execution.Definitions;

// Tenant-scoped, versioned workflow definitions. Every version is kept (runs pin the version they started with) and
// stored durably under "wf/<tenantId>/<workflowId>/<version:D10>" as the definition's JSON; the registration time
// goes under "wft/..." (same suffix, 8 bytes little-endian ms) because the definition model has no field for it.
// Everything is loaded at construction; reads are lock-free over immutable snapshots.
public sealed class WorkflowRegistry
{
    private const string DefinitionPrefix = "wf/";
    private const string TimePrefix = "wft/";

    private readonly IStateStore _store;
    private readonly ValidationContext _validation;
    private readonly TimeProvider _time;
    // Registrations are rare; one at a time makes "latest + 1" and the publish order trivially right.
    private readonly SemaphoreSlim _registerLock = new(1, 1);
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, Versions>> _tenants = new(StringComparer.Ordinal);

    public WorkflowRegistry(IStateStore store, ValidationContext validation, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(validation);
        _store = store;
        _validation = validation;
        _time = time ?? TimeProvider.System;
        Load();
    }

    // Validates, assigns the next version (1, 2, ...), stores durably, returns the compiled version.
    public async ValueTask<CompiledWorkflow> RegisterAsync(string tenantId, WorkflowDefinition definition, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(definition);
        if (!Ids.IsValidName(tenantId))
            throw new WayangException(ErrorCode.InvalidArgument, $"'{tenantId}' is not a valid tenant id.");

        // Our own copy, exactly what is stored: the caller may keep mutating its object, and the definition JSON
        // round-trip is what a restart will see.
        var copy = JsonSerializer.Deserialize(JsonSerializer.SerializeToUtf8Bytes(definition, ExecutionJsonContext.Default.WorkflowDefinition), ExecutionJsonContext.Default.WorkflowDefinition)!;
        WorkflowValidator.Validate(copy, _validation);

        await _registerLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var workflows = _tenants.GetOrAdd(tenantId, _ => new(StringComparer.Ordinal));
            workflows.TryGetValue(copy.Id, out var existing);
            copy.Version = (existing?.Latest.Version ?? 0) + 1;
            var compiled = CompiledWorkflow.Compile(tenantId, copy);
            long nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();

            var suffix = KeySuffix(tenantId, copy.Id, copy.Version);
            var timeValue = new byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(timeValue, nowMs);
            // Issued in this order and awaited together: the journal keeps a prefix, so a stored definition always
            // has its time. Not cancellable once issued: a write that may be durable must also be published.
            var timeWrite = _store.PutAsync(Encoding.UTF8.GetBytes(TimePrefix + suffix), timeValue, CancellationToken.None);
            var definitionWrite = _store.PutAsync(Encoding.UTF8.GetBytes(DefinitionPrefix + suffix), JsonSerializer.SerializeToUtf8Bytes(copy, ExecutionJsonContext.Default.WorkflowDefinition), CancellationToken.None);
            await timeWrite.ConfigureAwait(false);
            await definitionWrite.ConfigureAwait(false);

            workflows[copy.Id] = existing is null ? new Versions([compiled], nowMs) : existing.Add(compiled, nowMs);
            return compiled;
        }
        finally
        {
            _registerLock.Release();
        }
    }

    // version 0: the latest.
    public CompiledWorkflow? Get(string tenantId, string workflowId, int version)
    {
        if (tenantId is null || workflowId is null || !_tenants.TryGetValue(tenantId, out var workflows) || !workflows.TryGetValue(workflowId, out var versions))
            return null;
        return version == 0 ? versions.Latest : versions.Find(version);
    }

    public IReadOnlyList<WorkflowSummary> List(string tenantId)
    {
        if (tenantId is null || !_tenants.TryGetValue(tenantId, out var workflows))
            return [];
        var list = new List<WorkflowSummary>(workflows.Count);
        foreach (var (id, versions) in workflows)
            list.Add(new WorkflowSummary(id, versions.Latest.Version, versions.Numbers, versions.UpdatedAtMs));
        list.Sort((a, b) => string.CompareOrdinal(a.WorkflowId, b.WorkflowId));
        return list;
    }

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

    private static string KeySuffix(string tenantId, string workflowId, int version) =>
        string.Concat(tenantId, "/", workflowId, "/", version.ToString("D10", CultureInfo.InvariantCulture));

    private void Load()
    {
        var times = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (key, value) in _store.ScanPrefix(Encoding.UTF8.GetBytes(TimePrefix)))
        {
            if (value.Length == 8)
                times[Encoding.UTF8.GetString(key.AsSpan(TimePrefix.Length))] = BinaryPrimitives.ReadInt64LittleEndian(value);
        }

        var loaded = new Dictionary<(string Tenant, string Id), List<(CompiledWorkflow Workflow, long AtMs)>>();
        foreach (var (keyBytes, value) in _store.ScanPrefix(Encoding.UTF8.GetBytes(DefinitionPrefix)))
        {
            var suffix = Encoding.UTF8.GetString(keyBytes.AsSpan(DefinitionPrefix.Length));
            var parts = suffix.Split('/');
            if (parts.Length != 3 || !int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out int version) || version < 1)
                throw Corrupt(suffix, "malformed key");
            CompiledWorkflow compiled;
            try
            {
                var definition = JsonSerializer.Deserialize(value, ExecutionJsonContext.Default.WorkflowDefinition) ?? throw new JsonException("null definition");
                // The key is authoritative; the validator is not re-run, so a workflow registered under an older
                // configuration (executor types, limits) stays loadable.
                definition.Version = version;
                compiled = CompiledWorkflow.Compile(parts[0], definition);
            }
            catch (Exception ex)
            {
                throw Corrupt(suffix, ex.Message);
            }
            times.TryGetValue(suffix, out long atMs);
            var keyId = (parts[0], parts[1]);
            if (!loaded.TryGetValue(keyId, out var list))
                loaded[keyId] = list = [];
            list.Add((compiled, atMs));
        }

        foreach (var ((tenant, id), list) in loaded)
        {
            list.Sort((a, b) => a.Workflow.Version.CompareTo(b.Workflow.Version));
            var workflows = _tenants.GetOrAdd(tenant, _ => new(StringComparer.Ordinal));
            workflows[id] = new Versions([.. list.Select(e => e.Workflow)], list[^1].AtMs);
        }
    }

    private static WayangException Corrupt(string key, string reason) =>
        new(ErrorCode.StorageCorrupt, $"Stored workflow definition '{key}' cannot be loaded: {reason}");

    // One workflow's versions, ascending; replaced (never mutated) on registration.
    private sealed class Versions
    {
        public Versions(CompiledWorkflow[] all, long updatedAtMs)
        {
            All = all;
            UpdatedAtMs = updatedAtMs;
            Numbers = Array.AsReadOnly(Array.ConvertAll(all, w => w.Version));
        }

        public CompiledWorkflow[] All { get; }
        public long UpdatedAtMs { get; }
        public IReadOnlyList<int> Numbers { get; }
        public CompiledWorkflow Latest => All[^1];

        public Versions Add(CompiledWorkflow workflow, long atMs) => new([.. All, workflow], atMs);

        public CompiledWorkflow? Find(int version)
        {
            int lo = 0, hi = All.Length - 1;
            while (lo <= hi)
            {
                int mid = (lo + hi) >>> 1;
                int v = All[mid].Version;
                if (v == version)
                    return All[mid];
                if (v < version)
                    lo = mid + 1;
                else
                    hi = mid - 1;
            }
            return null;
        }
    }
}
