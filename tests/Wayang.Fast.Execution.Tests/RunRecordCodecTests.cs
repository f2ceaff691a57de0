using System.Buffers;
using System.Text.Json;
using MessagePack;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Execution.Runs;

namespace Wayang.Fast.Execution.Tests;

// The persisted run record (RunRecordCodec): every field survives, the JSON records of earlier builds still load, the
// bytes are frozen, and a newer build's extra fields are skipped.
public sealed class RunRecordCodecTests
{
    private static JsonElement Json(string text)
    {
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.Clone();
    }

    // Every field set, nulls where a field can be null, nested lists non-empty.
    private static RunState Full()
    {
        var run = new RunState
        {
            RunId = "run_full", TenantId = "acme", WorkflowId = "orders", WorkflowVersion = 3, Status = RunStatus.Failed,
            Input = Json("""{"order":{"id":42,"lines":[1,2]},"note":"ünïcode"}"""), Output = Json("[true,null]"), IdempotencyKey = "idem-1",
            Priority = SlaPriority.High, DeadlineAtMs = 1_700_000_100_000, OnDeadlineMiss = DeadlineMissPolicy.Fail,
            CreatedAtMs = 1_700_000_000_000, UpdatedAtMs = 1_700_000_050_000, FinishedAtMs = 1_700_000_050_000,
            ErrorCode = "TASK_FAILED", ErrorMessage = "charge failed", NextEventSeq = 4,
        };
        run.Nodes["charge"] = new NodeState
        {
            NodeId = "charge", Status = NodeStatus.Failed, Attempt = 2, Output = Json("{\"x\":1}"), DueAtMs = 1_700_000_040_000,
            AttemptStartedAtMs = 1_700_000_030_000, ExecutorId = "ex-1", ErrorCode = "DECLINED", ErrorMessage = "card declined",
            Attempts =
            [
                new AttemptRecord { Attempt = 1, ExecutorId = "ex-1", StartedAtMs = 1_700_000_010_000, EndedAtMs = 1_700_000_011_000, Succeeded = false, ErrorCode = "DECLINED", ErrorMessage = "no" },
                new AttemptRecord { Attempt = 2, ExecutorId = null, StartedAtMs = 1_700_000_030_000 },
            ],
            FiredTransitions = [0, 2],
        };
        run.Nodes["wait"] = new NodeState { NodeId = "wait" };
        run.PendingSignals.Add(new SignalRecord { Name = "approve", Payload = Json("{\"by\":\"ann\"}"), AtMs = 1_700_000_020_000 });
        run.PendingSignals.Add(new SignalRecord { Name = "nudge", AtMs = 1_700_000_021_000 });
        run.AddEvent(RunEventType.RunCreated, 1_700_000_000_000);
        run.AddEvent(RunEventType.NodeDispatched, 1_700_000_010_000, "charge", 1, "ex-1");
        run.AddEvent(RunEventType.RunFailed, 1_700_000_050_000, detail: "charge failed");
        return run;
    }

    // The JSON form is a convenient deep comparison: equal JSON, equal runs.
    private static string AsJson(RunState run) => JsonSerializer.Serialize(run, ExecutionJsonContext.Default.RunState);

    [Fact]
    public void Every_field_round_trips()
    {
        var run = Full();
        var back = RunRecordCodec.Deserialize(RunRecordCodec.Serialize(run));
        Assert.Equal(AsJson(run), AsJson(back));
        Assert.Equal(StringComparer.Ordinal, back.Nodes.Comparer);
        Assert.Equal(AsJson(new RunState()), AsJson(RunRecordCodec.Deserialize(RunRecordCodec.Serialize(new RunState()))));
    }

    // Retention reads only the leading fields: finished runs give their finish time, everything else gives nothing.
    [Fact]
    public void The_finish_time_is_read_only_from_finished_runs_in_this_format()
    {
        var failed = Full();
        Assert.True(RunRecordCodec.TryReadFinishedAt(RunRecordCodec.Serialize(failed), out long finishedAt));
        Assert.Equal(1_700_000_050_000, finishedAt);

        var running = Full();
        running.Status = RunStatus.Running;
        running.FinishedAtMs = null;
        Assert.False(RunRecordCodec.TryReadFinishedAt(RunRecordCodec.Serialize(running), out _));
        var suspended = Full();
        suspended.Status = RunStatus.Suspended;
        Assert.False(RunRecordCodec.TryReadFinishedAt(RunRecordCodec.Serialize(suspended), out _));
        var completedWithoutTime = Full();
        completedWithoutTime.Status = RunStatus.Completed;
        completedWithoutTime.FinishedAtMs = null;
        Assert.False(RunRecordCodec.TryReadFinishedAt(RunRecordCodec.Serialize(completedWithoutTime), out _));

        Assert.False(RunRecordCodec.TryReadFinishedAt(JsonSerializer.SerializeToUtf8Bytes(failed, ExecutionJsonContext.Default.RunState), out _));
        var bytes = RunRecordCodec.Serialize(failed);
        Assert.False(RunRecordCodec.TryReadFinishedAt(bytes.AsMemory(0, 40), out _));
        Assert.False(RunRecordCodec.TryReadFinishedAt(new byte[] { 0xc1, 0x00 }, out _));
        Assert.False(RunRecordCodec.TryReadFinishedAt(ReadOnlyMemory<byte>.Empty, out _));
    }

