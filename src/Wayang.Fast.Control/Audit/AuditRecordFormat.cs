using System.Buffers.Binary;
using System.Collections.ObjectModel;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;
using Wayang.Fast.Common.Audit;

namespace Wayang.Fast.Control.Audit;

// The canonical encoding and the stored entry (protocol-spec/audit.md is normative; the golden test freezes it).
//
// canonical (format version 1), integers little-endian, str = u32 byte length + UTF-8 bytes:
//   u8 version | u64 sequence | i64 timeMs | str tenantId | str principalId | str principalTenantId | u16 opcode
//   | str operation | str resource | u8 outcome | str reason | i64 connectionId | u32 detailCount
//   | detailCount x (str key, str value), keys ascending by their UTF-8 bytes
// stored journal payload (JournalRecordType.Audit): previousHash[32] | canonical | hash[32]
// hash = SHA-256(previousHash || canonical), i.e. SHA-256 over the payload less its last 32 bytes.
public static class AuditRecordFormat
{
    public const byte FormatVersion = 1;
    public const int HashBytes = 32;

    internal const int SequenceOffset = 1;
    internal const int TimeOffset = 9;
    // version, sequence, time, 6 string lengths, opcode, outcome, connection id, detail count.
    private const int FixedCanonicalBytes = 1 + 8 + 8 + 6 * 4 + 2 + 1 + 8 + 4;
    internal const int MinEntryBytes = HashBytes + FixedCanonicalBytes + HashBytes;

    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    private static readonly byte[] Genesis = new byte[HashBytes];

    // The first record's PreviousHash: 32 zero bytes.
    public static ReadOnlySpan<byte> GenesisHash => Genesis;

    public static byte[] EncodeCanonical(AuditRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var fields = AuditFields.From(record);
        var canonical = new byte[CanonicalLength(fields)];
        WriteCanonical(canonical, record.Sequence, record.TimeMs, fields);
        return canonical;
    }

    public static byte[] ComputeHash(ReadOnlySpan<byte> previousHash, ReadOnlySpan<byte> canonical)
    {
        if (previousHash.Length != HashBytes)
            throw new ArgumentException($"A previous hash is {HashBytes} bytes.", nameof(previousHash));
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(previousHash);
        sha.AppendData(canonical);
        return sha.GetHashAndReset();
    }

    // The journal payload for a record whose PreviousHash is set; its Hash is recomputed, not trusted.
    public static byte[] EncodeEntry(AuditRecord record)
    {
        var canonical = EncodeCanonical(record);
        var entry = new byte[HashBytes + canonical.Length + HashBytes];
        record.PreviousHash.Span.CopyTo(entry);
        canonical.CopyTo(entry.AsSpan(HashBytes));
        SHA256.HashData(entry.AsSpan(0, entry.Length - HashBytes), entry.AsSpan(entry.Length - HashBytes));
        return entry;
    }

    // Structure only: the hashes are returned as stored, not checked (AuditLog.VerifyAsync checks them).
    public static bool TryDecodeEntry(ReadOnlySpan<byte> entry, [NotNullWhen(true)] out AuditRecord? record, [NotNullWhen(false)] out string? error)
    {
        record = null;
        if (entry.Length < MinEntryBytes)
        {
            error = $"entry is {entry.Length} bytes, shorter than the smallest record ({MinEntryBytes})";
            return false;
        }
        var reader = new Reader(entry[HashBytes..^HashBytes]);
        byte version = reader.U8();
        if (version != FormatVersion)
        {
            error = $"unknown format version {version}";
            return false;
        }
        long sequence = (long)reader.U64();
        long time = reader.I64();
        string tenant = reader.Str(), principal = reader.Str(), principalTenant = reader.Str();
        ushort opcode = reader.U16();
        string operation = reader.Str(), resource = reader.Str();
        var outcome = (AuditOutcome)reader.U8();
        string reason = reader.Str();
        long connection = reader.I64();
        uint count = reader.U32();
        IReadOnlyDictionary<string, string> details = ReadOnlyDictionary<string, string>.Empty;
        // Each detail takes at least 8 bytes, so a forged count cannot make us allocate more than the entry's size.
        if (!reader.Failed && count > 0 && count <= (uint)reader.Remaining / 8)
        {
            var map = new Dictionary<string, string>((int)count, StringComparer.Ordinal);
            for (uint i = 0; i < count && !reader.Failed; i++)
            {
                string key = reader.Str();
                map[key] = reader.Str();
            }
            details = map;
        }
        else if (count > 0)
        {
            reader.Fail();
        }
        if (reader.Failed || reader.Remaining != 0)
        {
            error = reader.Failed ? "a field runs past the end of the record" : $"{reader.Remaining} trailing bytes after the record";
            return false;
        }
        record = new AuditRecord
        {
            Sequence = sequence,
            TimeMs = time,
            TenantId = tenant,
            PrincipalId = principal,
            PrincipalTenantId = principalTenant,
            Opcode = opcode,
            Operation = operation,
            Resource = resource,
            Outcome = outcome,
            Reason = reason,
            ConnectionId = connection,
            Details = details,
            PreviousHash = entry[..HashBytes].ToArray(),
            Hash = entry[^HashBytes..].ToArray(),
        };
        error = null;
        return true;
    }

