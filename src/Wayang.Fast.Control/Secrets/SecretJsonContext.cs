using System.Text.Json.Serialization;

namespace Wayang.Fast.Control.Secrets;

// Stored secret records and the local keyring. Field names are the persisted format: add, never rename. byte[]
// fields are base64. Not strict, so a record written by a newer build with an added field still loads.
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(StoredSecret))]
[JsonSerializable(typeof(StoredSealedValue))]
[JsonSerializable(typeof(List<StoredMasterKey>))]
internal sealed partial class SecretJsonContext : JsonSerializerContext;

// A secret's metadata under "secret/<tenant>/<path>", also the in-memory snapshot (immutable: a change replaces it).
// It holds no sealed material, so it stays small whatever the values' sizes and the version limit. The key is
// authoritative for tenant and path: they are not repeated here, and both are bound into every version's associated
// data, so a record copied elsewhere fails to decrypt. Versions ascend by number.
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

// KeyId names the key-encryption key that wrapped the version's data key (what KeyIdsInUse reports); the sealed
// record's own KeyId is the one used to unwrap.
internal sealed record StoredSecretVersion(
    int Version,
    SecretVersionState State,
    long CreatedAtMs,
    string CreatedBy,
    string? Provider,
    string? KeyId)
{
    // Only the old single-record layout kept the ciphertext here: read so that Load can refuse such a record instead
    // of taking its versions for values that are not stored. Never written (null).
    [JsonPropertyName("ciphertext")]
    public byte[]? LegacyCiphertext { get; init; }

    // Active and Disabled versions have a sealed record; Destroyed and Pruned ones had it deleted for good.
    [JsonIgnore]
    public bool HasValue => State is SecretVersionState.Active or SecretVersionState.Disabled;
}

// One version's sealed value under "secret-v/<tenant>/<path>/<version:D10>", read on demand. Ciphertext is the
// AES-256-GCM output followed by its 16-byte tag; KeyId and WrappedKey are the provider's wrapped data key.
internal sealed record StoredSealedValue(string KeyId, byte[] WrappedKey, byte[] Nonce, byte[] Ciphertext);
