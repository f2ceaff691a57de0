using System.Runtime.CompilerServices;
using Wayang.Fast.Common.Audit;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Client;

// The control plane (Wayang): roles and role bindings, workflow and agent definitions with their lifecycle, and the
// audit log. Every call acts in the tenant of the client's API key unless it names another (cross-tenant only).
public sealed partial class WayangClient
{
    // ---- roles and bindings ----

    // tenantId null or empty: the caller's own tenant. Built-in roles are listed too (BuiltIn = true).
    public async Task<IReadOnlyList<RoleInfo>> ListRolesAsync(string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<RoleListRequest, RoleListResponse>(
            Opcode.RoleList, new RoleListRequest { TenantId = tenantId ?? "" }, timeout, ct).ConfigureAwait(false);
        return [.. (reply.Roles ?? []).Where(r => r is not null).Select(ToRole)];
    }

    // Creates or replaces a tenant role; permissions by name (protocol-spec/permissions.md), `session` is implied.
    public async Task<RoleInfo> PutRoleAsync(string name, IEnumerable<string> permissions, string? tenantId = null, TimeSpan? timeout = null,
        CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(permissions);
        var reply = await CallAsync<RolePutRequest, RoleDto>(Opcode.RolePut,
            new RolePutRequest { TenantId = tenantId ?? "", Name = name, Permissions = [.. permissions] }, timeout, ct).ConfigureAwait(false);
        return ToRole(reply);
    }

    // Returns the deleted role. ROLE_IN_USE while an unrevoked key is bound to it; ROLE_BUILT_IN for built-in roles.
    public async Task<RoleInfo> DeleteRoleAsync(string name, string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        var reply = await CallAsync<RoleDeleteRequest, RoleDto>(
            Opcode.RoleDelete, new RoleDeleteRequest { TenantId = tenantId ?? "", Name = name }, timeout, ct).ConfigureAwait(false);
        return ToRole(reply);
    }

    public async Task<IReadOnlyList<RoleBindingInfo>> ListBindingsAsync(string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<BindingListRequest, BindingListResponse>(
            Opcode.BindingList, new BindingListRequest { TenantId = tenantId ?? "" }, timeout, ct).ConfigureAwait(false);
        return [.. (reply.Bindings ?? []).Where(b => b is not null).Select(b => new RoleBindingInfo(b.KeyId ?? "", b.KeyName ?? "", b.Roles ?? [], b.Revoked))];
    }

    // Binds one more role to a key; the key's live connections get it at their next request. Returns the key as it is now.
    public Task<ApiKeyInfo> GrantRoleAsync(string keyId, string role, TimeSpan? timeout = null, CancellationToken ct = default) =>
        BindingCoreAsync(Opcode.BindingGrant, keyId, role, timeout, ct);

    public Task<ApiKeyInfo> RevokeRoleAsync(string keyId, string role, TimeSpan? timeout = null, CancellationToken ct = default) =>
        BindingCoreAsync(Opcode.BindingRevoke, keyId, role, timeout, ct);

    private async Task<ApiKeyInfo> BindingCoreAsync(Opcode opcode, string keyId, string role, TimeSpan? timeout, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(keyId);
        ArgumentException.ThrowIfNullOrWhiteSpace(role);
        var reply = await CallAsync<BindingRequest, ApiKeyInfoDto>(opcode, new BindingRequest { KeyId = keyId, Role = role }, timeout, ct).ConfigureAwait(false);
        return ToKey(reply);
    }

    private static RoleInfo ToRole(RoleDto dto) =>
        new(dto.TenantId ?? "", dto.Name ?? "", dto.BuiltIn, dto.Permissions ?? [], DateTimeOffset.FromUnixTimeMilliseconds(dto.UpdatedAtMs));

    // ---- definitions ----

    // Checks a definition (schema and semantics) without storing anything; the violations come back as data.
    public Task<DefinitionValidation> ValidateDefinitionAsync(DefinitionKind kind, string definitionJson, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(definitionJson);
        return ValidateCoreAsync(JsonRequest(kind, System.Text.Encoding.UTF8.GetBytes(definitionJson)), timeout, ct);
    }

