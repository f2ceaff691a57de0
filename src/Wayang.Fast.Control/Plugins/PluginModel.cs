namespace Wayang.Fast.Control.Plugins;

// Persisted in "plugin-policy/<tenant>": explicit values, append-only (PluginEnumStabilityTests).
public enum VerificationLevel : byte
{
    // Any signature or trust problem rejects the upload.
    Strict = 0,
    // Signature and trust problems are accepted and returned as warnings for the audit log (Notation's "audit").
    Audit = 1,
}

// Persisted in each version's record: explicit values, append-only (PluginEnumStabilityTests).
public enum PluginVersionState : byte
{
    Enabled = 0,
    Disabled = 1,
}

// Code: one of PluginProblemCodes. Path: a JSON pointer into the manifest (schema problems under "/configSchema"),
// "/signature..." for the envelope, "/artifact" for the artifact, "/configurations/<name>..." for stored configurations.
public sealed record PluginProblem(string Code, string Path, string Message);

// Stable strings: clients and audit records match on them. Documented in protocol-spec/plugins.md.
public static class PluginProblemCodes
{
    public const string ManifestInvalid = "MANIFEST_INVALID";
    public const string ArtifactTooLarge = "ARTIFACT_TOO_LARGE";
    public const string SignatureInvalid = "SIGNATURE_INVALID";
    public const string KeyUnknown = "KEY_UNKNOWN";
    public const string KeyRevoked = "KEY_REVOKED";
    public const string KeyExpired = "KEY_EXPIRED";
    public const string DigestMismatch = "DIGEST_MISMATCH";
    public const string ServerVersionIncompatible = "SERVER_VERSION_INCOMPATIBLE";
    public const string VersionRollback = "VERSION_ROLLBACK";
    public const string VersionExists = "VERSION_EXISTS";
    public const string RequiredAdded = "REQUIRED_ADDED";
    public const string TypeNarrowed = "TYPE_NARROWED";
    public const string EnumNarrowed = "ENUM_NARROWED";
    public const string PropertyRemoved = "PROPERTY_REMOVED";
    public const string ConstraintTightened = "CONSTRAINT_TIGHTENED";
    public const string AdditionalPropertiesClosed = "ADDITIONAL_PROPERTIES_CLOSED";
    public const string SchemaUnanalyzable = "SCHEMA_UNANALYZABLE";
    public const string ConfigInvalid = "CONFIG_INVALID";

    // The problems an Audit tenant accepts as warnings; every other code rejects at every level.
    public static bool IsTrustProblem(string code) => code is SignatureInvalid or KeyUnknown or KeyRevoked or KeyExpired;
}

public sealed record PluginSignature(string KeyId, byte[] Signature);

// PublicKey: 32 bytes, raw Ed25519. KeyId must be PluginSigning.KeyIdOf(PublicKey). Valid from NotBeforeMs (inclusive)
// to NotAfterMs (exclusive; 0 = no end) unless revoked; revocation is immediate and final.
public sealed record TrustedKey(string KeyId, byte[] PublicKey, long NotBeforeMs, long NotAfterMs, long? RevokedAtMs, string AddedBy)
{
    public string? RevokedBy { get; init; }
}

public sealed class PluginRegistryOptions
{
    // The server's own SemVer, matched against each manifest's "serverVersions".
    public required string ServerVersion { get; init; }

    public int MaxArtifactBytes { get; init; } = 16 * 1024 * 1024;

    // Artifacts are stored in chunks of this size: the state store refuses values over StorageOptions.MaxValueBytes
    // (1 MiB by default), and a chunk well under it leaves room for a smaller configured limit.
    public int ArtifactChunkBytes { get; init; } = 512 * 1024;
}

public sealed record PluginUploadResult(string Id, string Version, bool RolledBack, IReadOnlyList<PluginProblem> Warnings);

public sealed record PluginVersionSummary(string Version, PluginVersionState State, long UploadedAtMs);

// LatestVersion: the highest version (SemVer order); LatestEnabledVersion: the highest enabled one, null when none.
// Versions ascend in SemVer order.
public sealed record PluginSummary(string Id, string Kind, string LatestVersion, string? LatestEnabledVersion, IReadOnlyList<PluginVersionSummary> Versions);

// Manifest: the bytes exactly as uploaded (what the signature covers). Warnings: the trust problems an Audit tenant
// accepted. StateChangedBy/AtMs: the upload itself until the first SetStateAsync.
public sealed record PluginVersionDetails(
    string TenantId,
    string Id,
    string Version,
    string Kind,
    string? Description,
    ReadOnlyMemory<byte> Manifest,
    string ArtifactDigest,
    long ArtifactBytes,
    string SignerKeyId,
    string UploadedBy,
    long UploadedAtMs,
    bool RolledBack,
    PluginVersionState State,
    string StateChangedBy,
    long StateChangedAtMs,
    IReadOnlyList<PluginProblem> Warnings);
