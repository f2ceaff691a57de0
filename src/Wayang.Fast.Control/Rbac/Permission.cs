namespace Wayang.Fast.Control.Rbac;

// One permission per kind of operation (protocol-spec/permissions.md maps every opcode to one of these).
// The value is the bit index in a PermissionSet; custom roles store the names. Explicit, append-only, frozen by a
// golden test: a renumbered permission would silently change what a stored role grants.
public enum Permission : byte
{
    // Connect, Ping, Tick: every authenticated principal holds it.
    Session = 0,
    // Platform-only (system tenant): create and list tenants.
    TenantsManage = 1,
    // Platform-only: tenant weights and limits.
    SchedulesManage = 2,
    KeysManage = 3,
    RolesRead = 4,
    RolesManage = 5,
    DefinitionsRead = 6,
    DefinitionsWrite = 7,
    DefinitionsPublish = 8,
    RunsRead = 9,
    RunsSubmit = 10,
    RunsControl = 11,
    ExecutorRun = 12,
    QueuesRead = 13,
    DlqRead = 14,
    DlqManage = 15,
    AuditRead = 16,
    // Platform-only: act on any tenant's resources where an operation takes a tenant id.
    CrossTenant = 17,
    // Secret metadata and history; never values.
    SecretsList = 18,
    // Read secret values (also resolving credential references).
    SecretsRead = 19,
    // Write, rotate, disable versions, set rotation policies.
    SecretsWrite = 20,
    SecretsDestroy = 21,
    PluginsRead = 22,
    // Upload, enable, disable and configure plugins.
    PluginsManage = 23,
    // A tenant's trust store and verification level; the global store needs CrossTenant too.
    TrustManage = 24,
    // Platform-only: re-wrap every data key under a new key-encryption key.
    MasterKeyRotate = 25,
    // Chat, streaming chat and embeddings through the inference gateway.
    InferenceInvoke = 26,
    // Models, providers with their health, the tenant's fallback policy.
    InferenceRead = 27,
    // Set and delete the tenant's fallback policy.
    InferenceManage = 28,
}

public static class Permissions
{
    private static readonly (Permission Permission, string Name)[] Table =
    [
        (Permission.Session, "session"),
        (Permission.TenantsManage, "tenants.manage"),
        (Permission.SchedulesManage, "schedules.manage"),
        (Permission.KeysManage, "keys.manage"),
        (Permission.RolesRead, "roles.read"),
        (Permission.RolesManage, "roles.manage"),
        (Permission.DefinitionsRead, "definitions.read"),
        (Permission.DefinitionsWrite, "definitions.write"),
        (Permission.DefinitionsPublish, "definitions.publish"),
        (Permission.RunsRead, "runs.read"),
        (Permission.RunsSubmit, "runs.submit"),
        (Permission.RunsControl, "runs.control"),
        (Permission.ExecutorRun, "executor.run"),
        (Permission.QueuesRead, "queues.read"),
        (Permission.DlqRead, "dlq.read"),
        (Permission.DlqManage, "dlq.manage"),
        (Permission.AuditRead, "audit.read"),
        (Permission.CrossTenant, "cross-tenant"),
        (Permission.SecretsList, "secrets.list"),
        (Permission.SecretsRead, "secrets.read"),
        (Permission.SecretsWrite, "secrets.write"),
        (Permission.SecretsDestroy, "secrets.destroy"),
        (Permission.PluginsRead, "plugins.read"),
        (Permission.PluginsManage, "plugins.manage"),
        (Permission.TrustManage, "trust.manage"),
        (Permission.MasterKeyRotate, "secrets.master-rotate"),
        (Permission.InferenceInvoke, "inference.invoke"),
        (Permission.InferenceRead, "inference.read"),
        (Permission.InferenceManage, "inference.manage"),
    ];

    public static IEnumerable<Permission> All => Table.Select(t => t.Permission);

    // Only principals of the system tenant may hold these: a tenant's own roles can never reach across tenants.
    public static PermissionSet PlatformOnly { get; } = PermissionSet.Of(Permission.TenantsManage, Permission.SchedulesManage, Permission.CrossTenant, Permission.MasterKeyRotate);

    public static string NameOf(Permission permission)
    {
        foreach (var (p, name) in Table)
        {
            if (p == permission)
                return name;
        }
        return ((byte)permission).ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    public static bool TryParse(string name, out Permission permission)
    {
        foreach (var (p, n) in Table)
        {
            if (string.Equals(n, name, StringComparison.Ordinal))
            {
                permission = p;
                return true;
            }
        }
        permission = default;
        return false;
    }
}

// A set of permissions as one 64-bit mask: the decision on the request path is a single AND.
public readonly record struct PermissionSet(ulong Bits)
{
    public static PermissionSet Empty => default;

    public static PermissionSet Of(params Permission[] permissions)
    {
        ulong bits = 0;
        foreach (var p in permissions)
            bits |= 1UL << (byte)p;
        return new PermissionSet(bits);
    }

    public static PermissionSet AllPermissions { get; } = Of([.. Permissions.All]);

    public bool Has(Permission permission) => (Bits & (1UL << (byte)permission)) != 0;

    public PermissionSet Union(PermissionSet other) => new(Bits | other.Bits);

    public PermissionSet Except(PermissionSet other) => new(Bits & ~other.Bits);

    public bool Overlaps(PermissionSet other) => (Bits & other.Bits) != 0;

    public IEnumerable<Permission> Members()
    {
        foreach (var p in Permissions.All)
        {
            if (Has(p))
                yield return p;
        }
    }

    public IReadOnlyList<string> Names() => [.. Members().Select(Permissions.NameOf)];
}
