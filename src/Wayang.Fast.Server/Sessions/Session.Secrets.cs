using System.Globalization;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Secrets;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Sessions;

// Secret opcodes (0x0130-0x013A). Every read, write, rotation and denial is audited with the principal, the path and
// the version; never the value. Everything acts in the caller's tenant unless a cross-tenant principal names another.
internal sealed partial class Session
{
    private void DispatchSecrets(in Frame frame, uint streamId, Opcode opcode, long start)
    {
        var secrets = _server.Secrets;
        if (secrets is null)
        {
            _writer.WriteError(streamId, opcode, new WayangError(ErrorCode.Unavailable, "This server keeps no secrets."), start);
            return;
        }
        switch (opcode)
        {
            case Opcode.SecretPut:
            case Opcode.SecretRotate:
            {
                if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static (r) => r.TenantId, out SecretWriteRequest? req, out var tenantId))
                    return;
                req.TenantId = tenantId;
                bool rotate = opcode == Opcode.SecretRotate;
                StartAudited(streamId, opcode, start, (Request: req, Rotate: rotate), SecretResource(tenantId, req.Path, 0), tenantId, static async (s, r, ct) =>
                {
                    long? cas = r.Request.Cas < 0 ? null : r.Request.Cas;
                    var store = s._server.Secrets!;
                    var written = r.Rotate
                        ? await store.RotateAsync(r.Request.TenantId, r.Request.Path ?? "", r.Request.Value ?? [], cas, s._principal!.KeyId, ct).ConfigureAwait(false)
                        : await store.PutAsync(r.Request.TenantId, r.Request.Path ?? "", r.Request.Value ?? [], cas, s._principal!.KeyId, ct).ConfigureAwait(false);
                    return new SecretVersionDto { Path = written.Path, Version = written.Version, CreatedAtMs = written.CreatedAtMs };
                }, dto => SecretResource(tenantId, dto.Path, dto.Version));
                return;
            }

