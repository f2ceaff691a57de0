using Wayang.Fast.Common.Audit;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Audit;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Server.Sessions;

// The one way a request's outcome goes on record, shared by protocol sessions and the HTTP faces, so a denial reads the
// same whichever surface refused it. connectionId: the session's id; 0 for a request that came over HTTP.
internal static class AuditRecording
{
    public static async ValueTask RecordAsync(AuditLog? audit, Principal principal, Opcode opcode, string tenantId, AuditOutcome outcome, ErrorCode reason,
        string resource, long connectionId, string? remote, IReadOnlyDictionary<string, string>? details = null)
    {
        if (audit is null)
            return;
        await audit.AppendAsync(new AuditEvent
        {
            TenantId = tenantId,
            PrincipalId = principal.KeyId,
            PrincipalTenantId = principal.TenantId,
            Opcode = (ushort)opcode,
            Operation = opcode.ToString(),
            Resource = resource,
            Outcome = outcome,
            Reason = reason == ErrorCode.None ? "" : ErrorRegistry.NameOf(reason),
            ConnectionId = connectionId,
            Details = Merge(remote, details),
        }).ConfigureAwait(false);
    }

    private static Dictionary<string, string>? Merge(string? remote, IReadOnlyDictionary<string, string>? details)
    {
        if (remote is null && (details is null || details.Count == 0))
            return null;
        var all = new Dictionary<string, string>(StringComparer.Ordinal);
        if (details is not null)
        {
            foreach (var (k, v) in details)
                all[k] = v;
        }
        if (remote is not null)
            all["remote"] = remote;
        return all;
    }
}
