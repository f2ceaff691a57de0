namespace Wayang.Fast.Control.Tenancy;

// Role names as stored on keys and shown to users. Issue 5 maps them to permission sets; until then the
// dispatcher's interim rule uses PlatformAdmin and TenantAdmin only.
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

    public static bool IsKnown(string role) => All.Contains(role, StringComparer.Ordinal);
}
