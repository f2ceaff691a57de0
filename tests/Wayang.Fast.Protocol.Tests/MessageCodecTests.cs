using MessagePack;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Protocol.Tests;

// The append-only rules of messages.md, checked against the codec the reference implementation uses.
public class MessageCodecTests
{
    [Fact]
    public void Missing_trailing_fields_take_their_defaults()
    {
        // HelloRequest with only ProtocolVersion and ClientName: [1, "c"].
        byte[] body = [0x92, 0x01, 0xa1, (byte)'c'];
        var hello = MessagePackSerializer.Deserialize<HelloRequest>(body, WireOptions.Untrusted);
        Assert.Equal(1, hello.ProtocolVersion);
        Assert.Equal("c", hello.ClientName);
        Assert.Equal("", hello.ApiKey);
        Assert.Equal(0u, hello.InitialStreamCredit);
    }

    [Fact]
    public void Unknown_trailing_fields_are_skipped()
    {
        // CreditBody [16, {"future": [1, 2]}, "x"]: a newer peer's extra fields.
        var writer = new System.Buffers.ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(writer);
        w.WriteArrayHeader(3);
        w.Write(16);
        w.WriteMapHeader(1);
        w.Write("future");
        w.WriteArrayHeader(2);
        w.Write(1);
        w.Write(2);
        w.Write("x");
        w.Flush();
        var credit = MessagePackSerializer.Deserialize<CreditBody>(writer.WrittenMemory, WireOptions.Untrusted);
        Assert.Equal(16u, credit.Credits);
    }

    [Fact]
    public void Integers_in_wider_encodings_are_accepted()
    {
        // TickRequest [3, 100] with 3 as int64 and 100 as uint16.
        byte[] body = [0x92, 0xd3, 0, 0, 0, 0, 0, 0, 0, 3, 0xcd, 0x00, 0x64];
        var tick = MessagePackSerializer.Deserialize<TickRequest>(body, WireOptions.Untrusted);
        Assert.Equal(3, tick.Count);
        Assert.Equal(100, tick.IntervalMs);
    }

    [Fact]
    public void Empty_body_is_not_a_message_with_fields()
    {
        Assert.Throws<MessagePackSerializationException>(() =>
            MessagePackSerializer.Deserialize<KeyCreateRequest>(ReadOnlyMemory<byte>.Empty, WireOptions.Untrusted));
    }

    [Fact]
    public void Every_message_round_trips_with_default_values()
    {
        RoundTrip(new HelloRequest());
        RoundTrip(new WelcomeResponse());
        RoundTrip(new ErrorBody());
        RoundTrip(new CreditBody());
        RoundTrip(new GoAwayBody());
        RoundTrip(new TickRequest());
        RoundTrip(new TickItem());
        RoundTrip(new TenantCreateRequest());
        RoundTrip(new TenantInfoDto());
        RoundTrip(new TenantListResponse());
        RoundTrip(new KeyCreateRequest());
        RoundTrip(new ApiKeyInfoDto());
        RoundTrip(new KeyCreateResponse());
        RoundTrip(new KeyListRequest());
        RoundTrip(new KeyListResponse());
        RoundTrip(new KeyRevokeRequest());

        RoundTrip(new WorkflowRegisterRequest());
        RoundTrip(new WorkflowRegisterResponse());
        RoundTrip(new WorkflowGetRequest());
        RoundTrip(new WorkflowGetResponse());
        RoundTrip(new WorkflowInfoDto());
        RoundTrip(new WorkflowListResponse());
        RoundTrip(new RunSubmitRequest());
        RoundTrip(new RunSubmitResponse());
        RoundTrip(new RunGetRequest());
        RoundTrip(new AttemptDto());
        RoundTrip(new NodeStateDto());
        RoundTrip(new RunEventDto());
        RoundTrip(new RunDto());
        RoundTrip(new RunListRequest());
        RoundTrip(new RunSummaryDto());
        RoundTrip(new RunListResponse());
        RoundTrip(new RunControlRequest());
        RoundTrip(new RunSignalRequest());
        RoundTrip(new ExecutorRegisterRequest());
        RoundTrip(new TaskAssignmentDto());
        RoundTrip(new ExecutorSetSlotsRequest());
        RoundTrip(new ExecutorSetSlotsResponse());
        RoundTrip(new ExecutorHeartbeatRequest());
        RoundTrip(new ExecutorHeartbeatResponse());
        RoundTrip(new TaskResultRequest());
        RoundTrip(new TaskResultResponse());
        RoundTrip(new QueueStatsRequest());
        RoundTrip(new QueueStatDto());
        RoundTrip(new ExecutorStatDto());
        RoundTrip(new QueueStatsResponse());
        RoundTrip(new TenantScheduleDto());
        RoundTrip(new TenantScheduleListRequest());
        RoundTrip(new TenantScheduleListResponse());
        RoundTrip(new DlqFilterDto());
        RoundTrip(new DlqListRequest());
        RoundTrip(new DeadLetterDto());
        RoundTrip(new DlqListResponse());
        RoundTrip(new DlqShowRequest());
        RoundTrip(new DlqActionRequest());
        RoundTrip(new ReplayOutcomeDto());
        RoundTrip(new DlqReplayResponse());
        RoundTrip(new DlqDiscardResponse());

        static void RoundTrip<T>(T value)
        {
            var bytes = MessagePackSerializer.Serialize(value, WireOptions.Trusted);
            Assert.Equal(0x90, bytes[0] & 0xf0); // a fixarray: bodies are arrays, never maps
            var back = MessagePackSerializer.Deserialize<T>(bytes, WireOptions.Untrusted);
            Assert.Equal(bytes, MessagePackSerializer.Serialize(back, WireOptions.Trusted));
        }
    }
}

