using System.Text.Json.Serialization;

namespace Wayang.Fast.Control.Tenancy;

// Persisted shapes (JSON values in the state store). Field names are the persisted format: add, never rename.
internal sealed record StoredTenant(string TenantId, string DisplayName, long CreatedAtMs);

// Roles are the key's role bindings in its tenant: set at creation, changed by binding grants and revocations.
internal sealed record StoredApiKey(string KeyId, string TenantId, string Name, string[] Roles, long CreatedAtMs, bool Revoked, long RevokedAtMs, string SecretSha256)
{
    public ApiKeyInfo ToInfo() => new(KeyId, TenantId, Name, Roles, CreatedAtMs, Revoked, RevokedAtMs);
}

// A tenant's own role: permission names (Permissions), never numbers, so the stored form survives renumbering mistakes.
internal sealed record StoredRole(string TenantId, string Name, string[] Permissions, long CreatedAtMs, long UpdatedAtMs);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(StoredTenant))]
[JsonSerializable(typeof(StoredApiKey))]
[JsonSerializable(typeof(StoredRole))]
internal sealed partial class TenancyJsonContext : JsonSerializerContext;
