using System.Text;

namespace Wayang.Fast.Common.Definitions;

// JSON pointers (RFC 6901) for definition violations, shared by the control plane's schema checks and the execution
// plane's workflow validator so both name a problem the same way.
public static class JsonPointer
{
    // Appends one segment, escaping '~' and '/'.
    public static string Append(string pointer, string segment) =>
        string.Concat(pointer, "/", segment.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal));

    // "$.parameters.maxTokens" / "$.tools[0].name" / "$.outputs['a b']" -> "/parameters/maxTokens" / "/tools/0/name" /
    // "/outputs/a b": the path style of System.Text.Json's errors and of the validators' details.
    public static string FromJsonPath(string? jsonPath)
    {
        if (string.IsNullOrEmpty(jsonPath) || jsonPath == "$")
            return "";
        var pointer = new StringBuilder();
        var path = jsonPath.AsSpan(1);
        while (!path.IsEmpty)
        {
            if (path[0] == '.')
            {
                int end = path[1..].IndexOfAny('.', '[');
                var name = end < 0 ? path[1..] : path.Slice(1, end);
                pointer.Append(Append("", name.ToString()));
                path = end < 0 ? [] : path[(end + 1)..];
            }
            else if (path[0] == '[')
            {
                int end = path.IndexOf(']');
                if (end < 0)
                    break;
                var inner = path[1..end].ToString().Trim('\'');
                pointer.Append(Append("", inner));
                path = path[(end + 1)..];
            }
            else
            {
                break;
            }
        }
        return pointer.ToString();
    }
}
