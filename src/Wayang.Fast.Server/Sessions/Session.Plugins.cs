using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Plugins;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Sessions;

// Plugin and trust-store opcodes (0x0140-0x0149). Uploads, rejections (with every reason), state changes, configuration
// and trust changes are audited; an upload accepted at the audit verification level records its warnings, and a
// rollback override is recorded as such.
internal sealed partial class Session
{
    private void DispatchPlugins(in Frame frame, uint streamId, Opcode opcode, long start)
    {
        var plugins = _server.Plugins;
        if (plugins is null)
        {
            _writer.WriteError(streamId, opcode, new WayangError(ErrorCode.Unavailable, "This server has no plugin registry."), start);
            return;
        }
        switch (opcode)
        {
            case Opcode.PluginUpload:
            {
                if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static (r) => r.TenantId, out PluginUploadRequest? req, out var tenantId))
                    return;
                req.TenantId = tenantId;
                string resource = $"plugin:{tenantId}/{PeekPluginId(req.Manifest)}";
                StartAudited(streamId, opcode, start, req, resource, tenantId, static async (s, r, ct) =>
                {
                    var result = await s._server.Plugins!.UploadAsync(r.TenantId, r.Manifest ?? [], r.Artifact ?? [], new PluginSignature(r.SignatureKeyId ?? "", r.Signature ?? []),
                        r.AllowRollback, s._principal!.KeyId, ct).ConfigureAwait(false);
                    return new PluginUploadResponse { Id = result.Id, Version = result.Version, RolledBack = result.RolledBack, Warnings = ToDtos(result.Warnings) };
                }, response => UploadResource(tenantId, response));
                return;
            }

