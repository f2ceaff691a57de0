using Wayang.Fast.Common.Audit;
using Wayang.Fast.Control.Audit;

namespace Wayang.Fast.Control.Tests;

// The canonical encoding is a persisted and externally verified format (protocol-spec/audit.md): this vector was
// computed by an independent implementation of the spec. If it changes, the format changed: bump FormatVersion.
public sealed class AuditRecordFormatTests
{
    private static readonly AuditRecord Golden = new()
    {
        Sequence = 7,
        TimeMs = 1_700_000_000_123,
        TenantId = "acme",
        PrincipalId = "key_1",
        PrincipalTenantId = "system",
        Opcode = 0x0203,
        Operation = "RunGet",
        Resource = "run:r1",
        Outcome = AuditOutcome.Denied,
        Reason = "PERMISSION_DENIED",
        ConnectionId = 42,
        Details = new Dictionary<string, string> { ["b"] = "2", ["a"] = "1", ["é"] = "x", ["Z"] = "upper" },
        PreviousHash = Enumerable.Repeat((byte)0x11, 32).ToArray(),
    };

    private const string GoldenCanonicalHex =
        "01" + "0700000000000000" + "7b68e5cf8b010000"
        + "04000000" + "61636d65" + "05000000" + "6b65795f31" + "06000000" + "73797374656d"
        + "0302" + "06000000" + "52756e476574" + "06000000" + "72756e3a7231"
        + "02" + "11000000" + "5045524d495353494f4e5f44454e494544" + "2a00000000000000"
        + "04000000"
        + "01000000" + "5a" + "05000000" + "7570706572"
        + "01000000" + "61" + "01000000" + "31"
        + "01000000" + "62" + "01000000" + "32"
        + "02000000" + "c3a9" + "01000000" + "78";

    private const string GoldenHashHex = "b88b12510fc58acde23e110571ff4d10f507509a2cf2550a6e27928dd81ef72c";

    [Fact]
    public void Canonical_encoding_and_hash_match_the_golden_vector()
    {
        var canonical = AuditRecordFormat.EncodeCanonical(Golden);
        Assert.Equal(GoldenCanonicalHex, Convert.ToHexStringLower(canonical));
        Assert.Equal(GoldenHashHex, Convert.ToHexStringLower(AuditRecordFormat.ComputeHash(Golden.PreviousHash.Span, canonical)));
    }

    [Fact]
    public void The_stored_entry_is_previous_hash_then_canonical_then_hash_and_decodes_back()
    {
        var entry = AuditRecordFormat.EncodeEntry(Golden);
        Assert.Equal(new string('1', 64) + GoldenCanonicalHex + GoldenHashHex, Convert.ToHexStringLower(entry));

        Assert.True(AuditRecordFormat.TryDecodeEntry(entry, out var decoded, out var error), error);
        Assert.Equal(Golden with { Details = decoded.Details, PreviousHash = decoded.PreviousHash, Hash = decoded.Hash }, decoded);
        Assert.Equal(["Z", "a", "b", "é"], decoded.Details.Keys);
        Assert.Equal(GoldenHashHex, decoded.HashHex);
    }

    [Fact]
    public void Details_order_does_not_depend_on_insertion_order()
    {
        var reversed = Golden with { Details = Golden.Details.Reverse().ToDictionary() };
        Assert.Equal(AuditRecordFormat.EncodeCanonical(Golden), AuditRecordFormat.EncodeCanonical(reversed));
    }

    [Fact]
    public void Truncated_or_padded_entries_do_not_decode()
    {
        var entry = AuditRecordFormat.EncodeEntry(Golden);
        for (int cut = 1; cut < 80; cut += 7)
            Assert.False(AuditRecordFormat.TryDecodeEntry(entry.AsSpan(0, entry.Length - cut), out _, out _));
        Assert.False(AuditRecordFormat.TryDecodeEntry([.. entry[..^32], 0, .. entry[^32..]], out _, out var error));
        Assert.Contains("trailing", error, StringComparison.Ordinal);
        var otherVersion = entry.ToArray();
        otherVersion[32] = 2;
        Assert.False(AuditRecordFormat.TryDecodeEntry(otherVersion, out _, out error));
        Assert.Contains("version", error, StringComparison.Ordinal);
    }
}
