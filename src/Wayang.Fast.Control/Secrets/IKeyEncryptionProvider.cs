using System.Buffers.Binary;
using System.Text;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Control.Secrets;

// KeyId names the key-encryption key that wrapped Ciphertext (a local master key id, a KMS key ARN, a Vault key
// version), so KeyIdsInUse can tell which master keys may be retired.
public sealed record WrappedDataKey(string KeyId, byte[] Ciphertext);

public sealed record DataKey(byte[] Plaintext, WrappedDataKey Wrapped);

// Wraps and unwraps the per-version data keys (envelope encryption). The context ({"tenant","path"}) is bound to the
// wrapped key: unwrapping under another context fails. Failures surface as KMS_UNAVAILABLE naming the provider,
// except an unwrap that fails authentication, which is SECRET_INTEGRITY.
public interface IKeyEncryptionProvider
{
    string Name { get; }

    ValueTask<DataKey> GenerateDataKeyAsync(IReadOnlyDictionary<string, string> context, CancellationToken ct);

    ValueTask<byte[]> DecryptDataKeyAsync(WrappedDataKey wrapped, IReadOnlyDictionary<string, string> context, CancellationToken ct);

    // The same data key wrapped under the provider's current key-encryption key.
    ValueTask<WrappedDataKey> RewrapAsync(WrappedDataKey wrapped, IReadOnlyDictionary<string, string> context, CancellationToken ct);
}

internal static class KeyContext
{
    public const int DataKeyBytes = 32;

    // Canonical bytes of a context (ordinal key order, each key and value length-prefixed so no two contexts
    // encode alike), followed by the key id: what the local provider and Vault authenticate as associated data.
    public static byte[] Encode(IReadOnlyDictionary<string, string> context, string keyId)
    {
        var buffer = new List<byte>(64);
        foreach (var (k, v) in context.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            Append(buffer, k);
            Append(buffer, v);
        }
        Append(buffer, keyId);
        return [.. buffer];
    }

    private static void Append(List<byte> buffer, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, bytes.Length);
        buffer.AddRange(length);
        buffer.AddRange(bytes);
    }

    public static WayangException Unavailable(string provider, string what, Exception? inner = null)
    {
        var error = new WayangError(ErrorCode.KmsUnavailable, $"key provider '{provider}': {what}");
        return inner is null ? new WayangException(error) : new WayangException(error, inner);
    }

    public static WayangException Integrity(string provider, Exception? inner = null)
    {
        var error = new WayangError(ErrorCode.SecretIntegrity, $"key provider '{provider}' could not authenticate the wrapped data key (tampered or moved).");
        return inner is null ? new WayangException(error) : new WayangException(error, inner);
    }
}
