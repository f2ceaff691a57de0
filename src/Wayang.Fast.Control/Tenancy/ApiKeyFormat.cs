using System.Security.Cryptography;
using System.Text;

namespace Wayang.Fast.Control.Tenancy;

// A key is "wyk_<keyId>_<secret>": the id lets the server find the record without a scan, the secret
// (32 base-36 chars, about 165 bits) is only ever stored as its SHA-256. A fast hash is right here:
// the secret is random and long, so there is nothing for a slow password hash to protect.
internal static class ApiKeyFormat
{
    public const string Prefix = "wyk_";
    public const int KeyIdLength = 16;
    public const int SecretLength = 32;
    private const string Alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";

    public static (string KeyId, string Secret, string FullKey) Generate()
    {
        Span<char> id = stackalloc char[KeyIdLength];
        Span<char> secret = stackalloc char[SecretLength];
        RandomNumberGenerator.GetItems(Alphabet, id);
        RandomNumberGenerator.GetItems(Alphabet, secret);
        string keyId = new(id);
        string secretText = new(secret);
        return (keyId, secretText, string.Concat(Prefix, keyId, "_", secretText));
    }

    public static bool TryParse(ReadOnlySpan<char> presented, out ReadOnlySpan<char> keyId, out ReadOnlySpan<char> secret)
    {
        keyId = default;
        secret = default;
        if (presented.Length != Prefix.Length + KeyIdLength + 1 + SecretLength || !presented.StartsWith(Prefix, StringComparison.Ordinal))
            return false;
        var rest = presented[Prefix.Length..];
        if (rest[KeyIdLength] != '_')
            return false;
        keyId = rest[..KeyIdLength];
        secret = rest[(KeyIdLength + 1)..];
        return true;
    }

    public static string HashSecret(ReadOnlySpan<char> secret)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        HashSecret(secret, hash);
        return Convert.ToHexStringLower(hash);
    }

    public static void HashSecret(ReadOnlySpan<char> secret, Span<byte> hash)
    {
        Span<byte> utf8 = stackalloc byte[SecretLength * 3];
        int n = Encoding.UTF8.GetBytes(secret, utf8);
        SHA256.HashData(utf8[..n], hash);
    }
}