            case Opcode.SecretGet:
            {
                if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static (r) => r.TenantId, out SecretPathRequest? req, out var tenantId))
                    return;
                req.TenantId = tenantId;
                StartAudited(streamId, opcode, start, req, SecretResource(tenantId, req.Path, req.Version), tenantId, static async (s, r, ct) =>
                {
                    var value = await s._server.Secrets!.GetAsync(r.TenantId, r.Path ?? "", r.Version, ct).ConfigureAwait(false);
                    return new SecretValueDto { Path = r.Path ?? "", Version = value.Version, Value = value.Value, CreatedAtMs = value.CreatedAtMs };
                }, dto => SecretResource(tenantId, dto.Path, dto.Version));
                return;
            }

            case Opcode.SecretList:
            {
                if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static (r) => r.TenantId, out SecretListRequest? req, out var tenantId, allowEmpty: true))
                    return;
                var list = secrets.List(tenantId, req.Prefix ?? "");
                var dtos = new SecretMetadataDto[list.Count];
                for (int i = 0; i < dtos.Length; i++)
                    dtos[i] = ToDto(list[i]);
                _writer.WriteMessage(FrameType.Response, opcode, streamId, new SecretListResponse { Secrets = dtos }, start);
                return;
            }

            case Opcode.SecretHistory:
            {
                if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static (r) => r.TenantId, out SecretPathRequest? req, out var tenantId))
                    return;
                RunReadCall(streamId, opcode, start, () => ToDto(secrets.GetMetadata(tenantId, req.Path ?? "")));
                return;
            }

            case Opcode.SecretDisable:
            {
                if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static (r) => r.TenantId, out SecretDisableRequest? req, out var tenantId))
                    return;
                req.TenantId = tenantId;
                StartAudited(streamId, opcode, start, req, SecretResource(tenantId, req.Path, req.Version) + (req.Disabled ? ":disable" : ":enable"), tenantId, static async (s, r, ct) =>
                {
                    var store = s._server.Secrets!;
                    await store.DisableVersionAsync(r.TenantId, r.Path ?? "", r.Version, r.Disabled, s._principal!.KeyId, ct).ConfigureAwait(false);
                    return ToDto(store.GetMetadata(r.TenantId, r.Path ?? ""));
                });
                return;
            }

            case Opcode.SecretDestroy:
            {
                if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static (r) => r.TenantId, out SecretPathRequest? req, out var tenantId))
                    return;
                req.TenantId = tenantId;
                StartAudited(streamId, opcode, start, req, SecretResource(tenantId, req.Path, req.Version), tenantId, static async (s, r, ct) =>
                {
                    var store = s._server.Secrets!;
                    await store.DestroyAsync(r.TenantId, r.Path ?? "", r.Version, s._principal!.KeyId, ct).ConfigureAwait(false);
                    // Destroying every version removes the secret: answer with its path and no versions.
                    return r.Version == 0 ? new SecretMetadataDto { Path = r.Path ?? "" } : ToDto(store.GetMetadata(r.TenantId, r.Path ?? ""));
                });
                return;
            }

            case Opcode.SecretPolicySet:
            {
                if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static (r) => r.TenantId, out SecretPolicyRequest? req, out var tenantId))
                    return;
                req.TenantId = tenantId;
                var resource = $"{SecretResource(tenantId, req.Path, 0)}:policy(max={req.MaxVersions.ToString(CultureInfo.InvariantCulture)},rotateDays={req.RotateEveryDays.ToString(CultureInfo.InvariantCulture)})";
                StartAudited(streamId, opcode, start, req, resource, tenantId, static async (s, r, ct) =>
                {
                    var store = s._server.Secrets!;
                    await store.SetPolicyAsync(r.TenantId, r.Path ?? "", new SecretPolicy(r.MaxVersions, r.RotateEveryDays), s._principal!.KeyId, ct).ConfigureAwait(false);
                    return ToDto(store.GetMetadata(r.TenantId, r.Path ?? ""));
                });
                return;
            }

            case Opcode.SecretRotationReport:
            {
                if (!TryDecodeInTenant(frame.Body, streamId, opcode, start, static (r) => r.TenantId, out SecretRotationReportRequest? req, out var tenantId))
                    return;
                req.TenantId = tenantId;
                StartAudited(streamId, opcode, start, req, SecretResource(tenantId, req.Path, 0) + ":rotation-failed", tenantId, static async (s, r, ct) =>
                {
                    var store = s._server.Secrets!;
                    await store.ReportRotationFailureAsync(r.TenantId, r.Path ?? "", r.Reason ?? "", s._principal!.KeyId, ct).ConfigureAwait(false);
                    return ToDto(store.GetMetadata(r.TenantId, r.Path ?? ""));
                });
                return;
            }

            case Opcode.SecretWatch:
            {
                if (!TryDecodeOrRefuse(frame.Body, streamId, opcode, start, out SecretWatchRequest? req, allowEmpty: true))
                    return;
                string? tenantId;
                if (req.TenantId == "*")
                {
                    if (!_principal!.IsPlatformAdmin)
                    {
                        DenyForeignTenant(streamId, opcode, start, "*");
                        return;
                    }
                    tenantId = null;
                }
                else if (!TryScopeTenant(req.TenantId, streamId, opcode, start, out var scoped))
                {
                    return;
                }
                else
                {
                    tenantId = scoped;
                }
                var request = Register(streamId, opcode, start, stream: true);
                _ = RunSecretWatchAsync(request, secrets, tenantId, req.PathPrefix ?? "");
                return;
            }

            case Opcode.MasterKeyRotate:
                StartAudited(streamId, opcode, start, 0, $"kek:{_server.SecretProviderName}", _principal!.TenantId, static async (s, _, ct) =>
                {
                    int rewrapped = await s._server.RotateMasterKeyAsync(ct).ConfigureAwait(false);
                    return new MasterKeyRotateResponse { Rewrapped = rewrapped, Provider = s._server.SecretProviderName };
                });
                return;

            default:
                _writer.WriteError(streamId, opcode, ErrorCode.UnknownOpcode, start);
                return;
        }
    }

    // Reads that are not audited (metadata, listings: no value leaves the server) but may throw the plane's errors.
    private void RunReadCall<T>(uint streamId, Opcode opcode, long start, Func<T> call)
    {
        try
        {
            _writer.WriteMessage(FrameType.Response, opcode, streamId, call(), start);
        }
        catch (WayangException ex)
        {
            _writer.WriteError(streamId, opcode, ex.Error, start);
        }
    }

    // A stream of rotation and change events under the stream's credit. A slow reader loses the oldest events, and
    // the next event it gets says how many (Dropped); the server never buffers without bound for it. The subscription
    // is open before this returns to dispatch, so every change after the request is seen.
    private async Task RunSecretWatchAsync(AsyncRequest request, SecretStore secrets, string? tenantId, string pathPrefix)
    {
        using var subscription = secrets.Events.Open(tenantId, capacity: 256);
        await RunServerStreamAsync(request, (Subscription: subscription, PathPrefix: pathPrefix), static async (s, request, watch) =>
        {
            var reader = watch.Subscription.Reader;
            long reportedDropped = 0;
            while (await reader.WaitToReadAsync(request.Token).ConfigureAwait(false))
            {
                while (reader.TryRead(out var e))
                {
                    if (!e.Path.StartsWith(watch.PathPrefix, StringComparison.Ordinal))
                        continue;
                    await request.Credit!.WaitAsync(request.Token).ConfigureAwait(false);
                    long dropped = watch.Subscription.Dropped;
                    var dto = new SecretEventDto
                    {
                        Kind = (byte)e.Kind, TenantId = e.Tenant, Path = e.Path, Version = e.Version, AtMs = e.AtMs, Detail = e.Detail ?? "",
                        Dropped = dropped - reportedDropped,
                    };
                    reportedDropped = dropped;
                    if (!s._writer.WriteMessage(FrameType.Stream, Opcode.SecretWatch, request.StreamId, dto))
                        return false;
                    await s._writer.FlushAsync().ConfigureAwait(false);
                }
            }
            return true;
        }).ConfigureAwait(false);
    }

    // "secret:<tenant>/<path>" plus "@<version>" when one is named: what the audit log records, never a value.
    private static string SecretResource(string tenantId, string? path, int version) =>
        version > 0 ? $"secret:{tenantId}/{path}@{version.ToString(CultureInfo.InvariantCulture)}" : $"secret:{tenantId}/{path}";

    private static SecretMetadataDto ToDto(SecretMetadata m) => new()
    {
        Path = m.Path,
        CurrentVersion = m.CurrentVersion,
        Versions = [.. m.Versions.Select(v => new SecretVersionMetaDto
        {
            Version = v.Version, State = (byte)v.State, CreatedAtMs = v.CreatedAtMs, CreatedBy = v.CreatedBy, Provider = v.Provider ?? "", KeyId = v.KeyId ?? "",
        })],
        MaxVersions = m.Policy.MaxVersions,
        RotateEveryDays = m.Policy.RotateEveryDays,
        UpdatedAtMs = m.UpdatedAtMs,
        LastRotationFailure = m.LastRotationFailure ?? "",
        LastRotationFailureAtMs = m.LastRotationFailureAtMs,
    };
}
