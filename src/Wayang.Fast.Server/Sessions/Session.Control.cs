using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Rbac;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Sessions;

// Control-plane opcodes beyond tenants and keys: roles and role bindings. Permission was checked (Authorization.Check);
// here every request is scoped to the caller's tenant unless it is cross-tenant, and every change is audited before
// its reply goes out.
internal sealed partial class Session
{
    private void DispatchRbac(in Frame frame, uint streamId, Opcode opcode, long start)
    {
        var principal = _principal!;
        switch (opcode)
        {
            case Opcode.RoleList:
            {
                if (!TryDecode(frame.Body, out RoleListRequest? req, allowEmpty: true))
                {
                    _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                    return;
                }
                if (!TryScopeTenant(req.TenantId, streamId, opcode, start, out var tenantId))
                    return;
                var roles = _server.Tenants.RoleCatalog.List(tenantId);
                var dtos = new RoleDto[roles.Count];
                for (int i = 0; i < dtos.Length; i++)
                    dtos[i] = ToDto(roles[i]);
                _writer.WriteMessage(FrameType.Response, opcode, streamId, new RoleListResponse { Roles = dtos }, start);
                return;
            }

            case Opcode.RolePut:
            {
                if (!TryDecode(frame.Body, out RolePutRequest? req))
                {
                    _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                    return;
                }
                if (!TryScopeTenant(req.TenantId, streamId, opcode, start, out var tenantId))
                    return;
                req.TenantId = tenantId;
                StartAudited(streamId, opcode, start, req, $"role:{tenantId}/{req.Name}", tenantId, static async (s, r, ct) =>
                    ToDto(await s._server.Tenants.PutRoleAsync(r.TenantId, r.Name ?? "", r.Permissions ?? [], ct).ConfigureAwait(false)));
                return;
            }

            case Opcode.RoleDelete:
            {
                if (!TryDecode(frame.Body, out RoleDeleteRequest? req))
                {
                    _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                    return;
                }
                if (!TryScopeTenant(req.TenantId, streamId, opcode, start, out var tenantId))
                    return;
                req.TenantId = tenantId;
                StartAudited(streamId, opcode, start, req, $"role:{tenantId}/{req.Name}", tenantId, static async (s, r, ct) =>
                    ToDto(await s._server.Tenants.DeleteRoleAsync(r.TenantId, r.Name ?? "", ct).ConfigureAwait(false)));
                return;
            }

            case Opcode.BindingList:
            {
                if (!TryDecode(frame.Body, out BindingListRequest? req, allowEmpty: true))
                {
                    _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                    return;
                }
                if (!TryScopeTenant(req.TenantId, streamId, opcode, start, out var tenantId))
                    return;
                var bindings = _server.Tenants.ListBindings(tenantId);
                var dtos = new BindingDto[bindings.Count];
                for (int i = 0; i < dtos.Length; i++)
                    dtos[i] = new BindingDto { KeyId = bindings[i].KeyId, KeyName = bindings[i].KeyName, Roles = [.. bindings[i].Roles], Revoked = bindings[i].Revoked };
                _writer.WriteMessage(FrameType.Response, opcode, streamId, new BindingListResponse { Bindings = dtos }, start);
                return;
            }

            case Opcode.BindingGrant:
            case Opcode.BindingRevoke:
            {
                if (!TryDecode(frame.Body, out BindingRequest? req))
                {
                    _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                    return;
                }
                // A key of another tenant answers exactly like a missing one.
                if (string.IsNullOrEmpty(req.KeyId) || !_server.Tenants.TryGetKey(req.KeyId, out var key) || !principal.CanActIn(key.TenantId))
                {
                    _ = DenyAsync(streamId, opcode, start, new WayangError(ErrorCode.KeyNotFound, $"API key '{req.KeyId}' does not exist."), $"key:{req.KeyId}", audit: false);
                    return;
                }
                StartAudited(streamId, opcode, start, (Request: req, Grant: opcode == Opcode.BindingGrant), $"binding:{key.TenantId}/{req.KeyId}/{req.Role}", key.TenantId, static async (s, r, ct) =>
                    ToDto(await s._server.Tenants.SetBindingAsync(r.Request.KeyId, r.Request.Role ?? "", r.Grant, ct).ConfigureAwait(false)));
                return;
            }

            default:
                _writer.WriteError(streamId, opcode, ErrorCode.UnknownOpcode, start);
                return;
        }
    }

    // Empty: the caller's tenant. Another tenant: only for cross-tenant principals, else PERMISSION_DENIED (audited);
    // a tenant that does not exist: TENANT_NOT_FOUND.
    private bool TryScopeTenant(string? requested, uint streamId, Opcode opcode, long start, out string tenantId)
    {
        var principal = _principal!;
        tenantId = string.IsNullOrEmpty(requested) ? principal.TenantId : requested;
        if (!principal.CanActIn(tenantId))
        {
            DenyForeignTenant(streamId, opcode, start, tenantId);
            return false;
        }
        if (!_server.Tenants.TenantExists(tenantId))
        {
            _writer.WriteError(streamId, opcode, ErrorCode.TenantNotFound, start);
            return false;
        }
        return true;
    }

    // Decodes a request and scopes the tenant it names (tenantOf; "" is the caller's own), answering BAD_BODY or the
    // scoping refusal itself when either fails.
    private bool TryDecodeInTenant<T>(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start, Func<T, string?> tenantOf,
        [NotNullWhen(true)] out T? request, out string tenantId, bool allowEmpty = false)
        where T : class, new()
    {
        tenantId = "";
        return TryDecodeOrRefuse(body, streamId, opcode, start, out request, allowEmpty) && TryScopeTenant(tenantOf(request), streamId, opcode, start, out tenantId);
    }

    // Decodes a request body, answering BAD_BODY when it is not one.
    private bool TryDecodeOrRefuse<T>(in ReadOnlySequence<byte> body, uint streamId, Opcode opcode, long start, [NotNullWhen(true)] out T? request, bool allowEmpty = false)
        where T : class, new()
    {
        if (TryDecode(body, out request, allowEmpty))
            return true;
        _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
        return false;
    }

    // Naming a tenant the principal may not act in: an audited PERMISSION_DENIED.
    private void DenyForeignTenant(uint streamId, Opcode opcode, long start, string tenantId) =>
        _ = DenyAsync(streamId, opcode, start, new WayangError(ErrorCode.PermissionDenied, $"The principal may not act in tenant '{tenantId}'."), $"tenant:{tenantId}", audit: true);

    private static RoleDto ToDto(RoleInfo r) => new()
    {
        TenantId = r.TenantId,
        Name = r.Name,
        BuiltIn = r.BuiltIn,
        Permissions = [.. r.Permissions],
        UpdatedAtMs = r.UpdatedAtMs,
    };
}
