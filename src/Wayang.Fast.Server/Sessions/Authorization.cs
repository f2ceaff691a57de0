using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Server.Sessions;

// THE interim permission rule (issue 5 replaces it with RBAC). The dispatcher consults it for every REQUEST
// before decoding the body or reaching a plane; nothing else decides who may call what.
internal static class Authorization
{
    private enum Access
    {
        Unknown,
        Authenticated,
        PlatformAdmin,
        TenantAdmin,
    }

    private static Access Required(Opcode opcode) => opcode switch
    {
        Opcode.Ping or Opcode.Tick => Access.Authenticated,
        Opcode.TenantCreate or Opcode.TenantList => Access.PlatformAdmin,
        Opcode.KeyCreate or Opcode.KeyList or Opcode.KeyRevoke => Access.TenantAdmin,
        _ => Access.Unknown,
    };

    // None, UnknownOpcode or PermissionDenied.
    public static ErrorCode Check(Principal principal, Opcode opcode) => Required(opcode) switch
    {
        Access.Authenticated => ErrorCode.None,
        Access.PlatformAdmin => principal.IsPlatformAdmin ? ErrorCode.None : ErrorCode.PermissionDenied,
        Access.TenantAdmin => principal.IsPlatformAdmin || principal.HasRole(Roles.TenantAdmin) ? ErrorCode.None : ErrorCode.PermissionDenied,
        _ => ErrorCode.UnknownOpcode,
    };

    // Tenant-scoped operations: a platform admin acts on any tenant, a tenant admin on its own only.
    public static bool CanAdministerTenant(Principal principal, string tenantId) =>
        principal.IsPlatformAdmin || (principal.HasRole(Roles.TenantAdmin) && string.Equals(principal.TenantId, tenantId, StringComparison.Ordinal));
}