// The execution messages with every field set: values survive the round trip field by field, nested arrays included.
public class ExecutionMessageCodecTests
{
    private static T RoundTrip<T>(T value)
    {
        var bytes = MessagePackSerializer.Serialize(value, WireOptions.Trusted);
        Assert.Equal(0x90, bytes[0] & 0xf0);
        var back = MessagePackSerializer.Deserialize<T>(bytes, WireOptions.Untrusted);
        Assert.Equal(bytes, MessagePackSerializer.Serialize(back, WireOptions.Trusted));
        return back;
    }

    [Fact]
    public void RunSubmitRequest_round_trips()
    {
        var back = RoundTrip(new RunSubmitRequest { WorkflowId = "order", Version = 3, InputJson = "{\"a\":1}"u8.ToArray(), IdempotencyKey = "k-1" });
        Assert.Equal("order", back.WorkflowId);
        Assert.Equal(3, back.Version);
        Assert.Equal("{\"a\":1}"u8.ToArray(), back.InputJson);
        Assert.Equal("k-1", back.IdempotencyKey);
    }

    [Fact]
    public void A_RunSubmitRequest_from_before_the_SLA_fields_decodes_with_them_unset()
    {
        // ["order", 0, bin{}, "k"]: what issue-3 clients send (4 fields).
        var writer = new System.Buffers.ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(writer);
        w.WriteArrayHeader(4);
        w.Write("order");
        w.Write(0);
        w.Write("{}"u8);
        w.Write("k");
        w.Flush();
        var old = MessagePackSerializer.Deserialize<RunSubmitRequest>(writer.WrittenMemory, WireOptions.Untrusted);
        Assert.Equal(("order", "k"), (old.WorkflowId, old.IdempotencyKey));
        Assert.Equal((0, 0L, 0L, 0), (old.Priority, old.DeadlineAtMs, old.LatencyBudgetMs, old.OnDeadlineMiss));
    }

    [Fact]
    public void RunDto_round_trips_with_nodes_attempts_and_events()
    {
        var back = RoundTrip(new RunDto
        {
            RunId = "run_1", TenantId = "acme", WorkflowId = "order", WorkflowVersion = 2, Status = 5,
            InputJson = "{}"u8.ToArray(), OutputJson = "{\"x\":true}"u8.ToArray(), ErrorCode = "", ErrorMessage = "",
            CreatedAtMs = 1, UpdatedAtMs = 2, FinishedAtMs = 3, IdempotencyKey = "k",
            Nodes =
            [
                new NodeStateDto
                {
                    NodeId = "a", Status = 4, Attempt = 2, OutputJson = "1"u8.ToArray(), ErrorCode = "E", ErrorMessage = "m",
                    Attempts = [new AttemptDto { Attempt = 1, ExecutorId = "ex", StartedAtMs = 10, EndedAtMs = 11, Succeeded = false, ErrorCode = "E", ErrorMessage = "m" }],
                },
            ],
            Events = [new RunEventDto { Seq = 1, AtMs = 5, Type = 1, NodeId = "", Attempt = 0, Detail = "d" }],
        });
        Assert.Equal("run_1", back.RunId);
        Assert.Equal(5, back.Status);
        var node = Assert.Single(back.Nodes);
        Assert.Equal("a", node.NodeId);
        Assert.Equal("ex", Assert.Single(node.Attempts).ExecutorId);
        Assert.Equal("d", Assert.Single(back.Events).Detail);
    }

