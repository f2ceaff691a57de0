using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Rbac;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Control.Tenancy;

// Tenants and API keys. The state store is the durable truth; the dictionaries here are its in-memory index,
// loaded at start, so authentication (once per connection) and listings never touch storage.
// Every mutation awaits the store's durable write before it is visible as a result, so a caller that
// replies afterwards never acknowledges something a crash could lose.
public sealed partial class TenantDirectory
{
    public const string SystemTenantId = "system";
    public const string BootstrapKeyName = "bootstrap-admin";

    private const string TenantPrefix = "tenant/";
    private const string KeyPrefix = "apikey/";

    private readonly IStateStore _store;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, StoredTenant> _tenants = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, StoredApiKey> _keys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, StoredApiKey>.AlternateLookup<ReadOnlySpan<char>> _keysBySpan;
    // One grant per key, shared by all of its connections (see PrincipalGrant).
    private readonly ConcurrentDictionary<string, PrincipalGrant> _grants = new(StringComparer.Ordinal);
    // Serializes mutations: they are rare (admin calls) and this keeps check-then-write races out.
    private readonly SemaphoreSlim _writeLock = new(1, 1);

    public RoleCatalog RoleCatalog { get; }

    public TenantDirectory(IStateStore store, TimeProvider? time = null)
    {
        _store = store;
        _time = time ?? TimeProvider.System;
        _keysBySpan = _keys.GetAlternateLookup<ReadOnlySpan<char>>();
        RoleCatalog = new RoleCatalog(store);
        foreach (var (_, value) in store.ScanPrefix(Encoding.UTF8.GetBytes(TenantPrefix)))
        {
            var tenant = Deserialize(value, TenancyJsonContext.Default.StoredTenant);
            _tenants[tenant.TenantId] = tenant;
        }
        foreach (var (_, value) in store.ScanPrefix(Encoding.UTF8.GetBytes(KeyPrefix)))
        {
            var key = Deserialize(value, TenancyJsonContext.Default.StoredApiKey);
            _keys[key.KeyId] = key;
        }
    }

