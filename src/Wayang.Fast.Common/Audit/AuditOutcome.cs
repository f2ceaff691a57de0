namespace Wayang.Fast.Common.Audit;

// Persisted in every audit record (protocol-spec/audit.md): explicit values, append-only, never renumbered.
// AuditOutcomeStabilityTests freezes the name -> value pairs.
public enum AuditOutcome : byte
{
    Unspecified = 0,
    // A recorded change or read that succeeded.
    Allowed = 1,
    // Refused by RBAC (PERMISSION_DENIED) before the operation ran.
    Denied = 2,
    // Permitted, but the operation failed with an error (Reason names its code).
    Failed = 3,
}
