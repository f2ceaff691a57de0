using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Server.Sessions;

// A request that outlives the frame that started it (streams, durable ops). Only these carry a
// CancellationTokenSource; synchronous requests (Ping) never allocate one.
// Neither the CTS nor the semaphore is disposed: they own no timer or wait handle, and not disposing means
// a late CANCEL or CREDIT racing the request's end can never hit ObjectDisposedException.
internal sealed class AsyncRequest
{
    private readonly CancellationTokenSource _cts = new();
    private int _cancelCode;

    public AsyncRequest(uint streamId, Opcode opcode, long startTimestamp, uint initialCredit)
    {
        StreamId = streamId;
        Opcode = opcode;
        StartTimestamp = startTimestamp;
        if (initialCredit > 0)
            Credit = new SemaphoreSlim((int)initialCredit, int.MaxValue);
    }

    public uint StreamId { get; }
    public Opcode Opcode { get; }
    public long StartTimestamp { get; }
    public CancellationToken Token => _cts.Token;

    // Streams only: STREAM frames the server may still send. Waiting on it is the credit wait.
    public SemaphoreSlim? Credit { get; }

    // Executor task streams only (ExecutorRegister): CREDIT frames go to it instead of Credit.
    public ExecutorStream? Executor { get; set; }

    // Why the request was cancelled: CANCEL (Cancelled), CREDIT_OVERFLOW, SHUTTING_DOWN, or ConnectionClosed
    // (the peer is gone and nothing more will be written).
    public ErrorCode CancelCode => (ErrorCode)Volatile.Read(ref _cancelCode);

    public void CancelWith(ErrorCode code)
    {
        if (Interlocked.CompareExchange(ref _cancelCode, (int)code, 0) != 0)
            return;
        _cts.Cancel();
    }

    // Adds credit; false when the outstanding credit would pass the protocol's maximum.
    public bool AddCredit(uint credits)
    {
        if (Credit is null || credits == 0)
            return true;
        if (Credit.CurrentCount + (long)credits > Limits.MaxStreamCredit)
            return false;
        Credit.Release((int)credits);
        return true;
    }
}