            case Opcode.PluginList:
            {
                if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static (r) => r.TenantId, out PluginListRequest? _, out var tenantId, allowEmpty: true))
                    return;
                var list = plugins.List(tenantId);
                _writer.WriteMessage(FrameType.Response, opcode, streamId, new PluginListResponse
                {
                    Plugins = [.. list.Select(p => new PluginSummaryDto
                    {
                        Id = p.Id, Kind = p.Kind, LatestVersion = p.LatestVersion, Versions = [.. p.Versions.Select(v => v.Version)],
                        States = [.. p.Versions.Select(v => (byte)v.State)],
                    })],
                }, start);
                return;
            }

            case Opcode.PluginShow:
            {
                if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static (r) => r.TenantId, out PluginRefRequest? req, out var tenantId))
                    return;
                RunReadCall(streamId, opcode, start, () => ToDto(plugins, tenantId, plugins.Get(tenantId, req.Id ?? "", string.IsNullOrEmpty(req.Version) ? null : req.Version)));
                return;
            }

            case Opcode.PluginEnable:
            case Opcode.PluginDisable:
            {
                if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static (r) => r.TenantId, out PluginRefRequest? req, out var tenantId))
                    return;
                req.TenantId = tenantId;
                var state = opcode == Opcode.PluginEnable ? PluginVersionState.Enabled : PluginVersionState.Disabled;
                StartAudited(streamId, opcode, start, (Request: req, State: state), $"plugin:{tenantId}/{req.Id}@{req.Version}", tenantId, static async (s, r, ct) =>
                {
                    var registry = s._server.Plugins!;
                    await registry.SetStateAsync(r.Request.TenantId, r.Request.Id ?? "", r.Request.Version ?? "", r.State, s._principal!.KeyId, ct).ConfigureAwait(false);
                    return ToDto(registry, r.Request.TenantId, registry.Get(r.Request.TenantId, r.Request.Id ?? "", r.Request.Version));
                });
                return;
            }

            case Opcode.PluginConfigure:
            {
                if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static (r) => r.TenantId, out PluginConfigureRequest? req, out var tenantId))
                    return;
                req.TenantId = tenantId;
                StartAudited(streamId, opcode, start, req, $"plugin:{tenantId}/{req.Id}:config/{req.Name}", tenantId, static async (s, r, ct) =>
                {
                    var registry = s._server.Plugins!;
                    await registry.PutConfigurationAsync(r.TenantId, r.Id ?? "", r.Name ?? "", r.ConfigJson ?? [], s._principal!.KeyId, ct).ConfigureAwait(false);
                    return ToDto(registry, r.TenantId, registry.Get(r.TenantId, r.Id ?? "", null));
                });
                return;
            }

            case Opcode.TrustKeyAdd:
            {
                if (!TryDecodeTrustScope(frame.Body, streamId, opcode, start, static (r) => (r.TenantId, r.Global), out TrustKeyAddRequest? req, out var scope))
                    return;
                var key = new TrustedKey(PluginSigning.KeyIdOf(req.PublicKey ?? []), req.PublicKey ?? [], req.NotBeforeMs, req.NotAfterMs, null, _principal!.KeyId);
                StartAudited(streamId, opcode, start, (Key: key, Scope: scope), $"trust:{scope ?? "global"}/{key.KeyId}", scope ?? _principal!.TenantId, static async (s, r, ct) =>
                {
                    await s._server.Plugins!.AddTrustedKeyAsync(r.Scope, r.Key, ct).ConfigureAwait(false);
                    return ToDto(r.Key, r.Scope is null);
                });
                return;
            }

            case Opcode.TrustKeyList:
            {
                if (!TryDecodeTrustScope(frame.Body, streamId, opcode, start, static (r) => (r.TenantId, r.Global), out TrustKeyRefRequest? _, out var scope, allowEmpty: true))
                    return;
                var keys = plugins.ListTrustedKeys(scope);
                _writer.WriteMessage(FrameType.Response, opcode, streamId, new TrustKeyListResponse { Keys = [.. keys.Select(k => ToDto(k, scope is null))] }, start);
                return;
            }

            case Opcode.TrustKeyRevoke:
            {
                if (!TryDecodeTrustScope(frame.Body, streamId, opcode, start, static (r) => (r.TenantId, r.Global), out TrustKeyRefRequest? req, out var scope))
                    return;
                StartAudited(streamId, opcode, start, (KeyId: req.KeyId ?? "", Scope: scope), $"trust:{scope ?? "global"}/{req.KeyId}", scope ?? _principal!.TenantId, static async (s, r, ct) =>
                {
                    var registry = s._server.Plugins!;
                    await registry.RevokeTrustedKeyAsync(r.Scope, r.KeyId, s._principal!.KeyId, ct).ConfigureAwait(false);
                    return ToDto(registry.ListTrustedKeys(r.Scope).First(k => k.KeyId == r.KeyId), r.Scope is null);
                });
                return;
            }

            case Opcode.PluginPolicySet:
            {
                if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static (r) => r.TenantId, out PluginPolicyRequest? req, out var tenantId))
                    return;
                if (req.Level > (byte)VerificationLevel.Audit)
                {
                    _writer.WriteError(streamId, opcode, new WayangError(ErrorCode.InvalidArgument, "Level must be 0 (strict) or 1 (audit)."), start);
                    return;
                }
                var level = (VerificationLevel)req.Level;
                StartAudited(streamId, opcode, start, (Tenant: tenantId, Level: level), $"plugin-policy:{tenantId}:{level}", tenantId, static async (s, r, ct) =>
                {
                    await s._server.Plugins!.SetVerificationLevelAsync(r.Tenant, r.Level, s._principal!.KeyId, ct).ConfigureAwait(false);
                    return new PluginPolicyRequest { TenantId = r.Tenant, Level = (byte)r.Level };
                });
                return;
            }

            default:
                _writer.WriteError(streamId, opcode, ErrorCode.UnknownOpcode, start);
                return;
        }
    }

    // The global trust store (Global) needs a cross-tenant principal; otherwise the request is scoped like any other.
    // scope: null for the global store, else the tenant.
    private bool TryDecodeTrustScope<T>(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start, Func<T, (string? Tenant, bool Global)> scopeOf,
        [NotNullWhen(true)] out T? request, out string? scope, bool allowEmpty = false)
        where T : class, new()
    {
        scope = null;
        if (!TryDecodeOrRefuse(body, streamId, opcode, start, out request, allowEmpty))
            return false;
        var (tenant, global) = scopeOf(request);
        if (global)
        {
            // Reading the global store is open to every tenant (its keys verify everyone's uploads); changing it is not.
            if (opcode != Opcode.TrustKeyList && !_principal!.IsPlatformAdmin)
            {
                DenyForeignTenant(streamId, opcode, start, "global trust store");
                return false;
            }
            return true;
        }
        if (!TryScopeTenant(tenant, streamId, opcode, start, out var tenantId))
            return false;
        scope = tenantId;
        return true;
    }

    // The id for the audit resource of an upload, read leniently from the manifest (the registry does the real checks).
    private static string PeekPluginId(byte[]? manifest)
    {
        try
        {
            var reader = new System.Text.Json.Utf8JsonReader(manifest ?? []);
            using var doc = System.Text.Json.JsonDocument.ParseValue(ref reader);
            return doc.RootElement.TryGetProperty("id", out var id) && id.ValueKind == System.Text.Json.JsonValueKind.String ? id.GetString() ?? "?" : "?";
        }
        catch (System.Text.Json.JsonException)
        {
            return "?";
        }
    }

    // An accepted upload names its version, and says so when it rolled back or carried warnings (audit level).
    private static string UploadResource(string tenantId, PluginUploadResponse r)
    {
        var text = new StringBuilder("plugin:").Append(tenantId).Append('/').Append(r.Id).Append('@').Append(r.Version);
        if (r.RolledBack)
            text.Append(":rollback-override");
        foreach (var w in r.Warnings)
            text.Append(":warning=").Append(w.Code);
        return text.ToString();
    }

    private static PluginProblemDto[] ToDtos(IReadOnlyList<PluginProblem> problems) =>
        [.. problems.Select(p => new PluginProblemDto { Code = p.Code, Path = p.Path, Message = p.Message })];

    private static PluginVersionDto ToDto(PluginRegistry registry, string tenantId, PluginVersionDetails v) => new()
    {
        Id = v.Id,
        Version = v.Version,
        Kind = v.Kind,
        Manifest = v.Manifest.ToArray(),
        ArtifactDigest = v.ArtifactDigest,
        SignatureKeyId = v.SignerKeyId,
        UploadedBy = v.UploadedBy,
        UploadedAtMs = v.UploadedAtMs,
        State = (byte)v.State,
        Warnings = ToDtos(v.Warnings),
        Configurations = [.. registry.GetConfigurations(tenantId, v.Id).Keys.Order(StringComparer.Ordinal)],
    };

    private static TrustKeyDto ToDto(TrustedKey k, bool global) => new()
    {
        KeyId = k.KeyId,
        PublicKey = k.PublicKey,
        NotBeforeMs = k.NotBeforeMs,
        NotAfterMs = k.NotAfterMs,
        RevokedAtMs = k.RevokedAtMs ?? 0,
        AddedBy = k.AddedBy,
        Global = global,
    };
}
