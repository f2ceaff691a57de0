using MessagePack;

namespace Wayang.Fast.Protocol.Messages;

// Definitions (workflows and agents) with their lifecycle, and the audit log. protocol-spec/messages.md documents
// every field; Kind: 1 workflow, 2 agent. State: the DefinitionState values (1 DRAFT, 2 VALIDATED, 3 PUBLISHED,
// 4 ARCHIVED). Outcome: the AuditOutcome values (1 ALLOWED, 2 DENIED, 3 FAILED).

// DefinitionValidate / DefinitionCreate. Exactly one of DefinitionJson (UTF-8 JSON) and DefinitionMsgPack (one
// MessagePack map with the same field names) is set; both pass the same schema and semantic checks.
[MessagePackObject]
public sealed class DefinitionRequest
{
    [Key(0)] public byte Kind { get; set; }
    [Key(1)] public byte[] DefinitionJson { get; set; } = [];
    [Key(2)] public byte[] DefinitionMsgPack { get; set; } = [];
}

[MessagePackObject]
public sealed class ViolationDto
{
    // JSON pointer into the definition ("" is the root).
    [Key(0)] public string Pointer { get; set; } = "";
    [Key(1)] public string Reason { get; set; } = "";
}

// DefinitionValidate answers with the violations as data (an invalid definition is not an error of the call).
[MessagePackObject]
public sealed class DefinitionValidateResponse
{
    [Key(0)] public bool Valid { get; set; }
    [Key(1)] public ViolationDto[] Violations { get; set; } = [];
}

[MessagePackObject]
public sealed class DefinitionVersionDto
{
    [Key(0)] public byte Kind { get; set; }
    [Key(1)] public string Id { get; set; } = "";
    [Key(2)] public int Version { get; set; }
    [Key(3)] public byte State { get; set; }
    // The stored definition, as JSON.
    [Key(4)] public byte[] DefinitionJson { get; set; } = [];
    [Key(5)] public long CreatedAtMs { get; set; }
    // The last lifecycle change.
    [Key(6)] public long UpdatedAtMs { get; set; }
}

[MessagePackObject]
public sealed class DefinitionTransitionRequest
{
    [Key(0)] public byte Kind { get; set; }
    [Key(1)] public string Id { get; set; } = "";
    [Key(2)] public int Version { get; set; }
    // VALIDATED, PUBLISHED or ARCHIVED.
    [Key(3)] public byte Target { get; set; }
}

[MessagePackObject]
public sealed class DefinitionListRequest
{
    // 0: both kinds.
    [Key(0)] public byte Kind { get; set; }
}

[MessagePackObject]
public sealed class DefinitionSummaryDto
{
    [Key(0)] public byte Kind { get; set; }
    [Key(1)] public string Id { get; set; } = "";
    [Key(2)] public int LatestVersion { get; set; }
    // 0: no version is published.
    [Key(3)] public int PublishedVersion { get; set; }
    [Key(4)] public int[] Versions { get; set; } = [];
    // One state per entry of Versions.
    [Key(5)] public byte[] States { get; set; } = [];
    [Key(6)] public long UpdatedAtMs { get; set; }
}

[MessagePackObject]
public sealed class DefinitionListResponse
{
    [Key(0)] public DefinitionSummaryDto[] Definitions { get; set; } = [];
}

[MessagePackObject]
public sealed class DefinitionGetRequest
{
    [Key(0)] public byte Kind { get; set; }
    [Key(1)] public string Id { get; set; } = "";
    // 0: the newest version, whatever its state.
    [Key(2)] public int Version { get; set; }
}

[MessagePackObject]
public sealed class AuditQueryRequest
{
    // "": the caller's tenant; "*": every tenant (cross-tenant principals only); another id: cross-tenant only.
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string PrincipalId { get; set; } = "";
    // 0: any opcode.
    [Key(2)] public ushort Opcode { get; set; }
    // 0: any outcome.
    [Key(3)] public byte Outcome { get; set; }
    // Unix ms, inclusive; 0: no lower bound.
    [Key(4)] public long FromMs { get; set; }
    // Unix ms, exclusive; 0: no upper bound.
    [Key(5)] public long ToMs { get; set; }
    // Paging cursor: records with a higher sequence (0: from the start).
    [Key(6)] public long AfterSequence { get; set; }
    // 0: 100; at most 1000.
    [Key(7)] public int Limit { get; set; }
}

[MessagePackObject]
public sealed class AuditRecordDto
{
    [Key(0)] public long Sequence { get; set; }
    [Key(1)] public long TimeMs { get; set; }
    [Key(2)] public string TenantId { get; set; } = "";
    [Key(3)] public string PrincipalId { get; set; } = "";
    [Key(4)] public string PrincipalTenantId { get; set; } = "";
    [Key(5)] public ushort Opcode { get; set; }
    [Key(6)] public string Operation { get; set; } = "";
    [Key(7)] public string Resource { get; set; } = "";
    [Key(8)] public byte Outcome { get; set; }
    [Key(9)] public string Reason { get; set; } = "";
    [Key(10)] public long ConnectionId { get; set; }
    [Key(11)] public Dictionary<string, string> Details { get; set; } = [];
    [Key(12)] public byte[] PreviousHash { get; set; } = [];
    [Key(13)] public byte[] Hash { get; set; } = [];
}

[MessagePackObject]
public sealed class AuditQueryResponse
{
    [Key(0)] public AuditRecordDto[] Records { get; set; } = [];
    // The AfterSequence of the next page; 0: this is the last page.
    [Key(1)] public long NextAfterSequence { get; set; }
}

[MessagePackObject]
public sealed class AuditVerifyResponse
{
    [Key(0)] public bool Ok { get; set; }
    [Key(1)] public long RecordsChecked { get; set; }
    // 0: no broken link.
    [Key(2)] public long FirstBrokenSequence { get; set; }
    [Key(3)] public string Reason { get; set; } = "";
    [Key(4)] public long HeadSequence { get; set; }
    [Key(5)] public byte[] HeadHash { get; set; } = [];
}

[MessagePackObject]
public sealed class AuditHeadDto
{
    [Key(0)] public long Sequence { get; set; }
    [Key(1)] public byte[] Hash { get; set; } = [];
}