    // The sequence of a stored entry without decoding the rest; false if the entry is too short or of another version.
    internal static bool TryReadSequence(ReadOnlySpan<byte> entry, out long sequence)
    {
        sequence = 0;
        if (entry.Length < MinEntryBytes || entry[HashBytes] != FormatVersion)
            return false;
        sequence = (long)BinaryPrimitives.ReadUInt64LittleEndian(entry[(HashBytes + SequenceOffset)..]);
        return true;
    }

    internal static int CanonicalLength(in AuditFields f)
    {
        long length = FixedCanonicalBytes
            + Utf8.GetByteCount(f.TenantId) + Utf8.GetByteCount(f.PrincipalId) + Utf8.GetByteCount(f.PrincipalTenantId)
            + Utf8.GetByteCount(f.Operation) + Utf8.GetByteCount(f.Resource) + Utf8.GetByteCount(f.Reason);
        foreach (var (key, value) in f.Details)
            length += 8 + key.Length + value.Length;
        return length > int.MaxValue ? int.MaxValue : (int)length;
    }

    // Sequence and time are written here but patched in place under the append lock (SequenceOffset, TimeOffset),
    // so the strings are encoded outside it.
    internal static void WriteCanonical(Span<byte> dest, long sequence, long timeMs, in AuditFields f)
    {
        dest[0] = FormatVersion;
        BinaryPrimitives.WriteUInt64LittleEndian(dest[SequenceOffset..], (ulong)sequence);
        BinaryPrimitives.WriteInt64LittleEndian(dest[TimeOffset..], timeMs);
        int at = 17;
        at += WriteStr(dest[at..], f.TenantId);
        at += WriteStr(dest[at..], f.PrincipalId);
        at += WriteStr(dest[at..], f.PrincipalTenantId);
        BinaryPrimitives.WriteUInt16LittleEndian(dest[at..], f.Opcode);
        at += 2;
        at += WriteStr(dest[at..], f.Operation);
        at += WriteStr(dest[at..], f.Resource);
        dest[at++] = (byte)f.Outcome;
        at += WriteStr(dest[at..], f.Reason);
        BinaryPrimitives.WriteInt64LittleEndian(dest[at..], f.ConnectionId);
        at += 8;
        BinaryPrimitives.WriteUInt32LittleEndian(dest[at..], (uint)f.Details.Length);
        at += 4;
        foreach (var (key, value) in f.Details)
        {
            at += WriteBytes(dest[at..], key);
            at += WriteBytes(dest[at..], value);
        }
    }

