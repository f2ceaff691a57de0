using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;
using MessagePack;
using Wayang.Fast.Common.Runs;

namespace Wayang.Fast.Execution.Runs;

// The persisted run record: one MessagePack array per run, fields by position (protocol-spec/execution.md, "Run
// records"). It replaced camelCase JSON because a run is rewritten at every step (submit, dispatch, result): the
// JSON of a finished one-node run was ~1 KB, ~2.5x this encoding, and that volume set how often the store
// checkpoints and how much its compaction copies (bench/RESULTS.md, issue 3). Input, outputs and signal payloads stay
// JSON (their raw UTF-8 bytes, as bin). Records written as JSON before this format still load (they start with '{').
//
// Append-only: a new field goes at the end; readers take the fields they know and skip the rest.
public static class RunRecordCodec
{
    public const int FormatVersion = 1;
    private const int RunFields = 21;
    private const int NodeFields = 11;
    private const int AttemptFields = 7;
    private const int EventFields = 6;
    private const int SignalFields = 3;

    public static void Write(IBufferWriter<byte> output, RunState run)
    {
        var w = new MessagePackWriter(output);
        w.WriteArrayHeader(RunFields);
        w.Write(FormatVersion);
        w.Write(run.RunId);
        w.Write(run.TenantId);
        w.Write(run.WorkflowId);
        w.Write(run.WorkflowVersion);
        w.Write((byte)run.Status);
        WriteJson(ref w, run.Input);
        WriteJson(ref w, run.Output);
        w.Write(run.IdempotencyKey);
        w.Write((byte)run.Priority);
        w.Write(run.DeadlineAtMs);
        w.Write((byte)run.OnDeadlineMiss);
        w.Write(run.CreatedAtMs);
        w.Write(run.UpdatedAtMs);
        WriteNullable(ref w, run.FinishedAtMs);
        w.Write(run.ErrorCode);
        w.Write(run.ErrorMessage);

        w.WriteArrayHeader(run.Nodes.Count);
        foreach (var node in run.Nodes.Values)
        {
            w.WriteArrayHeader(NodeFields);
            w.Write(node.NodeId);
            w.Write((byte)node.Status);
            w.Write(node.Attempt);
            WriteJson(ref w, node.Output);
            WriteNullable(ref w, node.DueAtMs);
            WriteNullable(ref w, node.AttemptStartedAtMs);
            w.Write(node.ExecutorId);
            w.Write(node.ErrorCode);
            w.Write(node.ErrorMessage);
            w.WriteArrayHeader(node.Attempts.Count);
            foreach (var a in node.Attempts)
            {
                w.WriteArrayHeader(AttemptFields);
                w.Write(a.Attempt);
                w.Write(a.ExecutorId);
                w.Write(a.StartedAtMs);
                WriteNullable(ref w, a.EndedAtMs);
                w.Write(a.Succeeded);
                w.Write(a.ErrorCode);
                w.Write(a.ErrorMessage);
            }
            if (node.FiredTransitions is null)
            {
                w.WriteNil();
            }
            else
            {
                w.WriteArrayHeader(node.FiredTransitions.Count);
                foreach (int t in node.FiredTransitions)
                    w.Write(t);
            }
        }

        w.WriteArrayHeader(run.PendingSignals.Count);
        foreach (var s in run.PendingSignals)
        {
            w.WriteArrayHeader(SignalFields);
            w.Write(s.Name);
            WriteJson(ref w, s.Payload);
            w.Write(s.AtMs);
        }

        w.WriteArrayHeader(run.Events.Count);
        foreach (var e in run.Events)
        {
            w.WriteArrayHeader(EventFields);
            w.Write(e.Seq);
            w.Write(e.AtMs);
            w.Write((byte)e.Type);
            w.Write(e.NodeId);
            w.Write(e.Attempt);
            w.Write(e.Detail);
        }
        w.Write(run.NextEventSeq);
        w.Flush();
    }