    public Task<DefinitionValidation> ValidateDefinitionAsync(DefinitionKind kind, ReadOnlyMemory<byte> utf8DefinitionJson, TimeSpan? timeout = null,
        CancellationToken ct = default) =>
        ValidateCoreAsync(JsonRequest(kind, NonEmpty(utf8DefinitionJson, nameof(utf8DefinitionJson))), timeout, ct);

    // The definition as one MessagePack map with the same field names as the JSON form.
    public Task<DefinitionValidation> ValidateDefinitionMsgPackAsync(DefinitionKind kind, ReadOnlyMemory<byte> messagePackDefinition, TimeSpan? timeout = null,
        CancellationToken ct = default) =>
        ValidateCoreAsync(MsgPackRequest(kind, NonEmpty(messagePackDefinition, nameof(messagePackDefinition))), timeout, ct);

    private async Task<DefinitionValidation> ValidateCoreAsync(DefinitionRequest request, TimeSpan? timeout, CancellationToken ct)
    {
        var reply = await CallAsync<DefinitionRequest, DefinitionValidateResponse>(Opcode.DefinitionValidate, request, timeout, ct).ConfigureAwait(false);
        var violations = (reply.Violations ?? []).Where(v => v is not null).Select(v => new DefinitionViolation(v.Pointer ?? "", v.Reason ?? "")).ToArray();
        return new DefinitionValidation(reply.Valid, violations);
    }

    // Stores the definition as the next version of its id, in DRAFT. An invalid one is WORKFLOW_INVALID / AGENT_INVALID
    // with every violation in Details["violations"] (DefinitionViolation.FromError reads them).
    public Task<DefinitionVersion> CreateDefinitionAsync(DefinitionKind kind, string definitionJson, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(definitionJson);
        return CreateCoreAsync(JsonRequest(kind, System.Text.Encoding.UTF8.GetBytes(definitionJson)), timeout, ct);
    }

    public Task<DefinitionVersion> CreateDefinitionAsync(DefinitionKind kind, ReadOnlyMemory<byte> utf8DefinitionJson, TimeSpan? timeout = null,
        CancellationToken ct = default) =>
        CreateCoreAsync(JsonRequest(kind, NonEmpty(utf8DefinitionJson, nameof(utf8DefinitionJson))), timeout, ct);

    public Task<DefinitionVersion> CreateDefinitionMsgPackAsync(DefinitionKind kind, ReadOnlyMemory<byte> messagePackDefinition, TimeSpan? timeout = null,
        CancellationToken ct = default) =>
        CreateCoreAsync(MsgPackRequest(kind, NonEmpty(messagePackDefinition, nameof(messagePackDefinition))), timeout, ct);

    private async Task<DefinitionVersion> CreateCoreAsync(DefinitionRequest request, TimeSpan? timeout, CancellationToken ct)
    {
        var reply = await CallAsync<DefinitionRequest, DefinitionVersionDto>(Opcode.DefinitionCreate, request, timeout, ct).ConfigureAwait(false);
        return ToDefinition(reply);
    }

    // target: Validated, Published or Archived (DefinitionLifecycle lists the allowed moves). A move the version's state
    // does not allow is DEFINITION_STATE_CONFLICT; archiving a version that runs still use is DEFINITION_IN_USE.
    public async Task<DefinitionVersion> TransitionDefinitionAsync(DefinitionKind kind, string id, int version, DefinitionState target,
        TimeSpan? timeout = null, CancellationToken ct = default)
    {
        CheckKind(kind);
        ArgumentException.ThrowIfNullOrWhiteSpace(id);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(version);
        if (target is not (DefinitionState.Validated or DefinitionState.Published or DefinitionState.Archived))
            throw new ArgumentOutOfRangeException(nameof(target), target, "The target is VALIDATED, PUBLISHED or ARCHIVED.");
        var reply = await CallAsync<DefinitionTransitionRequest, DefinitionVersionDto>(Opcode.DefinitionTransition,
            new DefinitionTransitionRequest { Kind = (byte)kind, Id = id, Version = version, Target = (byte)target }, timeout, ct).ConfigureAwait(false);
        return ToDefinition(reply);
    }