    internal static void PatchSequenceAndTime(Span<byte> canonical, long sequence, long timeMs)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(canonical[SequenceOffset..], (ulong)sequence);
        BinaryPrimitives.WriteInt64LittleEndian(canonical[TimeOffset..], timeMs);
    }

    internal static byte[] Utf8Bytes(string s) => Utf8.GetBytes(s);

    private static int WriteStr(Span<byte> dest, string value)
    {
        int written = Utf8.GetBytes(value, dest[4..]);
        BinaryPrimitives.WriteUInt32LittleEndian(dest, (uint)written);
        return 4 + written;
    }

    private static int WriteBytes(Span<byte> dest, byte[] value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(dest, (uint)value.Length);
        value.CopyTo(dest[4..]);
        return 4 + value.Length;
    }

    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _at;

        public bool Failed { get; private set; }
        public readonly int Remaining => Failed ? 0 : _data.Length - _at;

        public void Fail() => Failed = true;

        private ReadOnlySpan<byte> Take(int n)
        {
            if (Failed || n < 0 || n > _data.Length - _at)
            {
                Failed = true;
                return default;
            }
            var span = _data.Slice(_at, n);
            _at += n;
            return span;
        }

        public byte U8() { var s = Take(1); return Failed ? (byte)0 : s[0]; }
        public ushort U16() { var s = Take(2); return Failed ? (ushort)0 : BinaryPrimitives.ReadUInt16LittleEndian(s); }
        public uint U32() { var s = Take(4); return Failed ? 0u : BinaryPrimitives.ReadUInt32LittleEndian(s); }
        public ulong U64() { var s = Take(8); return Failed ? 0ul : BinaryPrimitives.ReadUInt64LittleEndian(s); }
        public long I64() => (long)U64();

        public string Str()
        {
            uint length = U32();
            if (Failed || length > (uint)(_data.Length - _at))
            {
                Failed = true;
                return "";
            }
            return Utf8.GetString(Take((int)length));
        }
    }
}

// An event's fields, normalized for encoding: null strings become "", details become (key, value) UTF-8 pairs in
// the encoding's order. Details are rare, so they are the only part that allocates.
internal readonly struct AuditFields
{
    public readonly string TenantId, PrincipalId, PrincipalTenantId, Operation, Resource, Reason;
    public readonly ushort Opcode;
    public readonly AuditOutcome Outcome;
    public readonly long ConnectionId;
    public readonly (byte[] Key, byte[] Value)[] Details;

    private AuditFields(string? tenant, string? principal, string? principalTenant, ushort opcode, string? operation, string? resource,
        AuditOutcome outcome, string? reason, long connection, IEnumerable<KeyValuePair<string, string>>? details)
    {
        TenantId = tenant ?? "";
        PrincipalId = principal ?? "";
        PrincipalTenantId = principalTenant ?? "";
        Opcode = opcode;
        Operation = operation ?? "";
        Resource = resource ?? "";
        Outcome = outcome;
        Reason = reason ?? "";
        ConnectionId = connection;
        Details = SortedDetails(details);
    }

    public static AuditFields From(AuditEvent e) =>
        new(e.TenantId, e.PrincipalId, e.PrincipalTenantId, e.Opcode, e.Operation, e.Resource, e.Outcome, e.Reason, e.ConnectionId, e.Details);

    public static AuditFields From(AuditRecord r) =>
        new(r.TenantId, r.PrincipalId, r.PrincipalTenantId, r.Opcode, r.Operation, r.Resource, r.Outcome, r.Reason, r.ConnectionId, r.Details);

    // The details as a record carries them: a copy (the caller's dictionary may change later) in encoding order.
    public IReadOnlyDictionary<string, string> DetailsMap(IReadOnlyDictionary<string, string>? source)
    {
        if (Details.Length == 0 || source is null)
            return ReadOnlyDictionary<string, string>.Empty;
        var map = new Dictionary<string, string>(Details.Length, StringComparer.Ordinal);
        foreach (var (key, value) in source.OrderBy(p => AuditRecordFormat.Utf8Bytes(p.Key ?? ""), Utf8KeyComparer.Instance))
            map[key ?? ""] = value ?? "";
        return map;
    }

    private static (byte[], byte[])[] SortedDetails(IEnumerable<KeyValuePair<string, string>>? details)
    {
        if (details is null)
            return [];
        var pairs = details.Select(p => (AuditRecordFormat.Utf8Bytes(p.Key ?? ""), AuditRecordFormat.Utf8Bytes(p.Value ?? ""))).ToArray();
        // Bytewise UTF-8 order equals Unicode code point order, so any language sorts the same way.
        Array.Sort(pairs, (a, b) => Utf8KeyComparer.Instance.Compare(a.Item1, b.Item1));
        return pairs;
    }
}

internal sealed class Utf8KeyComparer : IComparer<byte[]>
{
    public static readonly Utf8KeyComparer Instance = new();

    public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
}
