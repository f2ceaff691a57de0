using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Server.Sessions;

// THE interim permission rule (issue 5 replaces it with RBAC). The dispatcher consults it for every REQUEST
// before decoding the body or reaching a plane; nothing else decides who may call what. protocol-spec/opcodes.md
// documents the same table. A platform admin may call everything.
internal static class Authorization
{
    private enum Access
    {
        Unknown,
        Authenticated,
        PlatformAdmin,
        // Any one of the roles listed for the opcode (AnyOf).
        Roles,
    }

    private static readonly string[] TenantAdmins = [Roles.TenantAdmin];
    private static readonly string[] WorkflowAuthors = [Roles.TenantAdmin, Roles.Developer];
    private static readonly string[] RunControllers = [Roles.Developer, Roles.Operator, Roles.TenantAdmin];
    private static readonly string[] Executors = [Roles.Executor];
    private static readonly string[] QueueReaders = [Roles.Operator, Roles.TenantAdmin, Roles.Auditor];
    private static readonly string[] DeadLetterActors = [Roles.Operator, Roles.TenantAdmin];

    private static (Access Access, string[]? AnyOf) Required(Opcode opcode) => opcode switch
    {
        Opcode.Ping or Opcode.Tick => (Access.Authenticated, null),
        Opcode.TenantCreate or Opcode.TenantList => (Access.PlatformAdmin, null),
        // Fairness is between tenants: no tenant sets its own weight or limits.
        Opcode.TenantScheduleSet or Opcode.TenantScheduleList => (Access.PlatformAdmin, null),
        Opcode.KeyCreate or Opcode.KeyList or Opcode.KeyRevoke => (Access.Roles, TenantAdmins),

        Opcode.WorkflowRegister => (Access.Roles, WorkflowAuthors),
        Opcode.WorkflowGet or Opcode.WorkflowList or Opcode.RunGet or Opcode.RunList => (Access.Authenticated, null),
        Opcode.RunSubmit or Opcode.RunCancel or Opcode.RunSuspend or Opcode.RunResume or Opcode.RunSignal => (Access.Roles, RunControllers),
        Opcode.ExecutorRegister or Opcode.ExecutorSetSlots or Opcode.ExecutorHeartbeat or Opcode.TaskResult => (Access.Roles, Executors),
        Opcode.QueueStats or Opcode.DlqList or Opcode.DlqShow => (Access.Roles, QueueReaders),
        Opcode.DlqReplay or Opcode.DlqDiscard => (Access.Roles, DeadLetterActors),
        _ => (Access.Unknown, null),
    };

    // None, UnknownOpcode or PermissionDenied.
    public static ErrorCode Check(Principal principal, Opcode opcode)
    {
        var (access, anyOf) = Required(opcode);
        return access switch
        {
            Access.Authenticated => ErrorCode.None,
            Access.PlatformAdmin => principal.IsPlatformAdmin ? ErrorCode.None : ErrorCode.PermissionDenied,
            Access.Roles => principal.IsPlatformAdmin || HasAny(principal, anyOf!) ? ErrorCode.None : ErrorCode.PermissionDenied,
            _ => ErrorCode.UnknownOpcode,
        };
    }

    // Tenant-scoped operations: a platform admin acts on any tenant, a tenant admin on its own only.
    public static bool CanAdministerTenant(Principal principal, string tenantId) =>
        principal.IsPlatformAdmin || (principal.HasRole(Roles.TenantAdmin) && string.Equals(principal.TenantId, tenantId, StringComparison.Ordinal));

    private static bool HasAny(Principal principal, string[] roles)
    {
        foreach (var role in roles)
        {
            if (principal.HasRole(role))
                return true;
        }
        return false;
    }
}
