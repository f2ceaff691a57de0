using System.Buffers;
using System.Security.Cryptography;
using NSec.Cryptography;

namespace Wayang.Fast.Control.Plugins;

// Ed25519 over the signed payload "wayang-plugin-v1\n" + the manifest bytes exactly as uploaded. The manifest names the
// artifact's digest, so one signature covers both; the prefix keeps a manifest signature from being valid for any other
// message signed with the same key. Keys travel raw: 32-byte private seeds, 32-byte public keys.
public static class PluginSigning
{
    public const int PublicKeyBytes = 32;
    public const int SignatureBytes = 64;

    private static readonly SignatureAlgorithm Ed25519 = SignatureAlgorithm.Ed25519;

    public static ReadOnlySpan<byte> PayloadPrefix => "wayang-plugin-v1\n"u8;

    public static (byte[] PrivateKey, byte[] PublicKey) GenerateKeyPair()
    {
        using var key = Key.Create(Ed25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        return (key.Export(KeyBlobFormat.RawPrivateKey), key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }

    public static byte[] Sign(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> manifest)
    {
        using var key = Key.Import(Ed25519, privateKey, KeyBlobFormat.RawPrivateKey);
        var payload = ArrayPool<byte>.Shared.Rent(PayloadPrefix.Length + manifest.Length);
        try
        {
            return Ed25519.Sign(key, Payload(payload, manifest));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(payload);
        }
    }

    // The public key of a raw private seed (the CLI's key files hold only the seed).
    public static byte[] PublicKeyOf(ReadOnlySpan<byte> privateKey)
    {
        using var key = Key.Import(Ed25519, privateKey, KeyBlobFormat.RawPrivateKey);
        return key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    // False for a malformed key or signature as well as for a signature that does not match.
    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> manifest, ReadOnlySpan<byte> signature)
    {
        if (signature.Length != SignatureBytes || !PublicKey.TryImport(Ed25519, publicKey, KeyBlobFormat.RawPublicKey, out var key) || key is null)
            return false;
        var payload = ArrayPool<byte>.Shared.Rent(PayloadPrefix.Length + manifest.Length);
        try
        {
            return Ed25519.Verify(key, Payload(payload, manifest), signature);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(payload);
        }
    }

    // Whether the bytes are a public key NSec accepts (32 bytes, a valid point encoding).
    public static bool IsValidPublicKey(ReadOnlySpan<byte> publicKey) => PublicKey.TryImport(Ed25519, publicKey, KeyBlobFormat.RawPublicKey, out _);

    // "sha256:" + 64 lowercase hex digits.
    public static string DigestOf(ReadOnlySpan<byte> artifact) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(artifact));

    // The first 16 lowercase hex digits (8 bytes) of SHA-256 over the raw 32-byte public key: derived, so an id
    // names one key and a signer can compute it from its own key.
    public static string KeyIdOf(ReadOnlySpan<byte> publicKey) => Convert.ToHexStringLower(SHA256.HashData(publicKey).AsSpan(0, 8));

    private static ReadOnlySpan<byte> Payload(byte[] buffer, ReadOnlySpan<byte> manifest)
    {
        PayloadPrefix.CopyTo(buffer);
        manifest.CopyTo(buffer.AsSpan(PayloadPrefix.Length));
        return buffer.AsSpan(0, PayloadPrefix.Length + manifest.Length);
    }
}
