using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Client;

// Secrets (protocol-spec/secrets.md) and plugins (protocol-spec/plugins.md). These calls answer with the protocol's
// DTOs (Wayang.Fast.Protocol.Messages): their fields are documented field by field in messages.md. tenantId null or
// empty: the caller's own tenant.
public sealed partial class WayangClient
{
    // ---- secrets ----

    // cas: null writes unconditionally, 0 only if the secret does not exist, n only if its current version is n
    // (SECRET_VERSION_CONFLICT otherwise).
    public ValueTask<SecretVersionDto> PutSecretAsync(string path, ReadOnlyMemory<byte> value, long? cas = null, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        WriteSecretAsync(Opcode.SecretPut, path, value, cas, tenantId, timeout, ct);

    // A new version of an existing secret, announced to SecretWatch subscribers as ROTATED.
    public ValueTask<SecretVersionDto> RotateSecretAsync(string path, ReadOnlyMemory<byte> value, long? cas = null, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        WriteSecretAsync(Opcode.SecretRotate, path, value, cas, tenantId, timeout, ct);

    private ValueTask<SecretVersionDto> WriteSecretAsync(Opcode opcode, string path, ReadOnlyMemory<byte> value, long? cas, string? tenantId, TimeSpan? timeout, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return CallAsync<SecretWriteRequest, SecretVersionDto>(opcode,
            new SecretWriteRequest { TenantId = tenantId ?? "", Path = path, Value = value.ToArray(), Cas = cas ?? -1 }, timeout, ct);
    }

    // version 0: the latest active version.
    public ValueTask<SecretValueDto> GetSecretAsync(string path, int version = 0, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<SecretPathRequest, SecretValueDto>(Opcode.SecretGet, new SecretPathRequest { TenantId = tenantId ?? "", Path = path, Version = version }, timeout, ct);

    public async Task<IReadOnlyList<SecretMetadataDto>> ListSecretsAsync(string prefix = "", string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<SecretListRequest, SecretListResponse>(Opcode.SecretList,
            new SecretListRequest { TenantId = tenantId ?? "", Prefix = prefix }, timeout, ct).ConfigureAwait(false);
        return reply.Secrets ?? [];
    }

    // Metadata and every version's state; never values.
    public ValueTask<SecretMetadataDto> GetSecretHistoryAsync(string path, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<SecretPathRequest, SecretMetadataDto>(Opcode.SecretHistory, new SecretPathRequest { TenantId = tenantId ?? "", Path = path }, timeout, ct);

    public ValueTask<SecretMetadataDto> DisableSecretVersionAsync(string path, int version, bool disabled = true, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<SecretDisableRequest, SecretMetadataDto>(Opcode.SecretDisable,
            new SecretDisableRequest { TenantId = tenantId ?? "", Path = path, Version = version, Disabled = disabled }, timeout, ct);

    // version 0 destroys every version and the secret itself.
    public ValueTask<SecretMetadataDto> DestroySecretAsync(string path, int version = 0, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<SecretPathRequest, SecretMetadataDto>(Opcode.SecretDestroy, new SecretPathRequest { TenantId = tenantId ?? "", Path = path, Version = version }, timeout, ct);

    public ValueTask<SecretMetadataDto> SetSecretPolicyAsync(string path, int maxVersions, int rotateEveryDays, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<SecretPolicyRequest, SecretMetadataDto>(Opcode.SecretPolicySet,
            new SecretPolicyRequest { TenantId = tenantId ?? "", Path = path, MaxVersions = maxVersions, RotateEveryDays = rotateEveryDays }, timeout, ct);

    // What a rotation executor calls when it could not rotate a secret that was due.
    public ValueTask<SecretMetadataDto> ReportSecretRotationFailureAsync(string path, string reason, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<SecretRotationReportRequest, SecretMetadataDto>(Opcode.SecretRotationReport,
            new SecretRotationReportRequest { TenantId = tenantId ?? "", Path = path, Reason = reason }, timeout, ct);

    // Change and rotation events until ct is cancelled; tenantId "*" watches every tenant (cross-tenant only).
    public IAsyncEnumerable<SecretEventDto> WatchSecretsAsync(string pathPrefix = "", string? tenantId = null, CancellationToken ct = default) =>
        StreamAsync<SecretWatchRequest, SecretEventDto>(Opcode.SecretWatch, new SecretWatchRequest { TenantId = tenantId ?? "", PathPrefix = pathPrefix }, ct);

    public ValueTask<MasterKeyRotateResponse> RotateMasterKeyAsync(TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<MasterKeyRotateResponse>(Opcode.MasterKeyRotate, timeout, ct);

    // ---- plugins and trust stores ----

    // PLUGIN_REJECTED carries every reason in Details["problems"]; at the audit verification level the reasons come
    // back as Warnings instead.
    public ValueTask<PluginUploadResponse> UploadPluginAsync(ReadOnlyMemory<byte> manifest, ReadOnlyMemory<byte> artifact, string signatureKeyId, ReadOnlyMemory<byte> signature,
        bool allowRollback = false, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<PluginUploadRequest, PluginUploadResponse>(Opcode.PluginUpload, new PluginUploadRequest
        {
            TenantId = tenantId ?? "", Manifest = manifest.ToArray(), Artifact = artifact.ToArray(), SignatureKeyId = signatureKeyId,
            Signature = signature.ToArray(), AllowRollback = allowRollback,
        }, timeout, ct);

    public async Task<IReadOnlyList<PluginSummaryDto>> ListPluginsAsync(string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<PluginListRequest, PluginListResponse>(Opcode.PluginList, new PluginListRequest { TenantId = tenantId ?? "" }, timeout, ct).ConfigureAwait(false);
        return reply.Plugins ?? [];
    }

    // version null: the latest.
    public ValueTask<PluginVersionDto> GetPluginAsync(string id, string? version = null, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<PluginRefRequest, PluginVersionDto>(Opcode.PluginShow, new PluginRefRequest { TenantId = tenantId ?? "", Id = id, Version = version ?? "" }, timeout, ct);

    public ValueTask<PluginVersionDto> SetPluginEnabledAsync(string id, string version, bool enabled, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<PluginRefRequest, PluginVersionDto>(enabled ? Opcode.PluginEnable : Opcode.PluginDisable,
            new PluginRefRequest { TenantId = tenantId ?? "", Id = id, Version = version }, timeout, ct);

    public ValueTask<PluginVersionDto> ConfigurePluginAsync(string id, string name, ReadOnlyMemory<byte> configJson, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<PluginConfigureRequest, PluginVersionDto>(Opcode.PluginConfigure,
            new PluginConfigureRequest { TenantId = tenantId ?? "", Id = id, Name = name, ConfigJson = configJson.ToArray() }, timeout, ct);

    // global: the global trust store (cross-tenant principals only).
    public ValueTask<TrustKeyDto> AddTrustedKeyAsync(ReadOnlyMemory<byte> publicKey, long notBeforeMs = 0, long notAfterMs = 0, bool global = false, string? tenantId = null,
        TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<TrustKeyAddRequest, TrustKeyDto>(Opcode.TrustKeyAdd, new TrustKeyAddRequest
        {
            TenantId = tenantId ?? "", Global = global, PublicKey = publicKey.ToArray(), NotBeforeMs = notBeforeMs, NotAfterMs = notAfterMs,
        }, timeout, ct);

    public async Task<IReadOnlyList<TrustKeyDto>> ListTrustedKeysAsync(bool global = false, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<TrustKeyRefRequest, TrustKeyListResponse>(Opcode.TrustKeyList,
            new TrustKeyRefRequest { TenantId = tenantId ?? "", Global = global }, timeout, ct).ConfigureAwait(false);
        return reply.Keys ?? [];
    }

    public ValueTask<TrustKeyDto> RevokeTrustedKeyAsync(string keyId, bool global = false, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<TrustKeyRefRequest, TrustKeyDto>(Opcode.TrustKeyRevoke, new TrustKeyRefRequest { TenantId = tenantId ?? "", Global = global, KeyId = keyId }, timeout, ct);

    // level: 0 strict, 1 audit.
    public ValueTask<PluginPolicyRequest> SetPluginVerificationLevelAsync(byte level, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default) =>
        CallAsync<PluginPolicyRequest, PluginPolicyRequest>(Opcode.PluginPolicySet, new PluginPolicyRequest { TenantId = tenantId ?? "", Level = level }, timeout, ct);
}
