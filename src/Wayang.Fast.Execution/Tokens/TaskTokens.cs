using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Execution.Tokens;

public readonly record struct TaskTokenClaims(string RunId, string NodeId, int Attempt, long ExpiresAtMs)
{
    public string TaskId => string.Concat(RunId, ":", NodeId, ":", Attempt.ToString(System.Globalization.CultureInfo.InvariantCulture));
}

// Signed task tokens: "v1." + base64url(payload) + "." + base64url(HMAC-SHA256(key, payload)), payload being the UTF-8
// of runId "\n" nodeId "\n" attempt "\n" expiresAtMs. An executor cannot forge or alter which run/node/attempt its
// result applies to. Issued once per dispatch and verified once per result, so both avoid allocations beyond the
// strings they return.
public sealed class TaskTokens
{
    public const int MaxTokenLength = 2048;
    private const string Prefix = "v1.";
    private const int MacBytes = 32;
    // Base64url without padding of 32 bytes.
    private const int MacChars = 43;
    private const int StackLimit = 512;

    private readonly byte[] _key;
    // Keyed HMAC contexts reused across tokens: the one-shot HMACSHA256.HashData sets up a fresh OpenSSL MAC (algorithm
    // lookup, key schedule, allocations) per call, which cost more than the hashing (bench/RESULTS.md). One context per
    // concurrent caller; a context is reset by producing its hash, so a rented one always starts clean.
    private readonly ConcurrentQueue<IncrementalHash> _macs = new();

