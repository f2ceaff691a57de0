using System.Globalization;
using System.Text;

namespace Wayang.Fast.Inference.Tests.Adapters;

// JSON strings the way Go's and C++'s encoders write them: non-ASCII text stays raw UTF-8 (System.Text.Json would
// escape it, and then no multi-byte sequence could be split on the wire).
internal static class FakeJson
{
    public static string Quote(string text)
    {
        var sb = new StringBuilder(text.Length + 2).Append('"');
        foreach (char c in text)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20)
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else
                        sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }

    // Splits text into pieces of n Unicode scalars (never inside a surrogate pair: each piece is valid text).
    public static List<string> Pieces(string text, int n)
    {
        var pieces = new List<string>();
        var sb = new StringBuilder();
        int count = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            sb.Append(rune.ToString());
            if (++count == n)
            {
                pieces.Add(sb.ToString());
                sb.Clear();
                count = 0;
            }
        }
        if (sb.Length > 0)
            pieces.Add(sb.ToString());
        return pieces;
    }
}
