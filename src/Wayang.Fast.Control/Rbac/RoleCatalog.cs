using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Control.Rbac;

public sealed record RoleInfo(string TenantId, string Name, bool BuiltIn, IReadOnlyList<string> Permissions, long UpdatedAtMs);

// Built-in roles plus each tenant's own roles ("role/<tenant>/<name>" in the state store, loaded at start).
// Writes go through TenantDirectory, which serializes them with key changes and refreshes the grants they affect.
public sealed class RoleCatalog
{
    private const string Prefix = "role/";

    private readonly IStateStore _store;
    private readonly ConcurrentDictionary<(string Tenant, string Name), (StoredRole Stored, PermissionSet Set)> _custom = new();

    internal RoleCatalog(IStateStore store)
    {
        _store = store;
        foreach (var (_, value) in store.ScanPrefix(Encoding.UTF8.GetBytes(Prefix)))
        {
            StoredRole role;
            try
            {
                role = JsonSerializer.Deserialize(value, TenancyJsonContext.Default.StoredRole) ?? throw new JsonException("null role");
            }
            catch (JsonException ex)
            {
                throw new WayangException(new WayangError(ErrorCode.StorageCorrupt, "A stored role record cannot be decoded."), ex);
            }
            _custom[(role.TenantId, role.Name)] = (role, Parse(role.Permissions, role.TenantId, stored: true));
        }
    }

    public bool TryResolve(string tenantId, string role, out PermissionSet permissions)
    {
        if (BuiltInRoles.TryGet(role, out permissions))
            return true;
        if (_custom.TryGetValue((tenantId, role), out var custom))
        {
            permissions = custom.Set;
            return true;
        }
        return false;
    }

    // Unknown roles grant nothing (a binding to a deleted role cannot exist, but deny by default regardless).
    public PermissionSet Resolve(string tenantId, IReadOnlyList<string> roles)
    {
        var set = PermissionSet.Empty;
        foreach (var role in roles)
        {
            if (TryResolve(tenantId, role, out var p))
                set = set.Union(p);
        }
        // Platform-only permissions never reach a principal outside the system tenant, whatever a role says.
        return tenantId == TenantDirectory.SystemTenantId ? set : set.Except(Permissions.PlatformOnly);
    }

    public IReadOnlyList<RoleInfo> List(string tenantId)
    {
        var list = new List<RoleInfo>();
        foreach (var name in Roles.All)
        {
            // platform-admin exists only in the system tenant.
            if (name == Roles.PlatformAdmin && tenantId != TenantDirectory.SystemTenantId)
                continue;
            BuiltInRoles.TryGet(name, out var set);
            list.Add(new RoleInfo(tenantId, name, true, set.Names(), 0));
        }
        foreach (var ((tenant, _), (stored, set)) in _custom)
        {
            if (tenant == tenantId)
                list.Add(new RoleInfo(tenant, stored.Name, false, set.Names(), stored.UpdatedAtMs));
        }
        list.Sort((a, b) => a.BuiltIn != b.BuiltIn ? (a.BuiltIn ? -1 : 1) : a.BuiltIn ? 0 : string.CompareOrdinal(a.Name, b.Name));
        return list;
    }

    internal bool IsCustom(string tenantId, string name) => _custom.ContainsKey((tenantId, name));

    internal async ValueTask<RoleInfo> PutAsync(string tenantId, string name, IReadOnlyList<string> permissionNames, long nowMs, CancellationToken cancellationToken)
    {
        var set = Parse(permissionNames, tenantId, stored: false);
        long createdAt = _custom.TryGetValue((tenantId, name), out var existing) ? existing.Stored.CreatedAtMs : nowMs;
        var stored = new StoredRole(tenantId, name, [.. set.Names()], createdAt, nowMs);
        await _store.PutAsync(Key(tenantId, name), JsonSerializer.SerializeToUtf8Bytes(stored, TenancyJsonContext.Default.StoredRole), cancellationToken).ConfigureAwait(false);
        _custom[(tenantId, name)] = (stored, set);
        return new RoleInfo(tenantId, name, false, set.Names(), nowMs);
    }

    // Returns the role as it was.
    internal async ValueTask<RoleInfo> DeleteAsync(string tenantId, string name, CancellationToken cancellationToken)
    {
        await _store.DeleteAsync(Key(tenantId, name), cancellationToken).ConfigureAwait(false);
        _custom.TryRemove((tenantId, name), out var removed);
        return new RoleInfo(tenantId, name, false, removed.Set.Names(), removed.Stored?.UpdatedAtMs ?? 0);
    }

    private static byte[] Key(string tenantId, string name) => Encoding.UTF8.GetBytes(string.Concat(Prefix, tenantId, "/", name));

    private static PermissionSet Parse(IReadOnlyList<string> names, string tenantId, bool stored)
    {
        var set = PermissionSet.Of(Permission.Session);
        foreach (var name in names)
        {
            if (!Permissions.TryParse(name, out var p))
            {
                if (stored)
                    throw new WayangException(ErrorCode.StorageCorrupt, $"A stored role of tenant '{tenantId}' names unknown permission '{name}'.");
                throw new WayangException(new WayangError(ErrorCode.InvalidArgument,
                    $"Unknown permission '{name}'. Known permissions: {string.Join(", ", Permissions.All.Select(Permissions.NameOf))}.",
                    details: new Dictionary<string, string>(StringComparer.Ordinal) { ["permission"] = name }));
            }
            set = set.Union(PermissionSet.Of(p));
        }
        if (!stored && tenantId != TenantDirectory.SystemTenantId && set.Overlaps(Permissions.PlatformOnly))
        {
            throw new WayangException(ErrorCode.InvalidArgument,
                $"Permissions {string.Join(", ", set.Members().Where(p => Permissions.PlatformOnly.Has(p)).Select(Permissions.NameOf))} can only be granted in the '{TenantDirectory.SystemTenantId}' tenant.");
        }
        return set;
    }
}