    // On first start there is no key at all, so nobody could administer the server: create the system tenant
    // and one platform-admin key, and hand its secret back exactly once.
    // beforeCommit receives the key before its record is written: the caller stores the secret there (a file), so a
    // crash can never leave a committed admin key whose secret nobody has. A crash after beforeCommit but before
    // the commit leaves no key, and the next start bootstraps again.
    public async ValueTask<CreatedApiKey?> EnsureBootstrapAdminAsync(Func<CreatedApiKey, ValueTask>? beforeCommit = null, CancellationToken cancellationToken = default)
    {
        if (!_keys.IsEmpty)
            return null;
        if (!_tenants.ContainsKey(SystemTenantId))
            await CreateTenantAsync(SystemTenantId, "System", cancellationToken).ConfigureAwait(false);
        if (!_keys.IsEmpty)
            return null;
        return await CreateKeyCoreAsync(SystemTenantId, BootstrapKeyName, [Roles.PlatformAdmin], beforeCommit, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<Tenant> CreateTenantAsync(string tenantId, string displayName, CancellationToken cancellationToken = default)
    {
        if (!Ids.IsValidName(tenantId))
            throw new WayangException(ErrorCode.InvalidArgument, "Tenant id must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit.");
        if (displayName.Length > 256)
            throw new WayangException(ErrorCode.InvalidArgument, "Display name must be at most 256 characters.");

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_tenants.ContainsKey(tenantId))
                throw new WayangException(ErrorCode.TenantExists, $"Tenant '{tenantId}' already exists.");
            var stored = new StoredTenant(tenantId, string.IsNullOrEmpty(displayName) ? tenantId : displayName, _time.GetUtcNow().ToUnixTimeMilliseconds());
            await _store.PutAsync(Encoding.UTF8.GetBytes(TenantPrefix + tenantId), Serialize(stored, TenancyJsonContext.Default.StoredTenant), cancellationToken).ConfigureAwait(false);
            _tenants[tenantId] = stored;
            return ToTenant(stored);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public IReadOnlyList<Tenant> ListTenants() =>
        [.. _tenants.Values.OrderBy(t => t.TenantId, StringComparer.Ordinal).Select(ToTenant)];

    public bool TenantExists(string tenantId) => _tenants.ContainsKey(tenantId);

    public ValueTask<CreatedApiKey> CreateKeyAsync(string tenantId, string name, IReadOnlyList<string> roles, CancellationToken cancellationToken = default) =>
        CreateKeyCoreAsync(tenantId, name, roles, beforeCommit: null, cancellationToken);

    private async ValueTask<CreatedApiKey> CreateKeyCoreAsync(string tenantId, string name, IReadOnlyList<string> roles, Func<CreatedApiKey, ValueTask>? beforeCommit, CancellationToken cancellationToken)
    {
        if (!Ids.IsValidName(name))
            throw new WayangException(ErrorCode.InvalidArgument, "Key name must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit.");
        if (roles.Count == 0)
            throw new WayangException(ErrorCode.InvalidArgument, "A key needs at least one role.");

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_tenants.ContainsKey(tenantId))
                throw new WayangException(ErrorCode.TenantNotFound, $"Tenant '{tenantId}' does not exist.");
            foreach (var role in roles)
                CheckBindable(tenantId, role);
            var (keyId, secret, fullKey) = ApiKeyFormat.Generate();
            var stored = new StoredApiKey(keyId, tenantId, name, [.. roles.Distinct(StringComparer.Ordinal)], _time.GetUtcNow().ToUnixTimeMilliseconds(), false, 0, ApiKeyFormat.HashSecret(secret));
            var created = new CreatedApiKey(fullKey, stored.ToInfo());
            if (beforeCommit is not null)
                await beforeCommit(created).ConfigureAwait(false);
            await PersistKeyAsync(stored, cancellationToken).ConfigureAwait(false);
            return created;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public IReadOnlyList<ApiKeyInfo> ListKeys(string tenantId) =>
        [.. _keys.Values.Where(k => k.TenantId == tenantId).OrderBy(k => k.CreatedAtMs).ThenBy(k => k.KeyId, StringComparer.Ordinal).Select(k => k.ToInfo())];

    public bool TryGetKey(string keyId, out ApiKeyInfo info)
    {
        if (_keys.TryGetValue(keyId, out var stored))
        {
            info = stored.ToInfo();
            return true;
        }
        info = null!;
        return false;
    }

    public async ValueTask<ApiKeyInfo> RevokeKeyAsync(string keyId, CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_keys.TryGetValue(keyId, out var stored))
                throw new WayangException(ErrorCode.KeyNotFound, $"API key '{keyId}' does not exist.");
            if (stored.Revoked)
                return stored.ToInfo();
            var revoked = stored with { Revoked = true, RevokedAtMs = _time.GetUtcNow().ToUnixTimeMilliseconds() };
            await PersistKeyAsync(revoked, cancellationToken).ConfigureAwait(false);
            return revoked.ToInfo();
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // Constant-time comparison of the secret's hash; an unknown id and a wrong secret give the same answer.
    public ErrorCode Authenticate(ReadOnlySpan<char> presentedKey, out Principal? principal)
    {
        principal = null;
        if (!ApiKeyFormat.TryParse(presentedKey, out var keyId, out var secret))
            return ErrorCode.Unauthenticated;
        if (!_keysBySpan.TryGetValue(keyId, out var stored))
            return ErrorCode.Unauthenticated;

        Span<byte> presentedHash = stackalloc byte[SHA256.HashSizeInBytes];
        Span<byte> storedHash = stackalloc byte[SHA256.HashSizeInBytes];
        ApiKeyFormat.HashSecret(secret, presentedHash);
        if (Convert.FromHexString(stored.SecretSha256, storedHash, out _, out int written) != System.Buffers.OperationStatus.Done || written != storedHash.Length)
            return ErrorCode.Unauthenticated;
        if (!CryptographicOperations.FixedTimeEquals(presentedHash, storedHash))
            return ErrorCode.Unauthenticated;
        if (stored.Revoked)
            return ErrorCode.KeyRevoked;

        principal = new Principal(stored.TenantId, stored.KeyId, GrantOf(stored));
        return ErrorCode.None;
    }

    private async ValueTask PersistKeyAsync(StoredApiKey stored, CancellationToken cancellationToken)
    {
        await _store.PutAsync(Encoding.UTF8.GetBytes(KeyPrefix + stored.KeyId), Serialize(stored, TenancyJsonContext.Default.StoredApiKey), cancellationToken).ConfigureAwait(false);
        _keys[stored.KeyId] = stored;
        if (_grants.TryGetValue(stored.KeyId, out var grant))
            grant.Set(SnapshotOf(stored));
    }

    private static Tenant ToTenant(StoredTenant t) => new(t.TenantId, t.DisplayName, t.CreatedAtMs);

    private static byte[] Serialize<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo) =>
        JsonSerializer.SerializeToUtf8Bytes(value, typeInfo);

    private static T Deserialize<T>(byte[] value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo)
    {
        try
        {
            return JsonSerializer.Deserialize(value, typeInfo) ?? throw new WayangException(ErrorCode.StorageCorrupt, $"A stored {typeof(T).Name} record is null.");
        }
        catch (JsonException ex)
        {
            throw new WayangException(new WayangError(ErrorCode.StorageCorrupt, $"A stored {typeof(T).Name} record cannot be decoded."), ex);
        }
    }
}
