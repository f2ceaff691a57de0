using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Control.Secrets;

// Per-tenant, versioned secrets with envelope encryption: each version has its own data key from the provider and its
// value is sealed with AES-256-GCM under associated data naming tenant, path and version (AssociatedData). Metadata is
// loaded at construction and kept in memory; each version's sealed value is a record of its own, read when needed
// (SealedKey), so neither a record nor memory grows with value size times versions. Reads are lock-free over
// immutable snapshots, mutations are serialized and visible only once durable. Values never leave this class except
// as a GetAsync result: not in events, errors or metadata. Another tenant's secret answers exactly like a missing one.
public sealed class SecretStore
{
    private const string Prefix = "secret/";
    private const string SealedPrefix = "secret-v/";
    private const string ReferenceScheme = "secret://";
    private const int NonceBytes = 12;
    private const int TagBytes = 16;
    private const int MaxReasonLength = 1024;

    private readonly IStateStore _store;
    private readonly IKeyEncryptionProvider _provider;
    private readonly SecretStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly DataKeyCache _cache;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, StoredSecret>> _tenants = new(StringComparer.Ordinal);

    public SecretStore(IStateStore store, IKeyEncryptionProvider provider, SecretStoreOptions? options = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(provider);
        _store = store;
        _provider = provider;
        _options = options ?? new SecretStoreOptions();
        ValidatePolicy(_options.DefaultPolicy);
        _time = time ?? TimeProvider.System;
        _cache = new DataKeyCache(Math.Max(0, _options.DataKeyCacheEntries), _options.DataKeyCacheTtl, _time);
        Load();
    }

    public SecretEvents Events { get; } = new();

    public int CachedDataKeys => _cache.Count;

    public Task<SecretVersionInfo> PutAsync(string tenant, string path, ReadOnlyMemory<byte> value, long? cas, string principal, CancellationToken ct = default) =>
        WriteAsync(tenant, path, value, cas, principal, rotate: false, ct);

    public Task<SecretVersionInfo> RotateAsync(string tenant, string path, ReadOnlyMemory<byte> value, long? cas, string principal, CancellationToken ct = default) =>
        WriteAsync(tenant, path, value, cas, principal, rotate: true, ct);