    public Task<DefinitionVersion> PublishDefinitionAsync(DefinitionKind kind, string id, int version, TimeSpan? timeout = null, CancellationToken ct = default) =>
        TransitionDefinitionAsync(kind, id, version, DefinitionState.Published, timeout, ct);

    public Task<DefinitionVersion> ArchiveDefinitionAsync(DefinitionKind kind, string id, int version, TimeSpan? timeout = null, CancellationToken ct = default) =>
        TransitionDefinitionAsync(kind, id, version, DefinitionState.Archived, timeout, ct);

    // kind null: workflows and agents.
    public async Task<IReadOnlyList<DefinitionSummary>> ListDefinitionsAsync(DefinitionKind? kind = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        if (kind is { } k)
            CheckKind(k);
        var reply = await CallAsync<DefinitionListRequest, DefinitionListResponse>(
            Opcode.DefinitionList, new DefinitionListRequest { Kind = (byte)(kind ?? 0) }, timeout, ct).ConfigureAwait(false);
        return [.. (reply.Definitions ?? []).Where(d => d is not null).Select(ToSummary)];
    }

    // version 0: the newest version, whatever its state.
    public async Task<DefinitionVersion> GetDefinitionAsync(DefinitionKind kind, string id, int version = 0, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        CheckKind(kind);
        ArgumentException.ThrowIfNullOrWhiteSpace(id);
        ArgumentOutOfRangeException.ThrowIfNegative(version);
        var reply = await CallAsync<DefinitionGetRequest, DefinitionVersionDto>(
            Opcode.DefinitionGet, new DefinitionGetRequest { Kind = (byte)kind, Id = id, Version = version }, timeout, ct).ConfigureAwait(false);
        return ToDefinition(reply);
    }

    private static DefinitionRequest JsonRequest(DefinitionKind kind, byte[] json)
    {
        CheckKind(kind);
        return new DefinitionRequest { Kind = (byte)kind, DefinitionJson = json };
    }

    private static DefinitionRequest MsgPackRequest(DefinitionKind kind, byte[] msgpack)
    {
        CheckKind(kind);
        return new DefinitionRequest { Kind = (byte)kind, DefinitionMsgPack = msgpack };
    }

    private static byte[] NonEmpty(ReadOnlyMemory<byte> bytes, string name) =>
        bytes.IsEmpty ? throw new ArgumentException("The definition is empty.", name) : bytes.ToArray();

    private static void CheckKind(DefinitionKind kind)
    {
        if (kind is not (DefinitionKind.Workflow or DefinitionKind.Agent))
            throw new ArgumentOutOfRangeException(nameof(kind), kind, "The kind is Workflow or Agent.");
    }

    private static DefinitionVersion ToDefinition(DefinitionVersionDto dto) =>
        new((DefinitionKind)dto.Kind, dto.Id ?? "", dto.Version, (DefinitionState)dto.State, System.Text.Encoding.UTF8.GetString(dto.DefinitionJson ?? []),
            DateTimeOffset.FromUnixTimeMilliseconds(dto.CreatedAtMs), DateTimeOffset.FromUnixTimeMilliseconds(dto.UpdatedAtMs));

    private static DefinitionSummary ToSummary(DefinitionSummaryDto dto)
    {
        var versions = dto.Versions ?? [];
        var states = dto.States ?? [];
        // One state per version on the wire; a short States array (an older server) leaves the rest unspecified.
        var list = new DefinitionVersionState[versions.Length];
        for (int i = 0; i < versions.Length; i++)
            list[i] = new DefinitionVersionState(versions[i], i < states.Length ? (DefinitionState)states[i] : DefinitionState.Unspecified);
        return new DefinitionSummary((DefinitionKind)dto.Kind, dto.Id ?? "", dto.LatestVersion, dto.PublishedVersion > 0 ? dto.PublishedVersion : null,
            list, DateTimeOffset.FromUnixTimeMilliseconds(dto.UpdatedAtMs));
    }

    // ---- audit log ----

