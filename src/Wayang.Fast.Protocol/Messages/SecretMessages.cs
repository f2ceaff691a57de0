using MessagePack;

namespace Wayang.Fast.Protocol.Messages;

// Secrets (opcodes 0x0130-0x013A). protocol-spec/messages.md documents every field, protocol-spec/secrets.md the model.
// TenantId "" is the caller's own tenant; another tenant needs the cross-tenant permission. Version 0 means "latest
// active" where a version is read. Values travel only in SecretPut/SecretRotate requests and SecretGet responses.

// SecretPut and SecretRotate. Cas: -1 unconditional, 0 the secret must not exist, n its current version must be n.
[MessagePackObject]
public sealed class SecretWriteRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string Path { get; set; } = "";
    [Key(2)] public byte[] Value { get; set; } = [];
    [Key(3)] public long Cas { get; set; } = -1;
}

[MessagePackObject]
public sealed class SecretVersionDto
{
    [Key(0)] public string Path { get; set; } = "";
    [Key(1)] public int Version { get; set; }
    [Key(2)] public long CreatedAtMs { get; set; }
}

// SecretGet (Version 0: latest active), SecretHistory (Version ignored), SecretDestroy (Version 0: every version and
// the secret itself).
[MessagePackObject]
public sealed class SecretPathRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string Path { get; set; } = "";
    [Key(2)] public int Version { get; set; }
}

[MessagePackObject]
public sealed class SecretValueDto
{
    [Key(0)] public string Path { get; set; } = "";
    [Key(1)] public int Version { get; set; }
    [Key(2)] public byte[] Value { get; set; } = [];
    [Key(3)] public long CreatedAtMs { get; set; }
}

[MessagePackObject]
public sealed class SecretListRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    // Paths starting with it; "" lists every secret of the tenant.
    [Key(1)] public string Prefix { get; set; } = "";
}

// One version's metadata. State: 0 ACTIVE, 1 DISABLED, 2 DESTROYED, 3 PRUNED.
[MessagePackObject]
public sealed class SecretVersionMetaDto
{
    [Key(0)] public int Version { get; set; }
    [Key(1)] public byte State { get; set; }
    [Key(2)] public long CreatedAtMs { get; set; }
    // The key id (API key) of the principal that wrote it.
    [Key(3)] public string CreatedBy { get; set; } = "";
    // The key-encryption provider and key that wrap its data key ("local", "aws-kms", "vault-transit").
    [Key(4)] public string Provider { get; set; } = "";
    [Key(5)] public string KeyId { get; set; } = "";
}

[MessagePackObject]
public sealed class SecretMetadataDto
{
    [Key(0)] public string Path { get; set; } = "";
    [Key(1)] public int CurrentVersion { get; set; }
    [Key(2)] public SecretVersionMetaDto[] Versions { get; set; } = [];
    [Key(3)] public int MaxVersions { get; set; }
    // 0: no rotation policy.
    [Key(4)] public int RotateEveryDays { get; set; }
    [Key(5)] public long UpdatedAtMs { get; set; }
    // The last rotation failure an operator's rotation executor reported ("" none).
    [Key(6)] public string LastRotationFailure { get; set; } = "";
    [Key(7)] public long LastRotationFailureAtMs { get; set; }
}

[MessagePackObject]
public sealed class SecretListResponse
{
    [Key(0)] public SecretMetadataDto[] Secrets { get; set; } = [];
}

[MessagePackObject]
public sealed class SecretDisableRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string Path { get; set; } = "";
    [Key(2)] public int Version { get; set; }
    // false re-enables a disabled version.
    [Key(3)] public bool Disabled { get; set; } = true;
}

[MessagePackObject]
public sealed class SecretPolicyRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string Path { get; set; } = "";
    // 1..100.
    [Key(2)] public int MaxVersions { get; set; } = 10;
    // 0 (off)..3650.
    [Key(3)] public int RotateEveryDays { get; set; }
}

[MessagePackObject]
public sealed class SecretRotationReportRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string Path { get; set; } = "";
    // What went wrong; recorded and announced, so it must not contain the secret.
    [Key(2)] public string Reason { get; set; } = "";
}

// SecretWatch: a server stream of SecretEventDto under the stream's credit until the client cancels.
[MessagePackObject]
public sealed class SecretWatchRequest
{
    // "" own tenant; "*" every tenant (cross-tenant only).
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string PathPrefix { get; set; } = "";
}

// Kind: 0 WRITTEN, 1 ROTATED, 2 VERSION_DISABLED, 3 VERSION_ENABLED, 4 DESTROYED, 5 ROTATION_DUE, 6 ROTATION_FAILED,
// 7 POLICY_CHANGED. Never carries a value.
[MessagePackObject]
public sealed class SecretEventDto
{
    [Key(0)] public byte Kind { get; set; }
    [Key(1)] public string TenantId { get; set; } = "";
    [Key(2)] public string Path { get; set; } = "";
    [Key(3)] public int Version { get; set; }
    [Key(4)] public long AtMs { get; set; }
    [Key(5)] public string Detail { get; set; } = "";
    // Events this subscriber missed because it read too slowly (the stream keeps the newest).
    [Key(6)] public long Dropped { get; set; }
}

[MessagePackObject]
public sealed class MasterKeyRotateResponse
{
    // Data keys re-wrapped under the new key-encryption key.
    [Key(0)] public int Rewrapped { get; set; }
    [Key(1)] public string Provider { get; set; } = "";
}