    // version 0: the highest ACTIVE version.
    public async Task<SecretValue> GetAsync(string tenant, string path, int version, CancellationToken ct = default)
    {
        var secret = Find(tenant, path);
        var entry = version == 0 ? Array.FindLast(secret.Versions, v => v.State == SecretVersionState.Active) : FindVersion(secret, version);
        if (entry is null)
            throw version == 0 ? Unavailable(path, "has no active version") : NotFound(path, version);
        if (entry.State != SecretVersionState.Active)
            throw Unavailable(path, $"version {entry.Version} is {StateName(entry)}");

        var stored = ReadSealed(tenant, path, entry.Version);
        var wrapped = WrappedOf(stored);
        var cacheKey = DataKeyCache.KeyOf(wrapped);
        var key = new byte[KeyContext.DataKeyBytes];
        try
        {
            if (!_cache.TryCopy(cacheKey, key))
            {
                var unwrapped = await _provider.DecryptDataKeyAsync(wrapped, Context(tenant, path), ct).ConfigureAwait(false);
                unwrapped.CopyTo(key, 0);
                CryptographicOperations.ZeroMemory(unwrapped);
                _cache.Add(cacheKey, key);
            }
            var sealedValue = stored.Ciphertext;
            var value = new byte[sealedValue.Length - TagBytes];
            try
            {
                using var aes = new AesGcm(key, TagBytes);
                aes.Decrypt(stored.Nonce, sealedValue.AsSpan(0, value.Length), sealedValue.AsSpan(value.Length), value, AssociatedData(tenant, path, entry.Version));
            }
            catch (AuthenticationTagMismatchException ex)
            {
                throw new WayangException(new WayangError(ErrorCode.SecretIntegrity,
                    $"secret '{path}' version {entry.Version} failed authentication: its record was tampered with or moved."), ex);
            }
            return new SecretValue(entry.Version, value, entry.CreatedAtMs);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    public SecretMetadata GetMetadata(string tenant, string path) => ToMetadata(tenant, path, Find(tenant, path));

    public IReadOnlyList<SecretMetadata> List(string tenant, string prefix)
    {
        if (tenant is null || !_tenants.TryGetValue(tenant, out var secrets))
            return [];
        var list = new List<SecretMetadata>();
        foreach (var (path, secret) in secrets)
        {
            if (path.StartsWith(prefix ?? "", StringComparison.Ordinal))
                list.Add(ToMetadata(tenant, path, secret));
        }
        list.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return list;
    }

    public Task DisableVersionAsync(string tenant, string path, int version, bool disabled, string principal, CancellationToken ct = default) =>
        MutateAsync(tenant, path, secret =>
        {
            var entry = FindVersion(secret, version) ?? throw NotFound(path, version);
            if (!entry.HasValue)
                throw Unavailable(path, $"version {version} is {StateName(entry)}");
            var target = disabled ? SecretVersionState.Disabled : SecretVersionState.Active;
            if (entry.State == target)
                return null;
            var kind = disabled ? SecretEventKind.VersionDisabled : SecretEventKind.VersionEnabled;
            return (Replace(secret, entry with { State = target }), new Change(kind, version, principal));
        }, ct);

    // version 0: every version and the secret itself (the path can be written afresh, from version 1). Destroying a
    // version drops its ciphertext and wrapped key for good; its metadata stays. Destroying what is gone is a no-op.
    public async Task DestroyAsync(string tenant, string path, int version, string principal, CancellationToken ct = default)
    {
        if (version != 0)
        {
            await MutateAsync(tenant, path, secret =>
            {
                var entry = FindVersion(secret, version) ?? throw NotFound(path, version);
                if (!entry.HasValue)
                    return null;
                return (Replace(secret, entry with { State = SecretVersionState.Destroyed }), new Change(SecretEventKind.Destroyed, version, principal));
            }, ct).ConfigureAwait(false);
            return;
        }
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await CommitAsync(tenant, path, Find(tenant, path), null).ConfigureAwait(false);
            Publish(SecretEventKind.Destroyed, tenant, path, 0, principal);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public Task SetPolicyAsync(string tenant, string path, SecretPolicy policy, string principal, CancellationToken ct = default)
    {
        ValidatePolicy(policy);
        return MutateAsync(tenant, path, secret => secret.Policy == policy
            ? null
            : (Prune(secret with { Policy = policy }), new Change(SecretEventKind.PolicyChanged, 0, principal,
                string.Create(CultureInfo.InvariantCulture, $"maxVersions={policy.MaxVersions} rotateEveryDays={policy.RotateEveryDays}"))), ct);
    }

    // An external rotator (a job that mints the new credential) says it could not rotate: kept as the secret's last
    // failure, shown in metadata, and announced.
    public Task ReportRotationFailureAsync(string tenant, string path, string reason, string principal, CancellationToken ct = default)
    {
        if (string.IsNullOrWhiteSpace(reason))
            throw new WayangException(ErrorCode.SecretInvalid, "a rotation failure needs a reason.");
        reason = reason.Length > MaxReasonLength ? reason[..MaxReasonLength] : reason;
        return MutateAsync(tenant, path, secret => (secret with { LastRotationFailure = reason, LastRotationFailureAtMs = NowMs() },
            new Change(SecretEventKind.RotationFailed, secret.CurrentVersion, principal, reason)), ct);
    }

    // A secret is due RotateEveryDays after its newest version, and again every period after the last announcement
    // while nobody rotates it. The announcement time is stored, so a restart does not announce again.
    public async Task<IReadOnlyList<SecretMetadata>> CheckRotationDueAsync(CancellationToken ct = default)
    {
        var due = new List<SecretMetadata>();
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            long now = NowMs();
            foreach (var (tenant, secrets) in _tenants)
            {
                foreach (var (path, secret) in secrets)
                {
                    if (secret.Policy.RotateEveryDays == 0)
                        continue;
                    long periodMs = (long)TimeSpan.FromDays(secret.Policy.RotateEveryDays).TotalMilliseconds;
                    if (now < Math.Max(secret.Versions[^1].CreatedAtMs, secret.RotationAnnouncedAtMs) + periodMs)
                        continue;
                    var announced = secret with { RotationAnnouncedAtMs = now };
                    await CommitAsync(tenant, path, secret, announced).ConfigureAwait(false);
                    Publish(SecretEventKind.RotationDue, tenant, path, announced.CurrentVersion, null);
                    due.Add(ToMetadata(tenant, path, announced));
                }
            }
        }
        finally
        {
            _writeLock.Release();
        }
        return due;
    }

    // Re-wraps every stored data key under the provider's current key-encryption key, one secret at a time under the
    // write lock, so writes interleave and reads never stop: a read takes whichever wrapping the sealed record holds
    // at that moment, and the old key-encryption key still unwraps until it is retired.
    public async Task<int> RewrapAllAsync(CancellationToken ct = default)
    {
        int count = 0;
        foreach (var (tenant, secrets) in _tenants)
        {
            foreach (var path in secrets.Keys)
            {
                await _writeLock.WaitAsync(ct).ConfigureAwait(false);
                try
                {
                    if (secrets.TryGetValue(path, out var secret))
                        count += await RewrapAsync(tenant, path, secret, ct).ConfigureAwait(false);
                }
                finally
                {
                    _writeLock.Release();
                }
            }
        }
        return count;
    }

    // The key-encryption key ids that wrap at least one stored data key: a master key outside this set can be retired.
    public IReadOnlySet<string> KeyIdsInUse()
    {
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var secrets in _tenants.Values)
        {
            foreach (var secret in secrets.Values)
            {
                foreach (var version in secret.Versions)
                {
                    if (version.HasValue && version.KeyId is not null)
                        ids.Add(version.KeyId);
                }
            }
        }
        return ids;
    }

    // "secret://path/to/x": how a workflow or plugin configuration points at a secret instead of holding it.
    public static bool TryParseReference(string reference, out string path)
    {
        path = "";
        if (reference is null || !reference.StartsWith(ReferenceScheme, StringComparison.Ordinal) || !SecretPath.IsValid(reference[ReferenceScheme.Length..]))
            return false;
        path = reference[ReferenceScheme.Length..];
        return true;
    }

    public Task<SecretValue> ResolveAsync(string tenant, string reference, CancellationToken ct = default)
    {
        if (!TryParseReference(reference, out var path))
            throw new WayangException(ErrorCode.SecretInvalid, $"'{reference}' is not a secret reference (secret://<path>).");
        if (!TryFind(tenant, path, out _))
            throw new WayangException(new WayangError(ErrorCode.SecretNotFound, $"secret reference '{reference}' does not resolve.", details: Details("reference", reference)));
        return GetAsync(tenant, path, 0, ct);
    }

    private async Task<SecretVersionInfo> WriteAsync(string tenant, string path, ReadOnlyMemory<byte> value, long? cas, string principal, bool rotate, CancellationToken ct)
    {
        SecretPath.Validate(path);
        if (value.Length is < 1 or > SecretPath.MaxValueBytes)
            throw new WayangException(ErrorCode.SecretInvalid, $"a secret value is 1..{SecretPath.MaxValueBytes} bytes; this one is {value.Length}.");
        if (cas < 0)
            throw new WayangException(ErrorCode.SecretInvalid, "cas is null (unconditional), 0 (must not exist) or the current version.");

        // The provider round trip happens before the lock, so writes to other secrets do not queue behind the KMS.
        var dataKey = await _provider.GenerateDataKeyAsync(Context(tenant, path), ct).ConfigureAwait(false);
        try
        {
            await _writeLock.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                TryFind(tenant, path, out var existing);
                if (rotate && existing is null)
                    throw NotFound(path, 0);
                long current = existing?.CurrentVersion ?? 0;
                if (cas is long expected && expected != current)
                {
                    throw new WayangException(new WayangError(ErrorCode.SecretVersionConflict,
                        $"secret '{path}' is at version {current}, not {expected}.", details: Details("current", current.ToString(CultureInfo.InvariantCulture))));
                }

                int version = (int)current + 1;
                long now = NowMs();
                var nonce = RandomNumberGenerator.GetBytes(NonceBytes);
                var sealedValue = new byte[value.Length + TagBytes];
                using (var aes = new AesGcm(dataKey.Plaintext, TagBytes))
                    aes.Encrypt(nonce, value.Span, sealedValue.AsSpan(0, value.Length), sealedValue.AsSpan(value.Length), AssociatedData(tenant, path, version));
                var entry = new StoredSecretVersion(version, SecretVersionState.Active, now, principal ?? "", _provider.Name, dataKey.Wrapped.KeyId);
                var secret = existing is null
                    ? new StoredSecret(_options.DefaultPolicy, now, now, null, 0, 0, [entry])
                    : Prune(existing with { UpdatedAtMs = now, Versions = [.. existing.Versions, entry] });

                // The sealed record before the metadata that mentions it: a crash in between leaves an orphan that
                // Load deletes, never a version without its value. Not cancellable once issued (see CommitAsync).
                await PutSealedAsync(tenant, path, version, new StoredSealedValue(dataKey.Wrapped.KeyId, dataKey.Wrapped.Ciphertext, nonce, sealedValue)).ConfigureAwait(false);
                await CommitAsync(tenant, path, existing, secret).ConfigureAwait(false);
                // The writer is the likeliest next reader: its first read skips the provider.
                _cache.Add(DataKeyCache.KeyOf(dataKey.Wrapped), dataKey.Plaintext);
                Publish(rotate ? SecretEventKind.Rotated : SecretEventKind.Written, tenant, path, version, principal);
                return new SecretVersionInfo(path, version, now);
            }
            finally
            {
                _writeLock.Release();
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dataKey.Plaintext);
        }
    }

