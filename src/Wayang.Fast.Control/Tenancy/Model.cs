namespace Wayang.Fast.Control.Tenancy;

public sealed record Tenant(string TenantId, string DisplayName, long CreatedAtMs);

public sealed record ApiKeyInfo(string KeyId, string TenantId, string Name, IReadOnlyList<string> Roles, long CreatedAtMs, bool Revoked, long RevokedAtMs);

// Who is calling: fixed at handshake for the life of a connection.
public sealed record Principal(string TenantId, string KeyId, IReadOnlyList<string> Roles)
{
    public bool IsPlatformAdmin { get; } = Roles.Contains(Tenancy.Roles.PlatformAdmin, StringComparer.Ordinal);

    public bool HasRole(string role) => Roles.Contains(role, StringComparer.Ordinal);
}

// Secret is the whole key string a client presents; it exists only in this object and is never stored.
public sealed record CreatedApiKey(string Secret, ApiKeyInfo Info)
{
    // Keep the secret out of accidental ToString() in logs and debugger displays.
    public override string ToString() => $"CreatedApiKey {{ KeyId = {Info.KeyId}, TenantId = {Info.TenantId} }}";
}
