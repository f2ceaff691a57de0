using Wayang.Fast.Control.Rbac;

namespace Wayang.Fast.Control.Tenancy;

public sealed record Tenant(string TenantId, string DisplayName, long CreatedAtMs);

// Roles are the key's role bindings in its tenant (RoleBindings administration changes them).
public sealed record ApiKeyInfo(string KeyId, string TenantId, string Name, IReadOnlyList<string> Roles, long CreatedAtMs, bool Revoked, long RevokedAtMs);

// Who is calling: the tenant and key are fixed at handshake for the life of a connection; what the principal may do
// is read from its grant at every request, so binding changes and revocation apply at once.
public sealed class Principal(string tenantId, string keyId, PrincipalGrant grant)
{
    public string TenantId { get; } = tenantId;
    public string KeyId { get; } = keyId;
    public PrincipalGrant Grant { get; } = grant;

    public IReadOnlyList<string> Roles => Grant.Current.Roles;

    // Platform administration is the cross-tenant permission (held by platform-admin in the system tenant only).
    public bool IsPlatformAdmin => Grant.Current.Permissions.Has(Permission.CrossTenant);

    public bool Has(Permission permission) => Grant.Current.Permissions.Has(permission);

    public bool HasRole(string role) => Roles.Contains(role, StringComparer.Ordinal);

    // A principal acts in its own tenant; only a cross-tenant principal may name another.
    public bool CanActIn(string tenantId) => IsPlatformAdmin || string.Equals(TenantId, tenantId, StringComparison.Ordinal);
}

// Secret is the whole key string a client presents; it exists only in this object and is never stored.
public sealed record CreatedApiKey(string Secret, ApiKeyInfo Info)
{
    // Keep the secret out of accidental ToString() in logs and debugger displays.
    public override string ToString() => $"CreatedApiKey {{ KeyId = {Info.KeyId}, TenantId = {Info.TenantId} }}";
}
