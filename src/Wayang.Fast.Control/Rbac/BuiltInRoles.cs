using Wayang.Fast.Control.Tenancy;

namespace Wayang.Fast.Control.Rbac;

// The fixed roles and what they grant (protocol-spec/permissions.md documents the same table; a test reads both).
// Every role includes Session. Built-in roles cannot be changed or deleted; tenants add their own (RoleCatalog).
public static class BuiltInRoles
{
    private static readonly Dictionary<string, PermissionSet> Sets = new(StringComparer.Ordinal)
    {
        [Roles.PlatformAdmin] = PermissionSet.AllPermissions,
        // Everything within its tenant except acting as an executor (executors get their own keys).
        [Roles.TenantAdmin] = PermissionSet.AllPermissions.Except(Permissions.PlatformOnly).Except(PermissionSet.Of(Permission.ExecutorRun)),
        [Roles.Developer] = PermissionSet.Of(Permission.Session, Permission.DefinitionsRead, Permission.DefinitionsWrite, Permission.DefinitionsPublish,
            Permission.RunsRead, Permission.RunsSubmit, Permission.RunsControl,
            Permission.SecretsList, Permission.SecretsRead, Permission.SecretsWrite, Permission.PluginsRead, Permission.PluginsManage,
            Permission.InferenceInvoke, Permission.InferenceRead, Permission.InferenceManage),
        [Roles.Operator] = PermissionSet.Of(Permission.Session, Permission.DefinitionsRead, Permission.RunsRead, Permission.RunsSubmit, Permission.RunsControl,
            Permission.QueuesRead, Permission.DlqRead, Permission.DlqManage, Permission.SecretsList, Permission.PluginsRead, Permission.InferenceRead, Permission.InferenceManage),
        // Executors read secret values: they resolve the credential references of the tasks they run.
        [Roles.Executor] = PermissionSet.Of(Permission.Session, Permission.ExecutorRun, Permission.SecretsRead, Permission.InferenceInvoke),
        [Roles.Viewer] = PermissionSet.Of(Permission.Session, Permission.DefinitionsRead, Permission.RunsRead, Permission.QueuesRead, Permission.DlqRead,
            Permission.SecretsList, Permission.PluginsRead, Permission.InferenceRead),
        // Auditors read the audit log and nothing else.
        [Roles.Auditor] = PermissionSet.Of(Permission.Session, Permission.AuditRead),
    };

    public static bool TryGet(string role, out PermissionSet permissions) => Sets.TryGetValue(role, out permissions);

    public static bool IsBuiltIn(string role) => Sets.ContainsKey(role);
}
