using System.Text.Json.Serialization;

namespace Wayang.Fast.Control.Secrets;

// Stored secret records and the local keyring. Field names are the persisted format: add, never rename. byte[]
// fields are base64. Not strict, so a record written by a newer build with an added field still loads.
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(StoredSecret))]
[JsonSerializable(typeof(List<StoredMasterKey>))]
internal sealed partial class SecretJsonContext : JsonSerializerContext;

// One record per secret under "secret/<tenant>/<path>", also the in-memory snapshot (immutable: a change replaces
// it). The key is authoritative for tenant and path: they are not repeated here, and both are bound into every
// version's associated data, so a record copied elsewhere fails to decrypt. Versions ascend by number.
internal sealed record StoredSecret(
    SecretPolicy Policy,
    long CreatedAtMs,
    long UpdatedAtMs,
    string? LastRotationFailure,
    long LastRotationFailureAtMs,
    long RotationAnnouncedAtMs,
    StoredSecretVersion[] Versions)
{
    [JsonIgnore]
    public int CurrentVersion => Versions[^1].Version;
}

// WrappedKey, Nonce and Ciphertext (AES-256-GCM output followed by its 16-byte tag) are null once the version is
// destroyed or pruned: without them the value is gone for good.
internal sealed record StoredSecretVersion(
    int Version,
    SecretVersionState State,
    long CreatedAtMs,
    string CreatedBy,
    string? Provider,
    string? KeyId,
    byte[]? WrappedKey,
    byte[]? Nonce,
    byte[]? Ciphertext)
{
    [JsonIgnore]
    public bool HasValue => WrappedKey is not null;
}
