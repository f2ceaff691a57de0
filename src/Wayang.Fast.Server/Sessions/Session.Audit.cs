using Wayang.Fast.Common.Audit;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Audit;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Sessions;

// Audited requests (a denial or a change is on record, durably, before its reply goes out) and the audit opcodes.
internal sealed partial class Session
{
    // An audited change: the handler runs, then its outcome (ALLOWED, or FAILED/DENIED with the error's code) is
    // recorded, then the reply is written. tenantId: the tenant the change acts in.
    // resourceOnSuccess: what the success record names when the handler learns more than the request said (the version
    // a "latest" read resolved to).
    private void StartAudited<TRequest, TResponse>(uint streamId, Opcode opcode, long start, TRequest body, string resource, string tenantId,
        Func<Session, TRequest, CancellationToken, ValueTask<TResponse>> handler, Func<TResponse, string>? resourceOnSuccess = null)
    {
        StartUnary(streamId, opcode, start, (Body: body, Resource: resource, Tenant: tenantId, Opcode: opcode, Handler: handler, OnSuccess: resourceOnSuccess), static async (s, req, ct) =>
        {
            TResponse response;
            try
            {
                response = await req.Handler(s, req.Body, ct).ConfigureAwait(false);
            }
            catch (WayangException ex)
            {
                // The error's details go on record too: every reason a plugin was rejected, every schema violation.
                await s.RecordAsync(req.Opcode, req.Tenant, ex.Error.Code == ErrorCode.PermissionDenied ? AuditOutcome.Denied : AuditOutcome.Failed, ex.Error.Code, req.Resource,
                    ex.Error.Details).ConfigureAwait(false);
                throw;
            }
            await s.RecordAsync(req.Opcode, req.Tenant, AuditOutcome.Allowed, ErrorCode.None, req.OnSuccess?.Invoke(response) ?? req.Resource).ConfigureAwait(false);
            return response;
        });
    }

    // A refused request (permission or scope): recorded as DENIED when audit is set, then answered with the error.
    // A failure to record is logged and the request is still refused: the denial never turns into an allow.
    private async Task DenyAsync(uint streamId, Opcode opcode, long start, WayangError error, string resource, bool audit)
    {
        var request = Register(streamId, opcode, start, stream: false);
        try
        {
            if (audit)
                await RecordAsync(opcode, _principal!.TenantId, AuditOutcome.Denied, error.Code, resource).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.RequestFailed(_server.Logger, opcode.ToString(), streamId, ConnectionId, ex);
        }
        Unregister(request);
        if (request.CancelCode != ErrorCode.ConnectionClosed)
            _writer.WriteError(streamId, opcode, error, start);
        await FinishAsync().ConfigureAwait(false);
    }

    private ValueTask RecordAsync(Opcode opcode, string tenantId, AuditOutcome outcome, ErrorCode reason, string resource,
        IReadOnlyDictionary<string, string>? details = null) =>
        AuditRecording.RecordAsync(_server.Audit, _principal!, opcode, tenantId, outcome, reason, resource, Id, Remote, details);

    private void DispatchAudit(in Frame frame, uint streamId, Opcode opcode, long start)
    {
        var audit = _server.Audit;
        if (audit is null)
        {
            _writer.WriteError(streamId, opcode, new WayangError(ErrorCode.Unavailable, "This server keeps no audit log."), start);
            return;
        }
        var principal = _principal!;
        switch (opcode)
        {
            case Opcode.AuditQuery:
            {
                if (!TryDecode(frame.Body, out AuditQueryRequest? req, allowEmpty: true))
                {
                    _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                    return;
                }
                string? tenantId = string.IsNullOrEmpty(req.TenantId) ? principal.TenantId : req.TenantId;
                if (tenantId == "*")
                    tenantId = null;
                if (tenantId is null ? !principal.IsPlatformAdmin : !principal.CanActIn(tenantId))
                {
                    _ = DenyAsync(streamId, opcode, start, new WayangError(ErrorCode.PermissionDenied, $"The principal may not read the audit log of tenant '{req.TenantId}'."), $"audit:{req.TenantId}", audit: true);
                    return;
                }
                if (req.Limit < 0 || req.FromMs < 0 || req.ToMs < 0 || req.AfterSequence < 0 || req.Outcome > (byte)AuditOutcome.Failed)
                {
                    _writer.WriteError(streamId, opcode, new WayangError(ErrorCode.InvalidArgument, "AuditQuery needs Limit, FromMs, ToMs and AfterSequence >= 0 and Outcome 0..3."), start);
                    return;
                }
                var query = new AuditQuery
                {
                    TenantId = tenantId,
                    PrincipalId = string.IsNullOrEmpty(req.PrincipalId) ? null : req.PrincipalId,
                    Opcode = req.Opcode == 0 ? null : req.Opcode,
                    Outcome = req.Outcome == 0 ? null : (AuditOutcome)req.Outcome,
                    FromMs = req.FromMs == 0 ? null : req.FromMs,
                    ToMs = req.ToMs == 0 ? null : req.ToMs,
                    AfterSequence = req.AfterSequence,
                    Limit = req.Limit,
                };
                // Reading the audit log is itself recorded (before the answer, like every audited operation).
                StartAudited(streamId, opcode, start, query, $"audit:{tenantId ?? "*"}", principal.TenantId, static (s, q, _) =>
                {
                    var page = s._server.Audit!.Query(q);
                    var records = new AuditRecordDto[page.Records.Count];
                    for (int i = 0; i < records.Length; i++)
                        records[i] = ToDto(page.Records[i]);
                    return ValueTask.FromResult(new AuditQueryResponse { Records = records, NextAfterSequence = page.NextAfterSequence ?? 0 });
                });
                return;
            }

            case Opcode.AuditVerify:
                StartAudited(streamId, opcode, start, 0, "audit:chain", principal.TenantId, static async (s, _, ct) =>
                {
                    var result = await s._server.Audit!.VerifyAsync(ct).ConfigureAwait(false);
                    return new AuditVerifyResponse
                    {
                        Ok = result.Ok,
                        RecordsChecked = result.RecordsChecked,
                        FirstBrokenSequence = result.FirstBrokenSequence ?? 0,
                        Reason = result.Reason ?? "",
                        HeadSequence = result.HeadSequence,
                        HeadHash = result.HeadHash.ToArray(),
                    };
                });
                return;

            case Opcode.AuditHead:
                StartAudited(streamId, opcode, start, 0, "audit:head", principal.TenantId, static (s, _, _) =>
                {
                    var head = s._server.Audit!.Head;
                    return ValueTask.FromResult(new AuditHeadDto { Sequence = head.Sequence, Hash = head.Hash.ToArray() });
                });
                return;

            default:
                _writer.WriteError(streamId, opcode, ErrorCode.UnknownOpcode, start);
                return;
        }
    }

    private static AuditRecordDto ToDto(AuditRecord r) => new()
    {
        Sequence = r.Sequence,
        TimeMs = r.TimeMs,
        TenantId = r.TenantId,
        PrincipalId = r.PrincipalId,
        PrincipalTenantId = r.PrincipalTenantId,
        Opcode = r.Opcode,
        Operation = r.Operation,
        Resource = r.Resource,
        Outcome = (byte)r.Outcome,
        Reason = r.Reason,
        ConnectionId = r.ConnectionId,
        Details = new Dictionary<string, string>(r.Details, StringComparer.Ordinal),
        PreviousHash = r.PreviousHash.ToArray(),
        Hash = r.Hash.ToArray(),
    };
}
