using System.Globalization;

namespace Wayang.Fast.Common.Definitions;

// The storage key suffix of one definition version, "<tenantId>/<id>/<version:D10>", shared by the workflow and agent
// registries. The fixed-width version keeps a prefix scan's keys in version order for humans reading a dump.
public static class VersionedKey
{
    public static string Suffix(string tenantId, string id, int version) =>
        string.Concat(tenantId, "/", id, "/", version.ToString("D10", CultureInfo.InvariantCulture));

    public static bool TryParse(string suffix, out string tenantId, out string id, out int version)
    {
        var parts = suffix.Split('/');
        if (parts.Length == 3 && int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out version) && version >= 1)
        {
            (tenantId, id) = (parts[0], parts[1]);
            return true;
        }
        (tenantId, id, version) = ("", "", 0);
        return false;
    }
}
