using System.Runtime.InteropServices;
using System.Text.Json;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Sessions;

// One executor's task stream (an ExecutorRegister request that stays open): the engine's IExecutorChannel on this
// connection. The engine's dispatcher decides how many tasks to push (min(credit, slots - in flight)) and calls
// TryPush under its own lock, so TryPush only writes the STREAM frame into the connection's pipe and asks for a flush
// on the thread pool; it never blocks and never flushes itself (a flush can wait on a peer that is not reading).
// CREDIT frames on this stream go to the engine (GrantCredit), not to the AsyncRequest's semaphore.
internal sealed class ExecutorStream : IExecutorChannel
{
    private readonly SessionWriter _writer;
    // The stream's outstanding credit as the peer sees it (granted and not yet consumed), for CREDIT_OVERFLOW only:
    // the dispatcher keeps the credit that decides pushes.
    private long _credit;
    // Set when the stream is ending (or the server is shutting down): no more pushes; the engine keeps the task.
    private volatile bool _detached;

    public ExecutorStream(AsyncRequest request, SessionWriter writer, string executorId, int slots)
    {
        Request = request;
        _writer = writer;
        ExecutorId = executorId;
        _credit = Math.Max(0, slots);
    }

    public AsyncRequest Request { get; }
    public string ExecutorId { get; }
    // Set right after the engine registered the executor (pushes may already have happened inside that call).
    public ExecutorHandle? Handle { get; set; }

    public bool TryPush(TaskAssignment task)
    {
        if (_detached)
            return false;
        if (!_writer.WriteMessage(FrameType.Stream, Opcode.ExecutorRegister, Request.StreamId, ToDto(task)))
            return false;
        Interlocked.Decrement(ref _credit);
        _writer.ScheduleFlush();
        return true;
    }

    // False: the outstanding credit would pass the protocol's maximum (the caller ends the stream with CREDIT_OVERFLOW).
    public bool AddCredit(uint credits)
    {
        if (credits == 0)
            return true;
        if (Interlocked.Add(ref _credit, credits) > Limits.MaxStreamCredit)
            return false;
        return true;
    }

    public void Detach() => _detached = true;

    private static TaskAssignmentDto ToDto(TaskAssignment t) => new()
    {
        Token = t.Token,
        TaskId = t.TaskId,
        TenantId = t.TenantId,
        RunId = t.RunId,
        WorkflowId = t.WorkflowId,
        NodeId = t.NodeId,
        Attempt = t.Attempt,
        ExecutorType = t.ExecutorType,
        InputJson = JsonBytes(t.Input),
        ConfigJson = JsonBytes(t.Config),
        UpstreamJson = JsonBytes(t.Upstream),
        LeaseExpiresAtMs = t.LeaseExpiresAtMs,
        DeadlineAtMs = t.DeadlineAtMs,
    };

    // The element's JSON text as stored (no re-serialization); absent or JSON null is the empty bin.
    public static byte[] JsonBytes(JsonElement? element) =>
        element is { ValueKind: not (JsonValueKind.Undefined or JsonValueKind.Null) } e ? JsonMarshal.GetRawUtf8Value(e).ToArray() : [];
}
