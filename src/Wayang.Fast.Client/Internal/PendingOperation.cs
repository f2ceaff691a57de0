using System.Buffers;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Client.Internal;

// A request in flight on one connection, keyed by stream id in WayangConnection's pending table.
// Whoever removes an operation from that table owns its completion: the read loop (reply), the timeout,
// the cancellation, or the connection failing. That single rule keeps pooled operations safe to reuse.
internal abstract class PendingOperation
{
    // Called by the read loop only; body is valid only during the call.
    public abstract void OnResponse(in ReadOnlySequence<byte> body);

    // Called by the read loop while the operation stays in the table (streams only).
    public virtual void OnStreamItem(in ReadOnlySequence<byte> body) =>
        OnError(new WayangError(ErrorCode.BadBody, "Unexpected STREAM frame for a unary call."));

    public virtual void OnEnd() =>
        OnError(new WayangError(ErrorCode.BadBody, "Unexpected END frame for a unary call."));

    public abstract void OnError(WayangError error);

    public virtual bool IsStream => false;
}

// An empty MessagePack body (Ping's request and reply): nothing is serialized or parsed.
internal readonly struct NoBody;