    public TaskTokens(byte[] key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Length < 32)
            throw new ArgumentException("The task token key must be at least 32 bytes.", nameof(key));
        _key = (byte[])key.Clone();
    }

    public string Issue(string runId, string nodeId, int attempt, long expiresAtMs)
    {
        ArgumentException.ThrowIfNullOrEmpty(runId);
        ArgumentException.ThrowIfNullOrEmpty(nodeId);
        // The payload is newline-separated; a newline inside a field would make it ambiguous.
        if (runId.Contains('\n', StringComparison.Ordinal) || nodeId.Contains('\n', StringComparison.Ordinal))
            throw new ArgumentException("Run and node ids cannot contain a newline.");
        ArgumentOutOfRangeException.ThrowIfLessThan(attempt, 1);

        int maxChars = runId.Length + nodeId.Length + 3 + 11 + 20;
        char[]? rentedChars = null;
        Span<char> text = maxChars <= StackLimit ? stackalloc char[StackLimit] : (rentedChars = ArrayPool<char>.Shared.Rent(maxChars));
        byte[]? rentedBytes = null;
        try
        {
            text.TryWrite(CultureInfo.InvariantCulture, $"{runId}\n{nodeId}\n{attempt}\n{expiresAtMs}", out int textLength);
            int maxBytes = Encoding.UTF8.GetMaxByteCount(textLength);
            Span<byte> payload = maxBytes <= StackLimit ? stackalloc byte[StackLimit] : (rentedBytes = ArrayPool<byte>.Shared.Rent(maxBytes));
            int payloadLength = Encoding.UTF8.GetBytes(text[..textLength], payload);
            payload = payload[..payloadLength];

            Span<byte> mac = stackalloc byte[MacBytes];
            Sign(payload, mac);

            int payloadChars = Base64Url.GetEncodedLength(payloadLength);
            int total = Prefix.Length + payloadChars + 1 + MacChars;
            char[]? rentedToken = null;
            Span<char> dest = total <= StackLimit * 2 ? stackalloc char[StackLimit * 2] : (rentedToken = ArrayPool<char>.Shared.Rent(total));
            try
            {
                Prefix.CopyTo(dest);
                Base64Url.EncodeToChars(payload, dest.Slice(Prefix.Length, payloadChars));
                dest[Prefix.Length + payloadChars] = '.';
                Base64Url.EncodeToChars(mac, dest.Slice(Prefix.Length + payloadChars + 1, MacChars));
                return new string(dest[..total]);
            }
            finally
            {
                if (rentedToken is not null)
                    ArrayPool<char>.Shared.Return(rentedToken);
            }
        }
        finally
        {
            if (rentedChars is not null)
                ArrayPool<char>.Shared.Return(rentedChars);
            if (rentedBytes is not null)
                ArrayPool<byte>.Shared.Return(rentedBytes);
        }
    }

    // error: TaskTokenInvalid (malformed, bad signature) or TaskTokenExpired (nowMs past expiry, claims filled).
    public bool TryVerify(string token, long nowMs, out TaskTokenClaims claims, out ErrorCode error)
    {
        claims = default;
        error = ErrorCode.TaskTokenInvalid;
        if (string.IsNullOrEmpty(token) || token.Length > MaxTokenLength || !token.StartsWith(Prefix, StringComparison.Ordinal))
            return false;
        var body = token.AsSpan(Prefix.Length);
        int dot = body.IndexOf('.');
        if (dot <= 0)
            return false;
        var payloadText = body[..dot];
        var macText = body[(dot + 1)..];
        if (macText.Length != MacChars || !IsCanonicalBase64Url(payloadText) || !IsCanonicalBase64Url(macText))
            return false;

        // Under MaxTokenLength the payload decodes to at most 1536 bytes.
        Span<byte> payload = stackalloc byte[Base64Url.GetMaxDecodedLength(payloadText.Length)];
        if (!Base64Url.TryDecodeFromChars(payloadText, payload, out int payloadLength))
            return false;
        payload = payload[..payloadLength];
        Span<byte> mac = stackalloc byte[MacBytes];
        if (!Base64Url.TryDecodeFromChars(macText, mac, out int macLength) || macLength != MacBytes)
            return false;
        Span<byte> expected = stackalloc byte[MacBytes];
        Sign(payload, expected);
        if (!CryptographicOperations.FixedTimeEquals(mac, expected))
            return false;

        if (!TryParsePayload(payload, out claims))
            return false;
        if (nowMs > claims.ExpiresAtMs)
        {
            error = ErrorCode.TaskTokenExpired;
            return false;
        }
        error = ErrorCode.None;
        return true;
    }

    private void Sign(ReadOnlySpan<byte> payload, Span<byte> mac)
    {
        if (!_macs.TryDequeue(out var hmac))
            hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _key);
        hmac.AppendData(payload);
        hmac.GetHashAndReset(mac);
        _macs.Enqueue(hmac);
    }

    // Only the URL-safe alphabet, no padding, and no stray bits in the last character: a token has exactly one
    // spelling, so tampering with any character is always detected.
    private static bool IsCanonicalBase64Url(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty || text.Length % 4 == 1)
            return false;
        foreach (char c in text)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c == '-' || c == '_'))
                return false;
        }
        int last = DecodeChar(text[^1]);
        return (text.Length % 4) switch
        {
            2 => (last & 0x0F) == 0,
            3 => (last & 0x03) == 0,
            _ => true,
        };
    }

    private static int DecodeChar(char c) => c switch
    {
        >= 'A' and <= 'Z' => c - 'A',
        >= 'a' and <= 'z' => c - 'a' + 26,
        >= '0' and <= '9' => c - '0' + 52,
        '-' => 62,
        _ => 63,
    };

    private static bool TryParsePayload(ReadOnlySpan<byte> payload, out TaskTokenClaims claims)
    {
        claims = default;
        int first = payload.IndexOf((byte)'\n');
        if (first <= 0)
            return false;
        var rest = payload[(first + 1)..];
        int second = rest.IndexOf((byte)'\n');
        if (second <= 0)
            return false;
        var tail = rest[(second + 1)..];
        int third = tail.IndexOf((byte)'\n');
        if (third <= 0)
            return false;
        var attemptBytes = tail[..third];
        var expiresBytes = tail[(third + 1)..];
        if (expiresBytes.IndexOf((byte)'\n') >= 0)
            return false;
        if (!Utf8Parser.TryParse(attemptBytes, out int attempt, out int attemptUsed) || attemptUsed != attemptBytes.Length || attempt < 1)
            return false;
        if (!Utf8Parser.TryParse(expiresBytes, out long expiresAtMs, out int expiresUsed) || expiresUsed != expiresBytes.Length || expiresBytes.IsEmpty)
            return false;
        var runId = payload[..first];
        var nodeId = rest[..second];
        if (!System.Text.Unicode.Utf8.IsValid(runId) || !System.Text.Unicode.Utf8.IsValid(nodeId))
            return false;
        claims = new TaskTokenClaims(Encoding.UTF8.GetString(runId), Encoding.UTF8.GetString(nodeId), attempt, expiresAtMs);
        return true;
    }
}
