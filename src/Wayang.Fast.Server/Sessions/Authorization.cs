using System.Runtime.CompilerServices;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Rbac;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Server.Sessions;

// THE permission check. The dispatcher consults it for every REQUEST before decoding the body or reaching a plane;
// nothing else decides who may call what. Deny by default: an opcode missing from the table is UNKNOWN_OPCODE,
// a principal without the opcode's permission is PERMISSION_DENIED. protocol-spec/permissions.md documents the same
// table, and a test calls every opcode as every role against it.
internal static class Authorization
{
    // Outside the Permission range: the opcode has no entry (not served).
    private const Permission Unknown = (Permission)0xFF;

    public static Permission Required(Opcode opcode) => opcode switch
    {
        Opcode.Ping or Opcode.Tick => Permission.Session,
        Opcode.TenantCreate or Opcode.TenantList => Permission.TenantsManage,
        // Fairness is between tenants: no tenant sets its own weight or limits.
        Opcode.TenantScheduleSet or Opcode.TenantScheduleList => Permission.SchedulesManage,
        Opcode.KeyCreate or Opcode.KeyList or Opcode.KeyRevoke => Permission.KeysManage,
        Opcode.RoleList or Opcode.BindingList => Permission.RolesRead,
        Opcode.RolePut or Opcode.RoleDelete or Opcode.BindingGrant or Opcode.BindingRevoke => Permission.RolesManage,
        Opcode.AuditQuery or Opcode.AuditVerify or Opcode.AuditHead => Permission.AuditRead,
        Opcode.DefinitionValidate or Opcode.DefinitionCreate => Permission.DefinitionsWrite,
        Opcode.DefinitionTransition => Permission.DefinitionsPublish,
        Opcode.DefinitionList or Opcode.DefinitionGet => Permission.DefinitionsRead,
        Opcode.SecretList or Opcode.SecretHistory => Permission.SecretsList,
        Opcode.SecretGet or Opcode.SecretWatch => Permission.SecretsRead,
        Opcode.SecretPut or Opcode.SecretRotate or Opcode.SecretDisable or Opcode.SecretPolicySet or Opcode.SecretRotationReport => Permission.SecretsWrite,
        Opcode.SecretDestroy => Permission.SecretsDestroy,
        Opcode.MasterKeyRotate => Permission.MasterKeyRotate,
        Opcode.PluginList or Opcode.PluginShow or Opcode.TrustKeyList => Permission.PluginsRead,
        Opcode.PluginUpload or Opcode.PluginEnable or Opcode.PluginDisable or Opcode.PluginConfigure => Permission.PluginsManage,
        Opcode.TrustKeyAdd or Opcode.TrustKeyRevoke or Opcode.PluginPolicySet => Permission.TrustManage,

        Opcode.WorkflowGet or Opcode.WorkflowList => Permission.DefinitionsRead,
        Opcode.WorkflowRegister => Permission.DefinitionsWrite,
        Opcode.RunGet or Opcode.RunList => Permission.RunsRead,
        Opcode.RunSubmit => Permission.RunsSubmit,
        Opcode.RunCancel or Opcode.RunSuspend or Opcode.RunResume or Opcode.RunSignal => Permission.RunsControl,
        Opcode.ExecutorRegister or Opcode.ExecutorSetSlots or Opcode.ExecutorHeartbeat or Opcode.TaskResult => Permission.ExecutorRun,
        Opcode.QueueStats => Permission.QueuesRead,
        Opcode.DlqList or Opcode.DlqShow => Permission.DlqRead,
        Opcode.DlqReplay or Opcode.DlqDiscard => Permission.DlqManage,

        Opcode.InferenceChat or Opcode.InferenceChatStream or Opcode.InferenceEmbed => Permission.InferenceInvoke,
        Opcode.InferenceModelList or Opcode.InferenceProviderList or Opcode.FallbackPolicyGet => Permission.InferenceRead,
        Opcode.FallbackPolicySet or Opcode.FallbackPolicyDelete => Permission.InferenceManage,
        _ => Unknown,
    };

    public static bool IsKnown(Opcode opcode) => Required(opcode) != Unknown;

    // None, UnknownOpcode or PermissionDenied. A switch and one AND of a 64-bit mask: no allocation, no lock.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ErrorCode Check(Principal principal, Opcode opcode)
    {
        var required = Required(opcode);
        if (required == Unknown)
            return ErrorCode.UnknownOpcode;
        return principal.Grant.Current.Permissions.Has(required) ? ErrorCode.None : ErrorCode.PermissionDenied;
    }
}
