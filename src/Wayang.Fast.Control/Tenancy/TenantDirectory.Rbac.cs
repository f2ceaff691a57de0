using Wayang.Fast.Common;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Rbac;

namespace Wayang.Fast.Control.Tenancy;

// Role bindings and a tenant's own roles. A principal is an API key (executors authenticate with keys of the
// executor role), so a key's role list IS its set of bindings in its tenant. Every change swaps the affected keys'
// grants, which live connections read at their next request.
public sealed partial class TenantDirectory
{
    public sealed record RoleBinding(string KeyId, string KeyName, IReadOnlyList<string> Roles, bool Revoked);

    public IReadOnlyList<RoleBinding> ListBindings(string tenantId) =>
        [.. ListKeys(tenantId).Select(k => new RoleBinding(k.KeyId, k.Name, k.Roles, k.Revoked))];

    // Adds (grant) or removes (!grant) one role binding of a key. Idempotent: binding a bound role changes nothing.
    public async ValueTask<ApiKeyInfo> SetBindingAsync(string keyId, string role, bool grant, CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_keys.TryGetValue(keyId, out var stored))
                throw new WayangException(ErrorCode.KeyNotFound, $"API key '{keyId}' does not exist.");
            bool bound = stored.Roles.Contains(role, StringComparer.Ordinal);
            if (grant == bound)
            {
                if (grant || RoleCatalog.TryResolve(stored.TenantId, role, out _))
                    return stored.ToInfo();
                throw new WayangException(ErrorCode.RoleNotFound, $"Role '{role}' does not exist in tenant '{stored.TenantId}'.");
            }
            if (grant)
                CheckBindable(stored.TenantId, role);
            else if (stored.Roles.Length == 1)
                throw new WayangException(ErrorCode.InvalidArgument, $"Key '{keyId}' would have no role left; revoke the key instead.");
            var roles = grant ? [.. stored.Roles, role] : stored.Roles.Where(r => r != role).ToArray();
            var updated = stored with { Roles = roles };
            await PersistKeyAsync(updated, cancellationToken).ConfigureAwait(false);
            return updated.ToInfo();
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public async ValueTask<RoleInfo> PutRoleAsync(string tenantId, string name, IReadOnlyList<string> permissions, CancellationToken cancellationToken = default)
    {
        if (!Ids.IsValidName(name))
            throw new WayangException(ErrorCode.InvalidArgument, "Role name must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit.");
        if (BuiltInRoles.IsBuiltIn(name))
            throw new WayangException(ErrorCode.RoleBuiltIn, $"Role '{name}' is built in and cannot be changed.");
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_tenants.ContainsKey(tenantId))
                throw new WayangException(ErrorCode.TenantNotFound, $"Tenant '{tenantId}' does not exist.");
            var info = await RoleCatalog.PutAsync(tenantId, name, permissions, _time.GetUtcNow().ToUnixTimeMilliseconds(), cancellationToken).ConfigureAwait(false);
            RefreshGrants(tenantId, name);
            return info;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // Returns the role as it was.
    public async ValueTask<RoleInfo> DeleteRoleAsync(string tenantId, string name, CancellationToken cancellationToken = default)
    {
        if (BuiltInRoles.IsBuiltIn(name))
            throw new WayangException(ErrorCode.RoleBuiltIn, $"Role '{name}' is built in and cannot be deleted.");
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!RoleCatalog.IsCustom(tenantId, name))
                throw new WayangException(ErrorCode.RoleNotFound, $"Role '{name}' does not exist in tenant '{tenantId}'.");
            var boundTo = _keys.Values.FirstOrDefault(k => k.TenantId == tenantId && !k.Revoked && k.Roles.Contains(name, StringComparer.Ordinal));
            if (boundTo is not null)
                throw new WayangException(ErrorCode.RoleInUse, $"Role '{name}' is still bound to key '{boundTo.KeyId}'.");
            return await RoleCatalog.DeleteAsync(tenantId, name, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    // Called under _writeLock.
    private void CheckBindable(string tenantId, string role)
    {
        // Platform administration is a property of the system tenant; a tenant's own admin cannot mint it.
        if (role == Roles.PlatformAdmin && tenantId != SystemTenantId)
            throw new WayangException(ErrorCode.InvalidArgument, $"Role '{Roles.PlatformAdmin}' can only be granted to keys of the '{SystemTenantId}' tenant.");
        if (!RoleCatalog.TryResolve(tenantId, role, out _))
        {
            throw new WayangException(new WayangError(ErrorCode.RoleNotFound,
                $"Unknown role '{role}'. Built-in roles: {string.Join(", ", Roles.All)}; or a role created in tenant '{tenantId}'.",
                details: new Dictionary<string, string>(StringComparer.Ordinal) { ["role"] = role }));
        }
    }

    private PrincipalGrant GrantOf(StoredApiKey stored) => _grants.GetOrAdd(stored.KeyId, static (_, s) => new PrincipalGrant(s.dir.SnapshotOf(s.key)), (dir: this, key: stored));

    private GrantSnapshot SnapshotOf(StoredApiKey stored) =>
        stored.Revoked ? GrantSnapshot.None : new GrantSnapshot(stored.Roles, RoleCatalog.Resolve(stored.TenantId, stored.Roles));

    private void RefreshGrants(string tenantId, string role)
    {
        foreach (var key in _keys.Values)
        {
            if (key.TenantId == tenantId && key.Roles.Contains(role, StringComparer.Ordinal) && _grants.TryGetValue(key.KeyId, out var grant))
                grant.Set(SnapshotOf(key));
        }
    }
}
