using System.Security.Cryptography;

namespace Wayang.Fast.Common;

// Ids that appear in logs and on the wire: short, URL-safe, unguessable where they name resources.
public static class Ids
{
    private const string Alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";

    public static string NewId(string prefix, int randomChars = 20)
    {
        Span<char> chars = stackalloc char[randomChars];
        RandomNumberGenerator.GetItems(Alphabet, chars);
        return string.Concat(prefix, chars);
    }

    // Tenant ids, key names and similar identifiers a user chooses: 1..64 of [a-z0-9-_], starting alphanumeric.
    public static bool IsValidName(string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > 64)
            return false;
        if (!char.IsAsciiLetterOrDigit(value[0]))
            return false;
        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-' || c == '_'))
                return false;
        }
        return true;
    }
}