    public static byte[] Serialize(RunState run)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        Write(buffer, run);
        return buffer.WrittenSpan.ToArray();
    }

    // Either encoding: MessagePack (this format) or the JSON records written before it. Throws FormatException (or
    // JsonException for a damaged JSON record) when the bytes are not a run record.
    public static RunState Deserialize(ReadOnlyMemory<byte> bytes)
    {
        if (!bytes.IsEmpty && bytes.Span[0] == (byte)'{')
            return JsonSerializer.Deserialize(bytes.Span, Engine.ExecutionJsonContext.Default.RunState) ?? throw new FormatException("The run record is JSON null.");
        try
        {
            return Read(bytes);
        }
        catch (MessagePackSerializationException ex)
        {
            throw new FormatException("The run record is not valid MessagePack: " + ex.Message, ex);
        }
        catch (EndOfStreamException ex)
        {
            throw new FormatException("The run record is truncated.", ex);
        }
    }

    // When the record is a finished run (COMPLETED, FAILED or CANCELLED) in this format: when it finished. Reads the
    // leading fields only. False for an unfinished run, a JSON record of an earlier build, or bytes that do not parse.
    public static bool TryReadFinishedAt(ReadOnlyMemory<byte> bytes, out long finishedAtMs)
    {
        finishedAtMs = 0;
        if (bytes.IsEmpty || bytes.Span[0] == (byte)'{')
            return false;
        try
        {
            var r = new MessagePackReader(bytes);
            if (r.ReadArrayHeader() < RunFields || r.ReadInt32() != FormatVersion)
                return false;
            r.Skip(); // run id
            r.Skip(); // tenant id
            r.Skip(); // workflow id
            r.Skip(); // workflow version
            var status = (RunStatus)r.ReadByte();
            if (status is not (RunStatus.Completed or RunStatus.Failed or RunStatus.Cancelled))
                return false;
            for (int i = 0; i < 8; i++)
                r.Skip(); // input, output, idempotency key, priority, deadline, deadline policy, created, updated
            if (ReadNullableInt64(ref r) is not long finished)
                return false;
            finishedAtMs = finished;
            return true;
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException)
        {
            return false;
        }
    }

    private static RunState Read(ReadOnlyMemory<byte> bytes)
    {
        var r = new MessagePackReader(bytes);
        int fields = r.ReadArrayHeader();
        if (fields < RunFields)
            throw new FormatException($"A run record has {RunFields} fields; this one has {fields}.");
        int format = r.ReadInt32();
        if (format != FormatVersion)
            throw new FormatException($"Run record format {format} is not known to this build (it reads format {FormatVersion}).");
        var run = new RunState
        {
            RunId = ReadString(ref r),
            TenantId = ReadString(ref r),
            WorkflowId = ReadString(ref r),
            WorkflowVersion = r.ReadInt32(),
            Status = (RunStatus)r.ReadByte(),
            Input = ReadJson(ref r),
            Output = ReadJson(ref r),
            IdempotencyKey = r.ReadString(),
            Priority = (SlaPriority)r.ReadByte(),
            DeadlineAtMs = r.ReadInt64(),
            OnDeadlineMiss = (DeadlineMissPolicy)r.ReadByte(),
            CreatedAtMs = r.ReadInt64(),
            UpdatedAtMs = r.ReadInt64(),
            FinishedAtMs = ReadNullableInt64(ref r),
            ErrorCode = r.ReadString(),
            ErrorMessage = r.ReadString(),
        };

        int nodes = r.ReadArrayHeader();
        run.Nodes = new Dictionary<string, NodeState>(nodes, StringComparer.Ordinal);
        for (int i = 0; i < nodes; i++)
        {
            int nodeFields = r.ReadArrayHeader();
            var node = new NodeState
            {
                NodeId = ReadString(ref r),
                Status = (NodeStatus)r.ReadByte(),
                Attempt = r.ReadInt32(),
                Output = ReadJson(ref r),
                DueAtMs = ReadNullableInt64(ref r),
                AttemptStartedAtMs = ReadNullableInt64(ref r),
                ExecutorId = r.ReadString(),
                ErrorCode = r.ReadString(),
                ErrorMessage = r.ReadString(),
            };
            int attempts = r.ReadArrayHeader();
            node.Attempts = new List<AttemptRecord>(attempts);
            for (int a = 0; a < attempts; a++)
            {
                int attemptFields = r.ReadArrayHeader();
                node.Attempts.Add(new AttemptRecord
                {
                    Attempt = r.ReadInt32(),
                    ExecutorId = r.ReadString(),
                    StartedAtMs = r.ReadInt64(),
                    EndedAtMs = ReadNullableInt64(ref r),
                    Succeeded = r.ReadBoolean(),
                    ErrorCode = r.ReadString(),
                    ErrorMessage = r.ReadString(),
                });
                Skip(ref r, attemptFields - AttemptFields);
            }
            if (!r.TryReadNil())
            {
                int fired = r.ReadArrayHeader();
                node.FiredTransitions = new List<int>(fired);
                for (int f = 0; f < fired; f++)
                    node.FiredTransitions.Add(r.ReadInt32());
            }
            Skip(ref r, nodeFields - NodeFields);
            run.Nodes[node.NodeId] = node;
        }

        int signals = r.ReadArrayHeader();
        run.PendingSignals = new List<SignalRecord>(signals);
        for (int i = 0; i < signals; i++)
        {
            int signalFields = r.ReadArrayHeader();
            run.PendingSignals.Add(new SignalRecord { Name = ReadString(ref r), Payload = ReadJson(ref r), AtMs = r.ReadInt64() });
            Skip(ref r, signalFields - SignalFields);
        }

        int events = r.ReadArrayHeader();
        run.Events = new List<RunEvent>(events);
        for (int i = 0; i < events; i++)
        {
            int eventFields = r.ReadArrayHeader();
            run.Events.Add(new RunEvent
            {
                Seq = r.ReadInt64(),
                AtMs = r.ReadInt64(),
                Type = (RunEventType)r.ReadByte(),
                NodeId = r.ReadString(),
                Attempt = r.ReadInt32(),
                Detail = r.ReadString(),
            });
            Skip(ref r, eventFields - EventFields);
        }
        run.NextEventSeq = r.ReadInt64();
        Skip(ref r, fields - RunFields);
        return run;
    }

    // Raw UTF-8 JSON as bin, nil for none: no re-encoding on either side.
    private static void WriteJson(ref MessagePackWriter w, JsonElement? value)
    {
        if (value is not { } element)
            w.WriteNil();
        else
            w.Write(JsonMarshal.GetRawUtf8Value(element));
    }

    private static JsonElement? ReadJson(ref MessagePackReader r)
    {
        if (r.TryReadNil())
            return null;
        var bytes = r.ReadBytes() ?? throw new FormatException("A JSON field of a run record is not bin.");
        using var document = JsonDocument.Parse(bytes);
        return document.RootElement.Clone();
    }

    private static void WriteNullable(ref MessagePackWriter w, long? value)
    {
        if (value is { } v)
            w.Write(v);
        else
            w.WriteNil();
    }

    private static long? ReadNullableInt64(ref MessagePackReader r) => r.TryReadNil() ? null : r.ReadInt64();

    private static string ReadString(ref MessagePackReader r) => r.ReadString() ?? "";

    // Fields a newer build appended.
    private static void Skip(ref MessagePackReader r, int count)
    {
        for (int i = 0; i < count; i++)
            r.Skip();
    }
}
