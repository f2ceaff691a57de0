using MessagePack;

namespace Wayang.Fast.Protocol.Messages;

// Plugins and their trust stores (opcodes 0x0140-0x0149). protocol-spec/messages.md documents every field,
// protocol-spec/plugins.md the manifest, signature and compatibility rules. TenantId "" is the caller's own tenant.

[MessagePackObject]
public sealed class PluginUploadRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    // The manifest's UTF-8 JSON bytes, exactly as signed.
    [Key(1)] public byte[] Manifest { get; set; } = [];
    [Key(2)] public byte[] Artifact { get; set; } = [];
    [Key(3)] public string SignatureKeyId { get; set; } = "";
    // Ed25519 signature (64 bytes) over "wayang-plugin-v1\n" + Manifest.
    [Key(4)] public byte[] Signature { get; set; } = [];
    // Accept a version not above the latest stored one (recorded in the audit log).
    [Key(5)] public bool AllowRollback { get; set; }
}

// One reason a plugin was rejected (PLUGIN_REJECTED's Details["problems"]) or, at the audit verification level,
// accepted with a warning. Codes: plugins.md.
[MessagePackObject]
public sealed class PluginProblemDto
{
    [Key(0)] public string Code { get; set; } = "";
    [Key(1)] public string Path { get; set; } = "";
    [Key(2)] public string Message { get; set; } = "";
}

[MessagePackObject]
public sealed class PluginUploadResponse
{
    [Key(0)] public string Id { get; set; } = "";
    [Key(1)] public string Version { get; set; } = "";
    [Key(2)] public bool RolledBack { get; set; }
    [Key(3)] public PluginProblemDto[] Warnings { get; set; } = [];
}

[MessagePackObject]
public sealed class PluginListRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
}

// State: 0 ENABLED, 1 DISABLED.
[MessagePackObject]
public sealed class PluginSummaryDto
{
    [Key(0)] public string Id { get; set; } = "";
    [Key(1)] public string Kind { get; set; } = "";
    [Key(2)] public string LatestVersion { get; set; } = "";
    [Key(3)] public string[] Versions { get; set; } = [];
    // One state per entry of Versions.
    [Key(4)] public byte[] States { get; set; } = [];
}

[MessagePackObject]
public sealed class PluginListResponse
{
    [Key(0)] public PluginSummaryDto[] Plugins { get; set; } = [];
}

// PluginShow (Version "": latest), PluginEnable, PluginDisable.
[MessagePackObject]
public sealed class PluginRefRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string Id { get; set; } = "";
    [Key(2)] public string Version { get; set; } = "";
}

[MessagePackObject]
public sealed class PluginVersionDto
{
    [Key(0)] public string Id { get; set; } = "";
    [Key(1)] public string Version { get; set; } = "";
    [Key(2)] public string Kind { get; set; } = "";
    [Key(3)] public byte[] Manifest { get; set; } = [];
    [Key(4)] public string ArtifactDigest { get; set; } = "";
    [Key(5)] public string SignatureKeyId { get; set; } = "";
    [Key(6)] public string UploadedBy { get; set; } = "";
    [Key(7)] public long UploadedAtMs { get; set; }
    [Key(8)] public byte State { get; set; }
    [Key(9)] public PluginProblemDto[] Warnings { get; set; } = [];
    // Names of the plugin's stored configurations.
    [Key(10)] public string[] Configurations { get; set; } = [];
}

[MessagePackObject]
public sealed class PluginConfigureRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string Id { get; set; } = "";
    [Key(2)] public string Name { get; set; } = "";
    // UTF-8 JSON, checked against the configuration schema of the plugin's latest enabled version.
    [Key(3)] public byte[] ConfigJson { get; set; } = [];
}

// TrustKeyAdd. Global: the global trust store (cross-tenant only), else the tenant's.
[MessagePackObject]
public sealed class TrustKeyAddRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public bool Global { get; set; }
    // Raw 32-byte Ed25519 public key. Its key id is derived from it (plugins.md).
    [Key(2)] public byte[] PublicKey { get; set; } = [];
    [Key(3)] public long NotBeforeMs { get; set; }
    // 0: no end.
    [Key(4)] public long NotAfterMs { get; set; }
}

// TrustKeyList (KeyId ignored) and TrustKeyRevoke.
[MessagePackObject]
public sealed class TrustKeyRefRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public bool Global { get; set; }
    [Key(2)] public string KeyId { get; set; } = "";
}

[MessagePackObject]
public sealed class TrustKeyDto
{
    [Key(0)] public string KeyId { get; set; } = "";
    [Key(1)] public byte[] PublicKey { get; set; } = [];
    [Key(2)] public long NotBeforeMs { get; set; }
    [Key(3)] public long NotAfterMs { get; set; }
    // 0: not revoked.
    [Key(4)] public long RevokedAtMs { get; set; }
    [Key(5)] public string AddedBy { get; set; } = "";
    [Key(6)] public bool Global { get; set; }
}

[MessagePackObject]
public sealed class TrustKeyListResponse
{
    [Key(0)] public TrustKeyDto[] Keys { get; set; } = [];
}

// PluginPolicySet. Level: 0 STRICT (reject on any signature or trust problem), 1 AUDIT (accept, record the problems).
[MessagePackObject]
public sealed class PluginPolicyRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public byte Level { get; set; }
}