    // One page, oldest first; pass NextAfterSequence as the next filter's AfterSequence (or use ReadAuditAsync).
    public async Task<AuditPage> QueryAuditAsync(AuditFilter? filter = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<AuditQueryRequest, AuditQueryResponse>(
            Opcode.AuditQuery, ToRequest(filter ?? new AuditFilter()), timeout, ct).ConfigureAwait(false);
        return new AuditPage([.. (reply.Records ?? []).Where(r => r is not null).Select(ToEntry)], reply.NextAfterSequence);
    }

    // Every matching record from filter.AfterSequence up to the head as it was when the read began, page by page
    // (filter.Limit is the page size); a page is asked for only when the caller has consumed the previous one.
    // The bound matters: every query is itself recorded, so a reader that chased the live head would never finish.
    public async IAsyncEnumerable<AuditEntry> ReadAuditAsync(AuditFilter? filter = null, TimeSpan? timeout = null, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var current = filter ?? new AuditFilter();
        long head = (await GetAuditHeadAsync(timeout, ct).ConfigureAwait(false)).Sequence;
        while (current.AfterSequence < head)
        {
            var page = await QueryAuditAsync(current, timeout, ct).ConfigureAwait(false);
            foreach (var record in page.Records)
            {
                if (record.Sequence > head)
                    yield break;
                yield return record;
            }
            if (page.IsLastPage)
                yield break;
            // A cursor that does not move forward would loop forever on the same page.
            if (page.NextAfterSequence <= current.AfterSequence)
                throw new WayangException(ErrorCode.BadBody,
                    $"The server's audit cursor did not advance ({page.NextAfterSequence} after {current.AfterSequence}).");
            current = current with { AfterSequence = page.NextAfterSequence };
        }
    }

    // Walks the whole hash chain on the server; Ok false names the first broken link.
    public async Task<AuditVerification> VerifyAuditAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<AuditVerifyResponse>(Opcode.AuditVerify, timeout, ct).ConfigureAwait(false);
        return new AuditVerification(reply.Ok, reply.RecordsChecked, reply.FirstBrokenSequence > 0 ? reply.FirstBrokenSequence : null,
            string.IsNullOrEmpty(reply.Reason) ? null : reply.Reason, reply.HeadSequence, Hex(reply.HeadHash));
    }

    public async Task<AuditHeadInfo> GetAuditHeadAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var reply = await CallAsync<AuditHeadDto>(Opcode.AuditHead, timeout, ct).ConfigureAwait(false);
        return new AuditHeadInfo(reply.Sequence, Hex(reply.Hash));
    }

    private static AuditQueryRequest ToRequest(AuditFilter f)
    {
        if (f.Limit is < 0 or > 1000)
            throw new ArgumentOutOfRangeException(nameof(f), f.Limit, "Limit is 0 (the server's default) to 1000.");
        if (f.AfterSequence < 0)
            throw new ArgumentOutOfRangeException(nameof(f), f.AfterSequence, "AfterSequence must not be negative.");
        return new AuditQueryRequest
        {
            TenantId = f.TenantId ?? "",
            PrincipalId = f.PrincipalId ?? "",
            Opcode = (ushort)(f.Opcode ?? Opcode.None),
            Outcome = (byte)(f.Outcome ?? AuditOutcome.Unspecified),
            FromMs = f.From?.ToUnixTimeMilliseconds() ?? 0,
            ToMs = f.To?.ToUnixTimeMilliseconds() ?? 0,
            AfterSequence = f.AfterSequence,
            Limit = f.Limit,
        };
    }

    private static AuditEntry ToEntry(AuditRecordDto r) =>
        new(r.Sequence, DateTimeOffset.FromUnixTimeMilliseconds(r.TimeMs), r.TenantId ?? "", r.PrincipalId ?? "", r.PrincipalTenantId ?? "",
            (Opcode)r.Opcode, r.Operation ?? "", r.Resource ?? "", (AuditOutcome)r.Outcome, string.IsNullOrEmpty(r.Reason) ? null : r.Reason,
            r.ConnectionId, r.Details ?? [], Hex(r.PreviousHash), Hex(r.Hash));

    private static string Hex(byte[]? bytes) => bytes is null or { Length: 0 } ? "" : Convert.ToHexStringLower(bytes);
}