    [Fact]
    public void Json_records_written_before_this_format_still_load()
    {
        var run = Full();
        var legacy = JsonSerializer.SerializeToUtf8Bytes(run, ExecutionJsonContext.Default.RunState);
        Assert.Equal(AsJson(run), AsJson(RunRecordCodec.Deserialize(legacy)));
    }

    [Fact]
    public void A_finished_one_node_run_is_well_under_half_its_json_size()
    {
        var run = new RunState
        {
            RunId = "run_bmfoc7wc6nbglaefkjrl", TenantId = "system", WorkflowId = "loadgen-one", WorkflowVersion = 1, Status = RunStatus.Completed,
            Input = Json("{\"t\":13833536370459}"), CreatedAtMs = 1796290270256, UpdatedAtMs = 1796290270326, FinishedAtMs = 1796290270326,
        };
        run.Nodes["work"] = new NodeState
        {
            NodeId = "work", Status = NodeStatus.Completed, Attempt = 1, AttemptStartedAtMs = 1796290270270, ExecutorId = "loadgen-11261-1", FiredTransitions = [],
            Attempts = [new AttemptRecord { Attempt = 1, ExecutorId = "loadgen-11261-1", StartedAtMs = 1796290270270, EndedAtMs = 1796290270326, Succeeded = true }],
        };
        foreach (var type in new[] { RunEventType.RunCreated, RunEventType.RunStarted, RunEventType.NodeQueued, RunEventType.NodeDispatched, RunEventType.NodeCompleted, RunEventType.RunCompleted })
            run.AddEvent(type, 1796290270300, type is RunEventType.RunCreated or RunEventType.RunStarted or RunEventType.RunCompleted ? null : "work", 1);

        int binary = RunRecordCodec.Serialize(run).Length;
        int json = JsonSerializer.SerializeToUtf8Bytes(run, ExecutionJsonContext.Default.RunState).Length;
        Assert.True(binary * 2 < json, $"binary {binary} bytes, JSON {json} bytes");
    }

    // Frozen bytes: a changed encoding must be a new format version, not a silent change of this one.
    [Fact]
    public void The_encoding_of_a_small_run_is_frozen()
    {
        var run = new RunState
        {
            RunId = "r1", TenantId = "t", WorkflowId = "w", WorkflowVersion = 1, Status = RunStatus.Running, Input = Json("{}"),
            CreatedAtMs = 1, UpdatedAtMs = 2, NextEventSeq = 2,
        };
        run.Nodes["n"] = new NodeState { NodeId = "n", Status = NodeStatus.Executing, Attempt = 1, Attempts = [new AttemptRecord { Attempt = 1, StartedAtMs = 3 }] };
        run.Events.Add(new RunEvent { Seq = 1, AtMs = 1, Type = RunEventType.RunCreated });
        Assert.Equal(
            "DC0015" + "01" + "A27231" + "A174" + "A177" + "01" + "03" + "C4027B7D" + "C0" + "C0" + "00" + "00" + "00" + "01" + "02" + "C0" + "C0" + "C0"
            + "91" + "9B" + "A16E" + "03" + "01" + "C0" + "C0" + "C0" + "C0" + "C0" + "C0" + "91" + "97" + "01" + "C0" + "03" + "C0" + "C2" + "C0" + "C0" + "C0"
            + "90"
            + "91" + "96" + "01" + "01" + "01" + "C0" + "00" + "C0"
            + "02",
            Convert.ToHexString(RunRecordCodec.Serialize(run)));
    }

    [Fact]
    public void Fields_a_newer_build_appends_are_skipped()
    {
        var bytes = RunRecordCodec.Serialize(Full());
        // The same record with one more top-level field: array header 21 -> 22, a string at the end.
        var buffer = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        w.WriteArrayHeader(22);
        w.WriteRaw(bytes.AsSpan(3));
        w.Write("a field from the future");
        w.Flush();
        Assert.Equal(AsJson(Full()), AsJson(RunRecordCodec.Deserialize(buffer.WrittenMemory)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("C0")]
    [InlineData("DC001502")]
    [InlineData("DC0015")]
    [InlineData("93010203")]
    public void Bytes_that_are_not_a_run_record_are_a_format_error(string hex)
    {
        Assert.Throws<FormatException>(() => RunRecordCodec.Deserialize(Convert.FromHexString(hex)));
    }
}
