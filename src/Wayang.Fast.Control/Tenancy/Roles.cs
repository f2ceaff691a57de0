namespace Wayang.Fast.Control.Tenancy;

// The built-in role names as stored on keys and shown to users; BuiltInRoles maps them to permission sets.
public static class Roles
{
    public const string PlatformAdmin = "platform-admin";
    public const string TenantAdmin = "tenant-admin";
    public const string Developer = "developer";
    public const string Operator = "operator";
    public const string Executor = "executor";
    public const string Viewer = "viewer";
    public const string Auditor = "auditor";

    public static IReadOnlyList<string> All { get; } = [PlatformAdmin, TenantAdmin, Developer, Operator, Executor, Viewer, Auditor];
}
