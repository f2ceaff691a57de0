using System.Security.Cryptography;

namespace Wayang.Fast.Common;

// Ids that appear in logs and on the wire: short, URL-safe, unguessable where they name resources.
public static class Ids
{
    private const string Alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";

    // Bytes at or above this are rejected so that every character is uniform over the alphabet (252 = 7 x 36).
    private const int Unbiased = 256 / 36 * 36;
    private const int BufferBytes = 1024;

    // Random bytes drawn from the system RNG a kilobyte at a time, per thread: one RandomNumberGenerator call costs
    // about a microsecond (an OpenSSL call) whether it yields 4 bytes or 1,024, and a run id needs about 22.
    [ThreadStatic] private static byte[]? t_random;
    [ThreadStatic] private static int t_left;

    public static string NewId(string prefix, int randomChars = 20)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(randomChars);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(randomChars, 256);
        Span<char> chars = stackalloc char[randomChars];
        var random = t_random ??= new byte[BufferBytes];
        int left = t_left;
        int filled = 0;
        while (filled < randomChars)
        {
            if (left == 0)
            {
                RandomNumberGenerator.Fill(random);
                left = BufferBytes;
            }
            byte b = random[BufferBytes - left--];
            if (b < Unbiased)
                chars[filled++] = Alphabet[b % Alphabet.Length];
        }
        t_left = left;
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
