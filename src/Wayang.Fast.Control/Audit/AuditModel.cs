using System.Collections.ObjectModel;
using Wayang.Fast.Common.Audit;

namespace Wayang.Fast.Control.Audit;

// What a caller records. Strings default to "" (null is stored as ""); Reason is an error code name, never a secret.
// Opcode is the wire opcode as a number: the control plane does not reference the protocol project.
public sealed record AuditEvent
{
    // The tenant the operation acted in.
    public string TenantId { get; init; } = "";
    // API key id or executor id; "" for the system itself.
    public string PrincipalId { get; init; } = "";
    public string PrincipalTenantId { get; init; } = "";
    public ushort Opcode { get; init; }
    public string Operation { get; init; } = "";
    // e.g. "workflow:wf1@3"; "" when the operation has no single resource.
    public string Resource { get; init; } = "";
    public AuditOutcome Outcome { get; init; }
    public string Reason { get; init; } = "";
    public long ConnectionId { get; init; }
    public IReadOnlyDictionary<string, string>? Details { get; init; }
}

// One record of the chain as stored. Hash = SHA-256(PreviousHash || canonical encoding); see protocol-spec/audit.md.
public sealed record AuditRecord
{
    public long Sequence { get; init; }
    public long TimeMs { get; init; }
    public string TenantId { get; init; } = "";
    public string PrincipalId { get; init; } = "";
    public string PrincipalTenantId { get; init; } = "";
    public ushort Opcode { get; init; }
    public string Operation { get; init; } = "";
    public string Resource { get; init; } = "";
    public AuditOutcome Outcome { get; init; }
    public string Reason { get; init; } = "";
    public long ConnectionId { get; init; }
    // Never null; in key order (UTF-8 bytewise), the order the encoding uses.
    public IReadOnlyDictionary<string, string> Details { get; init; } = ReadOnlyDictionary<string, string>.Empty;
    public ReadOnlyMemory<byte> PreviousHash { get; init; }
    public ReadOnlyMemory<byte> Hash { get; init; }

    public string HashHex => Convert.ToHexStringLower(Hash.Span);
    public string PreviousHashHex => Convert.ToHexStringLower(PreviousHash.Span);
}

// Null filters match everything. FromMs is inclusive, ToMs exclusive (record TimeMs in [FromMs, ToMs)).
// Paging: records with Sequence > AfterSequence, ascending; Limit <= 0 means DefaultLimit, above MaxLimit is clamped.
public sealed record AuditQuery
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1000;

    public string? TenantId { get; init; }
    public string? PrincipalId { get; init; }
    public ushort? Opcode { get; init; }
    public AuditOutcome? Outcome { get; init; }
    public long? FromMs { get; init; }
    public long? ToMs { get; init; }
    public long AfterSequence { get; init; }
    public int Limit { get; init; } = DefaultLimit;
}

// NextAfterSequence: pass it as the next query's AfterSequence; null when no further record matches.
public sealed record AuditPage(IReadOnlyList<AuditRecord> Records, long? NextAfterSequence);

// The chain's head, for anchoring outside the server. Sequence 0 with 32 zero bytes is the empty log (genesis).
public sealed record AuditHead(long Sequence, ReadOnlyMemory<byte> Hash)
{
    public string HashHex => Convert.ToHexStringLower(Hash.Span);
}

// Ok when every stored record reads, its sequence follows the previous one, its PreviousHash equals the previous
// record's recomputed hash and its own hash recomputes. FirstBrokenSequence is the first chain position that fails
// (for an unreadable entry: the sequence it should have had). HeadSequence/HeadHash are the last readable record's,
// recomputed from its bytes (genesis when the log is empty).
public sealed record AuditVerifyResult(bool Ok, long RecordsChecked, long? FirstBrokenSequence, string? Reason, long HeadSequence, ReadOnlyMemory<byte> HeadHash)
{
    public string HeadHashHex => Convert.ToHexStringLower(HeadHash.Span);
}
