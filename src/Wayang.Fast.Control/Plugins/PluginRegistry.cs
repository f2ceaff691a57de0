using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Definitions;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Control.Plugins;

// Signed plugins per tenant: every uploaded version with its manifest, artifact, signer and state; the trust stores
// (global and per tenant) that uploads are verified against; each tenant's verification level; and named plugin
// configurations. Layout and rules: protocol-spec/plugins.md. Like AgentRegistry: everything but artifacts is loaded at
// construction, reads are lock-free over immutable snapshots, mutations are serialized and visible once durable.
// Another tenant's plugin answers exactly like a missing one (PLUGIN_NOT_FOUND).
public sealed class PluginRegistry
{
    private const string PluginPrefix = "plugin/";
    private const string ArtifactPrefix = "plugin-artifact/";
    private const string TrustPrefix = "trust/";
    private const string PolicyPrefix = "plugin-policy/";
    private const string ConfigPrefix = "plugin-config/";
    // Not a valid tenant id (Ids.IsValidName refuses a leading '_'), so it cannot collide with one.
    private const string GlobalScope = "_global";

    private readonly IStateStore _store;
    private readonly PluginRegistryOptions _options;
    private readonly SemanticVersion _serverVersion;
    private readonly TimeProvider _time;
    // Mutations are admin calls: one at a time makes the version, trust and configuration checks trivially consistent.
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    // tenant -> plugin id -> versions in ascending SemVer order; each array is replaced whole, never changed.
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, Entry[]>> _plugins = new(StringComparer.Ordinal);
    // scope (tenant id or GlobalScope) -> key id -> key.
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, TrustedKey>> _keys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, VerificationLevel> _levels = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Tenant, string Id), ImmutableSortedDictionary<string, string>> _configs = new();

    public PluginRegistry(IStateStore store, PluginRegistryOptions options, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        if (!SemanticVersion.TryParse(options.ServerVersion, out var serverVersion))
            throw new ArgumentException($"ServerVersion '{options.ServerVersion}' is not a SemVer version.", nameof(options));
        if (options.MaxArtifactBytes <= 0 || options.ArtifactChunkBytes <= 0)
            throw new ArgumentException("MaxArtifactBytes and ArtifactChunkBytes must be positive.", nameof(options));
        _store = store;
        _options = options;
        _serverVersion = serverVersion;
        _time = time ?? TimeProvider.System;
        Load();
    }

    // Stores a new version when every check passes (protocol-spec/plugins.md, "Upload checks"); otherwise
    // PLUGIN_REJECTED listing every problem. Warnings: the trust problems an Audit tenant accepted, for the audit log.
    public async Task<PluginUploadResult> UploadAsync(string tenant, ReadOnlyMemory<byte> manifest, ReadOnlyMemory<byte> artifact, PluginSignature signature,
        bool allowRollback, string principal, CancellationToken ct = default)
    {
        CheckTenant(tenant);
        ArgumentNullException.ThrowIfNull(signature);
        ArgumentException.ThrowIfNullOrEmpty(principal);

        PluginManifest.TryParse(manifest.Span, out var parsed, out var problems);
        if (artifact.Length > _options.MaxArtifactBytes)
            problems.Add(new(PluginProblemCodes.ArtifactTooLarge, "/artifact", $"the artifact is {artifact.Length} bytes; the limit is {_options.MaxArtifactBytes}"));
        else if (parsed is not null && PluginSigning.DigestOf(artifact.Span) is var digest && digest != parsed.ArtifactDigest)
            problems.Add(new(PluginProblemCodes.DigestMismatch, "/artifactDigest", $"the manifest names {parsed.ArtifactDigest}; the artifact is {digest}"));
        if (parsed is not null && !parsed.ServerVersions.Contains(_serverVersion))
            problems.Add(new(PluginProblemCodes.ServerVersionIncompatible, "/serverVersions", $"this server is {_serverVersion}, outside the manifest's range"));

        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            long now = NowMs();
            problems.AddRange(CheckTrust(tenant, manifest.Span, signature, now));
            var existing = parsed is not null && TryFind(tenant, parsed.Id, out var versions) ? versions : [];
            bool rolledBack = false;
            if (parsed is not null && existing.Length > 0)
                rolledBack = CheckAgainstStored(tenant, parsed, existing, allowRollback, problems);

            var level = GetVerificationLevel(tenant);
            if (problems.Exists(p => level == VerificationLevel.Strict || !PluginProblemCodes.IsTrustProblem(p.Code)))
                throw Rejected(parsed, problems);

            var record = new StoredPluginVersion
            {
                Manifest = manifest.ToArray(),
                ArtifactDigest = parsed!.ArtifactDigest,
                ArtifactBytes = artifact.Length,
                ArtifactChunks = (artifact.Length + _options.ArtifactChunkBytes - 1) / _options.ArtifactChunkBytes,
                SignerKeyId = signature.KeyId ?? "",
                UploadedBy = principal,
                UploadedAtMs = now,
                RolledBack = rolledBack,
                State = PluginVersionState.Enabled,
                StateChangedBy = principal,
                StateChangedAtMs = now,
                Warnings = problems,
            };
            // Chunks first, all in flight together so they share group commits; the version record last: a version
            // exists only once its record does, so a crash in between leaves unreferenced chunks, never a torn version.
            var writes = new List<Task>(record.ArtifactChunks);
            for (int i = 0; i < record.ArtifactChunks; i++)
            {
                int start = i * _options.ArtifactChunkBytes;
                var chunk = artifact.Slice(start, Math.Min(_options.ArtifactChunkBytes, artifact.Length - start)).ToArray();
                // Not cancellable once issued: a write that may be durable must also become visible.
                writes.Add(_store.PutAsync(Key(ArtifactPrefix, tenant, parsed.Id, parsed.Version.Text, ChunkName(i)), chunk, CancellationToken.None).AsTask());
            }
            await Task.WhenAll(writes).ConfigureAwait(false);
            await PersistAsync(tenant, parsed.Id, record, parsed.Version.Text).ConfigureAwait(false);

            var entry = new Entry(parsed, record);
            var updated = existing.Append(entry).ToArray();
            Array.Sort(updated, (a, b) => a.Version.CompareTo(b.Version));
            _plugins.GetOrAdd(tenant, _ => new(StringComparer.Ordinal))[parsed.Id] = updated;
            return new PluginUploadResult(parsed.Id, parsed.Version.Text, rolledBack, problems.AsReadOnly());
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public IReadOnlyList<PluginSummary> List(string tenant)
    {
        if (tenant is null || !_plugins.TryGetValue(tenant, out var plugins))
            return [];
        var list = new List<PluginSummary>(plugins.Count);
        foreach (var (id, versions) in plugins)
        {
            list.Add(new PluginSummary(id, versions[^1].Manifest.Kind, versions[^1].Version.Text, LatestEnabled(versions)?.Version.Text,
                Array.ConvertAll(versions, e => new PluginVersionSummary(e.Version.Text, e.Record.State, e.Record.UploadedAtMs))));
        }
        list.Sort((a, b) => string.CompareOrdinal(a.Id, b.Id));
        return list;
    }

    // version null: the highest version, whatever its state.
    public PluginVersionDetails Get(string tenant, string id, string? version)
    {
        var entry = Find(tenant, id, version);
        var r = entry.Record;
        return new PluginVersionDetails(tenant, id, entry.Version.Text, entry.Manifest.Kind, entry.Manifest.Description, r.Manifest, r.ArtifactDigest,
            r.ArtifactBytes, r.SignerKeyId, r.UploadedBy, r.UploadedAtMs, r.RolledBack, r.State, r.StateChangedBy, r.StateChangedAtMs, r.Warnings.AsReadOnly());
    }

    // Read from the store (artifacts are not kept in memory) and checked against the recorded digest.
    public ReadOnlyMemory<byte> GetArtifact(string tenant, string id, string version)
    {
        ArgumentNullException.ThrowIfNull(version);
        var entry = Find(tenant, id, version);
        var artifact = new byte[entry.Record.ArtifactBytes];
        int offset = 0;
        for (int i = 0; i < entry.Record.ArtifactChunks; i++)
        {
            var key = Key(ArtifactPrefix, tenant, id, version, ChunkName(i));
            if (!_store.TryGet(key, out var chunk) || chunk.Length > artifact.Length - offset)
                throw Corrupt(Encoding.UTF8.GetString(key), "artifact chunk missing or too long");
            chunk.CopyTo(artifact, offset);
            offset += chunk.Length;
        }
        if (offset != artifact.Length || PluginSigning.DigestOf(artifact) != entry.Record.ArtifactDigest)
            throw Corrupt($"{PluginPrefix}{tenant}/{id}/{version}", "the artifact does not match its digest");
        return artifact;
    }

    public async Task SetStateAsync(string tenant, string id, string version, PluginVersionState state, string principal, CancellationToken ct = default)
    {
        if (!Enum.IsDefined(state))
            throw new WayangException(ErrorCode.InvalidArgument, $"{state} is not a plugin version state.");
        ArgumentException.ThrowIfNullOrEmpty(principal);
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var entry = Find(tenant, id, version);
            if (entry.Record.State == state)
                return;
            var record = entry.Record with { State = state, StateChangedBy = principal, StateChangedAtMs = NowMs() };
            await PersistAsync(tenant, id, record, version).ConfigureAwait(false);
            var replaced = (Entry[])_plugins[tenant][id].Clone();
            replaced[Array.FindIndex(replaced, e => e.Version == entry.Version)] = entry with { Record = record };
            _plugins[tenant][id] = replaced;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // Validated against the configSchema of the highest enabled version: PLUGIN_CONFIG_INVALID listing every
    // violation, PLUGIN_NOT_FOUND when no version is enabled. Replaces a configuration of the same name.
    public async Task PutConfigurationAsync(string tenant, string id, string name, ReadOnlyMemory<byte> configJson, string principal, CancellationToken ct = default)
    {
        CheckTenant(tenant);
        if (!Ids.IsValidName(name))
            throw new WayangException(ErrorCode.InvalidArgument, $"'{name}' is not a valid configuration name.");
        ArgumentException.ThrowIfNullOrEmpty(principal);
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!TryFind(tenant, id, out var versions) || LatestEnabled(versions) is not { } enabled)
                throw NotFound(id, null, "has no enabled version");
            var violations = Validate(enabled.Manifest, configJson.Span);
            if (violations.Count > 0)
            {
                throw new WayangException(new WayangError(ErrorCode.PluginConfigInvalid,
                    DefinitionSchemas.ViolationMessage($"plugin '{id}' configuration '{name}' is invalid under version {enabled.Version}", violations),
                    details: DefinitionSchemas.ViolationDetails(violations)));
            }
            var json = Encoding.UTF8.GetString(configJson.Span);
            var record = new StoredConfiguration { Json = json, UpdatedBy = principal, UpdatedAtMs = NowMs() };
            await _store.PutAsync(Key(ConfigPrefix, tenant, id, name), JsonSerializer.SerializeToUtf8Bytes(record, PluginStoreJsonContext.Default.StoredConfiguration),
                CancellationToken.None).ConfigureAwait(false);
            _configs[(tenant, id)] = GetConfigurations(tenant, id) is ImmutableSortedDictionary<string, string> current
                ? current.SetItem(name, json)
                : ImmutableSortedDictionary.Create<string, string>(StringComparer.Ordinal).Add(name, json);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // Name -> the configuration's JSON text, names in ordinal order.
    public IReadOnlyDictionary<string, string> GetConfigurations(string tenant, string id) =>
        tenant is not null && id is not null && _configs.TryGetValue((tenant, id), out var configs) ? configs : ImmutableSortedDictionary<string, string>.Empty;

    // tenant null: the global store, trusted for every tenant. KeyId must be PluginSigning.KeyIdOf(PublicKey); a key id
    // already in the store is refused, so a revoked key cannot come back by being added again.
    public async Task AddTrustedKeyAsync(string? tenant, TrustedKey key, CancellationToken ct = default)
    {
        var scope = Scope(tenant);
        ArgumentNullException.ThrowIfNull(key);
        if (key.PublicKey is null || key.PublicKey.Length != PluginSigning.PublicKeyBytes || !PluginSigning.IsValidPublicKey(key.PublicKey))
            throw new WayangException(ErrorCode.InvalidArgument, "The public key must be 32 bytes of raw Ed25519.");
        if (key.KeyId != PluginSigning.KeyIdOf(key.PublicKey))
            throw new WayangException(ErrorCode.InvalidArgument, $"The key id must be {PluginSigning.KeyIdOf(key.PublicKey)} (PluginSigning.KeyIdOf of the public key).");
        if (key.NotBeforeMs < 0 || (key.NotAfterMs != 0 && key.NotAfterMs <= key.NotBeforeMs) || key.RevokedAtMs is not null || string.IsNullOrEmpty(key.AddedBy))
            throw new WayangException(ErrorCode.InvalidArgument, "A trusted key needs NotBeforeMs >= 0, NotAfterMs 0 or after NotBeforeMs, no revocation and an AddedBy.");

        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var keys = _keys.GetOrAdd(scope, _ => new(StringComparer.Ordinal));
            if (keys.ContainsKey(key.KeyId))
                throw new WayangException(ErrorCode.InvalidArgument, $"Key '{key.KeyId}' is already in the {ScopeName(tenant)} trust store.");
            var stored = key with { PublicKey = (byte[])key.PublicKey.Clone(), RevokedBy = null };
            await PersistKeyAsync(scope, stored).ConfigureAwait(false);
            keys[key.KeyId] = stored;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // Only the named store: a tenant cannot revoke a global key. Revoking a revoked key changes nothing.
    public async Task RevokeTrustedKeyAsync(string? tenant, string keyId, string principal, CancellationToken ct = default)
    {
        var scope = Scope(tenant);
        ArgumentException.ThrowIfNullOrEmpty(principal);
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (keyId is null || !_keys.TryGetValue(scope, out var keys) || !keys.TryGetValue(keyId, out var key))
            {
                throw new WayangException(new WayangError(ErrorCode.TrustKeyNotFound, $"Key '{keyId}' is not in the {ScopeName(tenant)} trust store.",
                    details: new Dictionary<string, string>(StringComparer.Ordinal) { ["keyId"] = keyId ?? "" }));
            }
            if (key.RevokedAtMs is not null)
                return;
            var revoked = key with { RevokedAtMs = NowMs(), RevokedBy = principal };
            await PersistKeyAsync(scope, revoked).ConfigureAwait(false);
            keys[keyId] = revoked;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // The named store only (tenant null: the global one), by key id; revoked keys included. Copies.
    public IReadOnlyList<TrustedKey> ListTrustedKeys(string? tenant)
    {
        if (!_keys.TryGetValue(Scope(tenant), out var keys))
            return [];
        return [.. keys.Values.OrderBy(k => k.KeyId, StringComparer.Ordinal).Select(k => k with { PublicKey = (byte[])k.PublicKey.Clone() })];
    }

    public async Task SetVerificationLevelAsync(string tenant, VerificationLevel level, string principal, CancellationToken ct = default)
    {
        CheckTenant(tenant);
        if (!Enum.IsDefined(level))
            throw new WayangException(ErrorCode.InvalidArgument, $"{level} is not a verification level.");
        ArgumentException.ThrowIfNullOrEmpty(principal);
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var record = new StoredPolicy { Level = level, SetBy = principal, SetAtMs = NowMs() };
            await _store.PutAsync(Key(PolicyPrefix, tenant), JsonSerializer.SerializeToUtf8Bytes(record, PluginStoreJsonContext.Default.StoredPolicy),
                CancellationToken.None).ConfigureAwait(false);
            _levels[tenant] = level;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public VerificationLevel GetVerificationLevel(string tenant) =>
        tenant is not null && _levels.TryGetValue(tenant, out var level) ? level : VerificationLevel.Strict;

    // The tenant's own key first, then the global one with that id.
    private List<PluginProblem> CheckTrust(string tenant, ReadOnlySpan<byte> manifest, PluginSignature signature, long now)
    {
        var problems = new List<PluginProblem>();
        TrustedKey? key = null;
        if (signature.KeyId is null || !((_keys.TryGetValue(tenant, out var own) && own.TryGetValue(signature.KeyId, out key))
            || (_keys.TryGetValue(GlobalScope, out var global) && global.TryGetValue(signature.KeyId, out key))))
        {
            problems.Add(new(PluginProblemCodes.KeyUnknown, "/signature/keyId", $"key '{signature.KeyId}' is in neither the tenant's nor the global trust store"));
            return problems;
        }
        if (key.RevokedAtMs is { } revokedAt)
            problems.Add(new(PluginProblemCodes.KeyRevoked, "/signature/keyId", $"key '{key.KeyId}' was revoked at {Time(revokedAt)}"));
        if (now < key.NotBeforeMs || (key.NotAfterMs != 0 && now >= key.NotAfterMs))
        {
            problems.Add(new(PluginProblemCodes.KeyExpired, "/signature/keyId",
                $"key '{key.KeyId}' is valid from {Time(key.NotBeforeMs)} to {(key.NotAfterMs == 0 ? "no end" : Time(key.NotAfterMs))}, not at {Time(now)}"));
        }
        if (!PluginSigning.Verify(key.PublicKey, manifest, signature.Signature ?? []))
            problems.Add(new(PluginProblemCodes.SignatureInvalid, "/signature", $"the signature does not verify with key '{key.KeyId}'"));
        return problems;
    }

    // Version order, kind, schema compatibility with the highest stored version, and the stored configurations
    // under the new schema. Returns whether the upload is an (allowed or refused) rollback.
    private bool CheckAgainstStored(string tenant, PluginManifest parsed, Entry[] existing, bool allowRollback, List<PluginProblem> problems)
    {
        var latest = existing[^1];
        bool rollback = false;
        if (Array.Exists(existing, e => e.Version == parsed.Version))
            problems.Add(new(PluginProblemCodes.VersionExists, "/version", $"version {parsed.Version} is already stored; a version is never overwritten"));
        else if (parsed.Version < latest.Version)
        {
            rollback = true;
            if (!allowRollback)
                problems.Add(new(PluginProblemCodes.VersionRollback, "/version", $"version {parsed.Version} is lower than the latest, {latest.Version}"));
        }
        if (parsed.Kind != latest.Manifest.Kind)
            problems.Add(new(PluginProblemCodes.ManifestInvalid, "/kind", $"the plugin is a {latest.Manifest.Kind}; a version cannot change its kind"));

        foreach (var problem in SchemaCompatibility.Check(latest.Manifest.ConfigSchema, parsed.ConfigSchema))
            problems.Add(problem with { Path = "/configSchema" + problem.Path });
        foreach (var (name, json) in GetConfigurations(tenant, parsed.Id))
        {
            foreach (var violation in Validate(parsed, Encoding.UTF8.GetBytes(json)))
                problems.Add(new(PluginProblemCodes.ConfigInvalid, JsonPointer.Append("/configurations", name) + violation.Pointer, violation.Reason));
        }
        return rollback;
    }

    private static IReadOnlyList<SchemaViolation> Validate(PluginManifest manifest, ReadOnlySpan<byte> json)
    {
        if (!DefinitionSchemas.TryParse(json, out var document, out var syntax))
            return [syntax];
        using (document)
            return DefinitionSchemas.Validate(manifest.CompiledSchema, document.RootElement);
    }

    private Entry Find(string tenant, string id, string? version)
    {
        if (!TryFind(tenant, id, out var versions))
            throw NotFound(id, version, "does not exist");
        var entry = version is null ? versions[^1] : Array.Find(versions, e => e.Version.Text == version);
        return entry ?? throw NotFound(id, version, "does not exist");
    }

    private bool TryFind(string tenant, string id, out Entry[] versions)
    {
        versions = [];
        if (tenant is null || id is null || !_plugins.TryGetValue(tenant, out var plugins) || !plugins.TryGetValue(id, out var found))
            return false;
        versions = found;
        return true;
    }

    private static Entry? LatestEnabled(Entry[] versions) => Array.FindLast(versions, e => e.Record.State == PluginVersionState.Enabled);

    private ValueTask PersistAsync(string tenant, string id, StoredPluginVersion record, string version) =>
        _store.PutAsync(Key(PluginPrefix, tenant, id, version), JsonSerializer.SerializeToUtf8Bytes(record, PluginStoreJsonContext.Default.StoredPluginVersion), CancellationToken.None);

    private ValueTask PersistKeyAsync(string scope, TrustedKey key) =>
        _store.PutAsync(Key(TrustPrefix, scope, key.KeyId), JsonSerializer.SerializeToUtf8Bytes(key, PluginStoreJsonContext.Default.TrustedKey), CancellationToken.None);

    private void Load()
    {
        var loaded = new Dictionary<(string Tenant, string Id), List<Entry>>();
        foreach (var (parts, value) in Scan(PluginPrefix, 3))
        {
            var record = Deserialize(parts, value, PluginStoreJsonContext.Default.StoredPluginVersion);
            if (!PluginManifest.TryParse(record.Manifest, out var manifest, out var problems))
                throw Corrupt(string.Join('/', parts), "the stored manifest does not parse: " + problems[0].Message);
            if (manifest.Id != parts[1] || manifest.Version.Text != parts[2])
                throw Corrupt(string.Join('/', parts), "the manifest's id or version is not the key's");
            if (!loaded.TryGetValue((parts[0], parts[1]), out var list))
                loaded[(parts[0], parts[1])] = list = [];
            list.Add(new Entry(manifest, record));
        }
        foreach (var ((tenant, id), list) in loaded)
        {
            list.Sort((a, b) => a.Version.CompareTo(b.Version));
            _plugins.GetOrAdd(tenant, _ => new(StringComparer.Ordinal))[id] = [.. list];
        }
        foreach (var (parts, value) in Scan(TrustPrefix, 2))
            _keys.GetOrAdd(parts[0], _ => new(StringComparer.Ordinal))[parts[1]] = Deserialize(parts, value, PluginStoreJsonContext.Default.TrustedKey);
        foreach (var (parts, value) in Scan(PolicyPrefix, 1))
            _levels[parts[0]] = Deserialize(parts, value, PluginStoreJsonContext.Default.StoredPolicy).Level;
        foreach (var (parts, value) in Scan(ConfigPrefix, 3))
        {
            var json = Deserialize(parts, value, PluginStoreJsonContext.Default.StoredConfiguration).Json;
            var current = _configs.GetValueOrDefault((parts[0], parts[1])) ?? ImmutableSortedDictionary.Create<string, string>(StringComparer.Ordinal);
            _configs[(parts[0], parts[1])] = current.SetItem(parts[2], json);
        }
    }

    // The key's parts after the prefix, split at '/' (no part can hold one: tenant ids, plugin ids, versions, key ids
    // and configuration names all exclude it).
    private IEnumerable<(string[] Parts, byte[] Value)> Scan(string prefix, int parts)
    {
        foreach (var (key, value) in _store.ScanPrefix(Encoding.UTF8.GetBytes(prefix)))
        {
            var suffix = Encoding.UTF8.GetString(key.AsSpan(prefix.Length));
            var split = suffix.Split('/');
            if (split.Length != parts || Array.Exists(split, p => p.Length == 0))
                throw Corrupt(prefix + suffix, "malformed key");
            yield return (split, value);
        }
    }

    private static T Deserialize<T>(string[] parts, byte[] value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        try
        {
            return JsonSerializer.Deserialize(value, type) ?? throw new JsonException("null record");
        }
        catch (JsonException ex)
        {
            throw Corrupt(string.Join('/', parts), ex.Message);
        }
    }

    private static byte[] Key(string prefix, params string[] parts) => Encoding.UTF8.GetBytes(prefix + string.Join('/', parts));

    private static string ChunkName(int index) => index.ToString("D6", CultureInfo.InvariantCulture);

    private static void CheckTenant(string tenant)
    {
        if (!Ids.IsValidName(tenant))
            throw new WayangException(ErrorCode.InvalidArgument, $"'{tenant}' is not a valid tenant id.");
    }

    private static string Scope(string? tenant)
    {
        if (tenant is null)
            return GlobalScope;
        CheckTenant(tenant);
        return tenant;
    }

    private static string ScopeName(string? tenant) => tenant is null ? "global" : $"tenant '{tenant}'";

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private static string Time(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms).ToString("O", CultureInfo.InvariantCulture);

    // PLUGIN_REJECTED: the message lists the problems (capped); Details["problems"] is the JSON array of
    // {"code","path","message"} (capped at DefinitionSchemas.MaxViolationsInDetails), "problemCount" the full count.
    private static WayangException Rejected(PluginManifest? manifest, List<PluginProblem> problems)
    {
        var subject = manifest is null ? "the plugin" : $"plugin '{manifest.Id}' version {manifest.Version}";
        var message = new StringBuilder().Append(CultureInfo.InvariantCulture, $"{subject} was rejected ({problems.Count} problem{(problems.Count == 1 ? "" : "s")}):");
        foreach (var problem in problems.Take(DefinitionSchemas.MaxViolationsInMessage))
            message.Append(CultureInfo.InvariantCulture, $"\n{problem.Code} {(problem.Path.Length == 0 ? "(root)" : problem.Path)}: {problem.Message}");
        if (problems.Count > DefinitionSchemas.MaxViolationsInMessage)
            message.Append(CultureInfo.InvariantCulture, $"\n... and {problems.Count - DefinitionSchemas.MaxViolationsInMessage} more");
        var shown = problems.Take(DefinitionSchemas.MaxViolationsInDetails)
            .Select(p => (IReadOnlyList<(string, string)>)[("code", p.Code), ("path", p.Path), ("message", p.Message)]);
        var details = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["problems"] = DefinitionSchemas.CompactJson(shown),
            ["problemCount"] = problems.Count.ToString(CultureInfo.InvariantCulture),
        };
        return new WayangException(new WayangError(ErrorCode.PluginRejected, message.ToString(), details: details));
    }

    // The same answer for a missing plugin, a missing version and another tenant's plugin.
    private static WayangException NotFound(string id, string? version, string what) => new(new WayangError(ErrorCode.PluginNotFound,
        version is null ? $"plugin '{id}' {what}." : $"plugin '{id}' version {version} {what}.",
        details: new Dictionary<string, string>(StringComparer.Ordinal) { ["plugin"] = id ?? "", ["version"] = version ?? "" }));

    private static WayangException Corrupt(string key, string reason) =>
        new(ErrorCode.StorageCorrupt, $"Stored plugin state '{key}' cannot be loaded: {reason}");

    // Immutable: a state change replaces the entry (and the record: StoredPluginVersion is only ever copied with "with").
    private sealed record Entry(PluginManifest Manifest, StoredPluginVersion Record)
    {
        public SemanticVersion Version => Manifest.Version;
    }
}