    private sealed record Change(SecretEventKind Kind, int Version, string Principal, string? Detail = null);

    // change returns the replacement and its event, or null when nothing changes.
    private async Task MutateAsync(string tenant, string path, Func<StoredSecret, (StoredSecret Secret, Change Event)?> change, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var secret = Find(tenant, path);
            if (change(secret) is not var (changed, e))
                return;
            await CommitAsync(tenant, path, secret, changed with { UpdatedAtMs = NowMs() }).ConfigureAwait(false);
            Publish(e.Kind, tenant, path, e.Version, e.Detail ?? e.Principal);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // Keeps the newest MaxVersions versions; older ones stay in the history as pruned and CommitAsync deletes their
    // sealed records.
    private static StoredSecret Prune(StoredSecret secret)
    {
        int keepFrom = secret.CurrentVersion - secret.Policy.MaxVersions;
        if (!Array.Exists(secret.Versions, v => v.Version <= keepFrom && v.HasValue))
            return secret;
        return secret with
        {
            Versions = Array.ConvertAll(secret.Versions, v => v.Version > keepFrom || !v.HasValue ? v : v with { State = SecretVersionState.Pruned }),
        };
    }

    private async Task<int> RewrapAsync(string tenant, string path, StoredSecret secret, CancellationToken ct)
    {
        var versions = (StoredSecretVersion[])secret.Versions.Clone();
        var context = Context(tenant, path);
        int count = 0;
        try
        {
            for (int i = 0; i < versions.Length; i++)
            {
                if (!versions[i].HasValue)
                    continue;
                var stored = ReadSealed(tenant, path, versions[i].Version);
                var rewrapped = await _provider.RewrapAsync(WrappedOf(stored), context, ct).ConfigureAwait(false);
                // The sealed record first: it is what unwrapping uses. A crash before the metadata below only leaves
                // the metadata naming the previous key-encryption key, which KeyIdsInUse then keeps reporting (so it
                // is not retired) until the next rewrap corrects it.
                await PutSealedAsync(tenant, path, versions[i].Version, stored with { KeyId = rewrapped.KeyId, WrappedKey = rewrapped.Ciphertext }).ConfigureAwait(false);
                versions[i] = versions[i] with { Provider = _provider.Name, KeyId = rewrapped.KeyId };
                count++;
            }
        }
        finally
        {
            // Also when the provider fails or the caller cancels part way: the versions already re-wrapped are recorded.
            if (count > 0)
                await CommitAsync(tenant, path, secret, secret with { Versions = versions }).ConfigureAwait(false);
        }
        return count;
    }

    private static StoredSecret Replace(StoredSecret secret, StoredSecretVersion entry)
    {
        var versions = (StoredSecretVersion[])secret.Versions.Clone();
        versions[Array.FindIndex(versions, v => v.Version == entry.Version)] = entry;
        return secret with { Versions = versions };
    }

    private static StoredSecretVersion? FindVersion(StoredSecret secret, int version) => Array.Find(secret.Versions, v => v.Version == version);

    private StoredSecret Find(string tenant, string path)
    {
        SecretPath.Validate(path);
        return TryFind(tenant, path, out var secret) ? secret : throw NotFound(path, 0);
    }

    private bool TryFind(string tenant, string path, out StoredSecret secret)
    {
        secret = null!;
        return tenant is not null && path is not null && _tenants.TryGetValue(tenant, out var secrets) && secrets.TryGetValue(path, out secret!);
    }

    // Makes after (null: the secret is gone) durable and visible, then deletes the sealed records of the versions that
    // held a value in before and no longer do (destroyed, pruned, or the whole secret). Metadata first: a crash in
    // between leaves orphans that Load deletes, never metadata offering a value that is gone. Not cancellable once
    // issued: a write that may be durable must also become visible.
    private async ValueTask CommitAsync(string tenant, string path, StoredSecret? before, StoredSecret? after)
    {
        if (after is null)
        {
            await _store.DeleteAsync(Key(tenant, path), CancellationToken.None).ConfigureAwait(false);
            _tenants[tenant].TryRemove(path, out _);
        }
        else
        {
            await _store.PutAsync(Key(tenant, path), JsonSerializer.SerializeToUtf8Bytes(after, SecretJsonContext.Default.StoredSecret), CancellationToken.None).ConfigureAwait(false);
            _tenants.GetOrAdd(tenant, _ => new(StringComparer.Ordinal))[path] = after;
        }
        foreach (var version in before?.Versions ?? [])
        {
            if (!version.HasValue || (after is not null && FindVersion(after, version.Version) is { HasValue: true }))
                continue;
            var key = SealedKey(tenant, path, version.Version);
            if (_store.TryGet(Encoding.UTF8.GetBytes(key), out var record))
                _cache.Remove(DataKeyCache.KeyOf(WrappedOf(Parse(record, SecretJsonContext.Default.StoredSealedValue, key))));
            await _store.DeleteAsync(Encoding.UTF8.GetBytes(key), CancellationToken.None).ConfigureAwait(false);
        }
    }

    private ValueTask PutSealedAsync(string tenant, string path, int version, StoredSealedValue value) =>
        _store.PutAsync(Encoding.UTF8.GetBytes(SealedKey(tenant, path, version)), JsonSerializer.SerializeToUtf8Bytes(value, SecretJsonContext.Default.StoredSealedValue), CancellationToken.None);

    // A version's sealed record. Missing while the version holds a value is corruption; missing because a destroy or
    // prune committed after the caller took its snapshot answers as the version's state now does.
    private StoredSealedValue ReadSealed(string tenant, string path, int version)
    {
        var key = SealedKey(tenant, path, version);
        if (_store.TryGet(Encoding.UTF8.GetBytes(key), out var record))
            return Parse(record, SecretJsonContext.Default.StoredSealedValue, key);
        var entry = FindVersion(Find(tenant, path), version) ?? throw NotFound(path, version);
        throw entry.HasValue ? Corrupt(key, "the record is missing") : Unavailable(path, $"version {version} is {StateName(entry)}");
    }

    private static WrappedDataKey WrappedOf(StoredSealedValue value) => new(value.KeyId, value.WrappedKey);

    private void Publish(SecretEventKind kind, string tenant, string path, int version, string? detail) =>
        Events.Publish(new SecretEvent(kind, tenant, path, version, NowMs(), detail));

    private void Load()
    {
        foreach (var (keyBytes, value) in _store.ScanPrefix(Encoding.UTF8.GetBytes(Prefix)))
        {
            var key = Encoding.UTF8.GetString(keyBytes);
            var suffix = key[Prefix.Length..];
            int slash = suffix.IndexOf('/', StringComparison.Ordinal);
            if (slash <= 0 || !SecretPath.IsValid(suffix[(slash + 1)..]))
                throw Corrupt(key, "malformed key");
            var secret = Parse(value, SecretJsonContext.Default.StoredSecret, key);
            if (secret.Versions is not { Length: > 0 })
                throw Corrupt(key, "no versions");
            // The single-record layout this branch started with: refused rather than read as versions whose values
            // are missing (it never shipped, so there is nothing to migrate).
            if (Array.Exists(secret.Versions, v => v.LegacyCiphertext is not null))
                throw Corrupt(key, "it holds sealed values in the old single-record layout");
            Array.Sort(secret.Versions, (a, b) => a.Version.CompareTo(b.Version));
            _tenants.GetOrAdd(suffix[..slash], _ => new(StringComparer.Ordinal))[suffix[(slash + 1)..]] = secret;
        }

        // Orphans: sealed records that no Active or Disabled version mentions. A crash between the two steps of a write
        // (sealed record put, metadata not yet) or of a destroy or prune (metadata committed, sealed record not yet
        // deleted) leaves one; deleting it here restores "a sealed record exactly for each version holding a value".
        // Waiting on the deletes blocks only the constructor's caller: nothing else can use this store yet.
        foreach (var (keyBytes, _) in _store.ScanPrefix(Encoding.UTF8.GetBytes(SealedPrefix)))
        {
            var key = Encoding.UTF8.GetString(keyBytes);
            var suffix = key[SealedPrefix.Length..];
            int first = suffix.IndexOf('/', StringComparison.Ordinal);
            int last = suffix.LastIndexOf('/');
            if (first <= 0 || last <= first || !int.TryParse(suffix.AsSpan(last + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int version))
                throw Corrupt(key, "malformed key");
            if (TryFind(suffix[..first], suffix[(first + 1)..last], out var secret) && FindVersion(secret, version) is { HasValue: true })
                continue;
            _store.DeleteAsync(keyBytes, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        }
    }

    private static T Parse<T>(byte[] value, JsonTypeInfo<T> type, string key)
    {
        try
        {
            return JsonSerializer.Deserialize(value, type) ?? throw Corrupt(key, "null record");
        }
        catch (JsonException ex)
        {
            throw Corrupt(key, ex.Message);
        }
    }

    private static SecretMetadata ToMetadata(string tenant, string path, StoredSecret secret) => new(
        tenant, path, secret.CurrentVersion, secret.Policy,
        Array.ConvertAll(secret.Versions, v => new SecretVersionMetadata(v.Version, v.State, v.CreatedAtMs, v.CreatedBy, v.Provider, v.KeyId)),
        secret.CreatedAtMs, secret.UpdatedAtMs, secret.LastRotationFailure, secret.LastRotationFailureAtMs, secret.RotationAnnouncedAtMs);

    private static void ValidatePolicy(SecretPolicy policy)
    {
        if (policy is null || policy.MaxVersions is < 1 or > 100 || policy.RotateEveryDays is < 0 or > 3650)
            throw new WayangException(ErrorCode.SecretInvalid, "a secret policy has MaxVersions 1..100 and RotateEveryDays 0 (off)..3650.");
    }

    // What the provider binds to the wrapped data key.
    private static Dictionary<string, string> Context(string tenant, string path) =>
        new(StringComparer.Ordinal) { ["tenant"] = tenant, ["path"] = path };

    // Bound into every sealed value: a ciphertext moved to another tenant, path or version fails authentication.
    internal static byte[] AssociatedData(string tenant, string path, int version) =>
        Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"wayang-secret-v1\0{tenant}\0{path}\0{version}"));

    private static byte[] Key(string tenant, string path) => Encoding.UTF8.GetBytes(Prefix + tenant + "/" + path);

    // "secret-v/" does not start with "secret/", so loading metadata never reads a sealed value. Zero-padded, so a
    // secret's versions sort in order.
    private static string SealedKey(string tenant, string path, int version) =>
        string.Create(CultureInfo.InvariantCulture, $"{SealedPrefix}{tenant}/{path}/{version:D10}");

    private static string StateName(StoredSecretVersion version) => version.State.ToString().ToLowerInvariant();

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private static Dictionary<string, string> Details(string key, string value) => new(StringComparer.Ordinal) { [key] = value };

    // The same answer for a missing secret, a missing version and another tenant's secret.
    private static WayangException NotFound(string path, int version) => new(new WayangError(ErrorCode.SecretNotFound,
        version == 0 ? $"secret '{path}' does not exist." : $"secret '{path}' version {version} does not exist.", details: Details("path", path ?? "")));

    private static WayangException Unavailable(string path, string what) =>
        new(new WayangError(ErrorCode.SecretVersionUnavailable, $"secret '{path}' {what}.", details: Details("path", path)));

    private static WayangException Corrupt(string key, string reason) =>
        new(ErrorCode.StorageCorrupt, $"Stored secret record '{key}' cannot be loaded: {reason}");
}