    [Fact]
    public void Executor_messages_round_trip()
    {
        var register = RoundTrip(new ExecutorRegisterRequest { ExecutorId = "w-1", ExecutorTypes = ["email", "sms"], Slots = 8, Labels = new() { ["zone"] = "eu" } });
        Assert.Equal(["email", "sms"], register.ExecutorTypes);
        Assert.Equal(8, register.Slots);
        Assert.Equal("eu", register.Labels["zone"]);

        var task = RoundTrip(new TaskAssignmentDto
        {
            Token = "t", TaskId = "run_1:a:1", TenantId = "acme", RunId = "run_1", WorkflowId = "order", NodeId = "a", Attempt = 1,
            ExecutorType = "email", InputJson = "{}"u8.ToArray(), ConfigJson = "[]"u8.ToArray(), UpstreamJson = "{}"u8.ToArray(),
            LeaseExpiresAtMs = 100, DeadlineAtMs = 200,
        });
        Assert.Equal("run_1:a:1", task.TaskId);
        Assert.Equal(200, task.DeadlineAtMs);

        var result = RoundTrip(new TaskResultRequest { Token = "t", Success = false, OutputJson = [], ErrorCode = "SMTP", ErrorMessage = "down", Retryable = false });
        Assert.False(result.Retryable);
        Assert.Equal("SMTP", result.ErrorCode);
    }

    [Fact]
    public void Queue_and_dead_letter_messages_round_trip()
    {
        var stats = RoundTrip(new QueueStatsResponse
        {
            Queues = [new QueueStatDto { TenantId = "acme", ExecutorType = "email", Depth = 3, MaxDepth = 10, Leased = 1 }],
            Executors = [new ExecutorStatDto { ExecutorId = "w", TenantId = "acme", Shared = true, ExecutorTypes = ["email"], Slots = 4, InFlight = 1, Credit = 3, LastHeartbeatMs = 9 }],
            RunsActive = 7,
        });
        Assert.Equal(3, Assert.Single(stats.Queues).Depth);
        Assert.True(Assert.Single(stats.Executors).Shared);
        Assert.Equal(7, stats.RunsActive);

        var action = RoundTrip(new DlqActionRequest { Ids = ["dl_1"], Filter = new DlqFilterDto { WorkflowId = "w", Limit = 5, FromMs = 1, ToMs = 2 }, All = true, RatePerSecond = 10 });
        Assert.Equal(["dl_1"], action.Ids);
        Assert.Equal(5, action.Filter.Limit);
        Assert.True(action.All);

        var replay = RoundTrip(new DlqReplayResponse { Outcomes = [new ReplayOutcomeDto { DeadLetterId = "dl_1", RunId = "run_1", Replayed = false, ErrorCode = 3013, ErrorMessage = "gone" }] });
        Assert.Equal(3013, Assert.Single(replay.Outcomes).ErrorCode);
    }
}

// Characterization of the codec on nil: MessagePack-CSharp turns nil into null, even for properties declared non-null.
// The spec (messages.md) says receivers treat nil as the default and a nil body as BAD_BODY; code that reads socket
// input has to apply that rule itself, and these tests show why.
public class NilHandlingTests
{
    [Fact]
    public void Nil_fields_decode_as_null()
    {
        var hello = MessagePackSerializer.Deserialize<HelloRequest>(new byte[] { 0x94, 0x01, 0xc0, 0xc0, 0x00 }, WireOptions.Untrusted);
        Assert.Null(hello.ClientName);
        Assert.Null(hello.ApiKey);

        var key = MessagePackSerializer.Deserialize<KeyCreateRequest>(new byte[] { 0x93, 0xa1, 0x61, 0xa1, 0x62, 0xc0 }, WireOptions.Untrusted);
        Assert.Null(key.Roles);
    }

    [Fact]
    public void Nil_body_decodes_as_a_null_message()
    {
        Assert.Null(MessagePackSerializer.Deserialize<KeyCreateRequest>(new byte[] { 0xc0 }, WireOptions.Untrusted));
    }
}
