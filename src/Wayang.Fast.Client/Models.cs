using System.Text.Json;
using Wayang.Fast.Common.Audit;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Client;

// What WELCOME told us about the session.
public sealed record WayangSession(
    string SessionId,
    string ServerVersion,
    int ProtocolVersion,
    string TenantId,
    string KeyId,
    IReadOnlyList<string> Roles,
    int MaxFrameBytes,
    int MaxInFlight,
    TimeSpan IdleTimeout,
    uint InitialStreamCredit);

public sealed record TenantInfo(string TenantId, string DisplayName, DateTimeOffset CreatedAt);

public sealed record ApiKeyInfo(
    string KeyId,
    string TenantId,
    string Name,
    IReadOnlyList<string> Roles,
    DateTimeOffset CreatedAt,
    bool Revoked,
    DateTimeOffset? RevokedAt);

// Secret is the full key, returned once by the server (it stores only a hash).
public sealed record CreatedApiKey(string Secret, ApiKeyInfo Key);

// ---- control plane: roles and bindings (protocol-spec/permissions.md) ----

public sealed record RoleInfo(string TenantId, string Name, bool BuiltIn, IReadOnlyList<string> Permissions, DateTimeOffset UpdatedAt);

// The roles bound to one API key of the tenant.
public sealed record RoleBindingInfo(string KeyId, string KeyName, IReadOnlyList<string> Roles, bool Revoked);

// ---- control plane: definitions (workflows and agents) and their lifecycle ----

// Pointer: a JSON pointer into the definition ("" is the root).
public sealed record DefinitionViolation(string Pointer, string Reason)
{
    // The violations a DefinitionCreate refusal (WORKFLOW_INVALID, AGENT_INVALID) carries in Details["violations"];
    // empty when the error has none or they cannot be read.
    public static IReadOnlyList<DefinitionViolation> FromError(WayangException error)
    {
        ArgumentNullException.ThrowIfNull(error);
        if (!error.Error.Details.TryGetValue("violations", out var json) || string.IsNullOrEmpty(json))
            return [];
        try
        {
            using var document = JsonDocument.Parse(json);
            if (document.RootElement.ValueKind != JsonValueKind.Array)
                return [];
            var list = new List<DefinitionViolation>();
            foreach (var item in document.RootElement.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Object)
                    continue;
                list.Add(new DefinitionViolation(
                    item.TryGetProperty("pointer", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString()! : "",
                    item.TryGetProperty("reason", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : ""));
            }
            return list;
        }
        catch (JsonException)
        {
            return [];
        }
    }
}

// An invalid definition is an answer, not an error: Valid is false and every violation is listed.
public sealed record DefinitionValidation(bool Valid, IReadOnlyList<DefinitionViolation> Violations);

// One stored version. DefinitionJson: the definition as the server stores it (JSON text).
public sealed record DefinitionVersion(
    DefinitionKind Kind,
    string Id,
    int Version,
    DefinitionState State,
    string DefinitionJson,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt);

public sealed record DefinitionVersionState(int Version, DefinitionState State);

// PublishedVersion: null while no version is published.
public sealed record DefinitionSummary(
    DefinitionKind Kind,
    string Id,
    int LatestVersion,
    int? PublishedVersion,
    IReadOnlyList<DefinitionVersionState> Versions,
    DateTimeOffset UpdatedAt);

// ---- control plane: the audit log (protocol-spec/audit.md) ----

// Every field is optional. TenantId null: the caller's tenant; "*": every tenant (cross-tenant principals only).
// From is inclusive, To exclusive. AfterSequence: the paging cursor (0: from the start). Limit 0: the server's page
// size (100), at most 1,000.
public sealed record AuditFilter
{
    public string? TenantId { get; init; }
    public string? PrincipalId { get; init; }
    public Opcode? Opcode { get; init; }
    public AuditOutcome? Outcome { get; init; }
    public DateTimeOffset? From { get; init; }
    public DateTimeOffset? To { get; init; }
    public long AfterSequence { get; init; }
    public int Limit { get; init; }
}

// Hashes are lowercase hex (SHA-256 of the chained record, protocol-spec/audit.md); Reason is null when empty.
public sealed record AuditEntry(
    long Sequence,
    DateTimeOffset Time,
    string TenantId,
    string PrincipalId,
    string PrincipalTenantId,
    Opcode Opcode,
    string Operation,
    string Resource,
    AuditOutcome Outcome,
    string? Reason,
    long ConnectionId,
    IReadOnlyDictionary<string, string> Details,
    string PreviousHash,
    string Hash);

// NextAfterSequence: the cursor for the next page (AuditFilter.AfterSequence); 0 when this is the last page.
public sealed record AuditPage(IReadOnlyList<AuditEntry> Records, long NextAfterSequence)
{
    public bool IsLastPage => NextAfterSequence == 0;
}

// FirstBrokenSequence and Reason are null when the chain is intact.
public sealed record AuditVerification(bool Ok, long RecordsChecked, long? FirstBrokenSequence, string? Reason, long HeadSequence, string HeadHash);

// The newest record: anchor it somewhere else to detect a later truncation or rewrite.
public sealed record AuditHeadInfo(long Sequence, string Hash);
