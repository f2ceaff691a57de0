namespace Wayang.Fast.Storage;

// Persisted in every journal entry's type byte: explicit values, append-only, never renumbered or reused.
// JournalRecordTypeStabilityTests freezes the name -> value pairs.
public enum JournalRecordType : byte
{
    // Never written: a zero type byte in a committed region means the entry is garbage.
    None = 0,
    // Body: u32 little-endian key length, key bytes, value bytes (the rest of the entry).
    Put = 1,
    // Body: key bytes (the whole body).
    Delete = 2,
    // Body: i64 little-endian journal address the checkpoint covers, then the 16-byte checkpoint token.
    // Informational: replay skips it; the covered address that recovery trusts lives in the checkpoint itself.
    Checkpoint = 3,
    // Body: one audit record (Wayang.Fast.Control.Audit; protocol-spec/audit.md). Written only to the audit log's
    // own journal, never to the state store's, whose replay rejects it.
    Audit = 4,
}
