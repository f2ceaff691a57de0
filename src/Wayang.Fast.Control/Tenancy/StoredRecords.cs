using System.Text.Json.Serialization;

namespace Wayang.Fast.Control.Tenancy;

// Persisted shapes (JSON values in the state store). Field names are the persisted format: add, never rename.
internal sealed record StoredTenant(string TenantId, string DisplayName, long CreatedAtMs);

internal sealed record StoredApiKey(string KeyId, string TenantId, string Name, string[] Roles, long CreatedAtMs, bool Revoked, long RevokedAtMs, string SecretSha256)
{
    public ApiKeyInfo ToInfo() => new(KeyId, TenantId, Name, Roles, CreatedAtMs, Revoked, RevokedAtMs);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(StoredTenant))]
[JsonSerializable(typeof(StoredApiKey))]
internal sealed partial class TenancyJsonContext : JsonSerializerContext;
