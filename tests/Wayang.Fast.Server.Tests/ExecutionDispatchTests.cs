using System.Text;
using System.Text.RegularExpressions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Tests;

// The 0x02xx opcodes through the real server: permissions, body decoding, JSON fields, tenant scoping, and the
// figures in QueueStats and /metrics.
public partial class ExecutionDispatchTests
{
    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public async Task A_run_goes_from_submission_to_completed_through_raw_frames()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await using var dev = await h.ConnectAsync("developer");
        var registered = await dev.CallAsync<WorkflowRegisterRequest, WorkflowRegisterResponse>(Opcode.WorkflowRegister,
            new WorkflowRegisterRequest { DefinitionJson = Utf8(ExecutionHarness.OneTaskJson) });
        Assert.Equal("one", registered.WorkflowId);
        Assert.Equal(1, registered.Version);

        await using var exec = await h.ConnectAsync("executor");
        uint stream = await exec.RegisterExecutorAsync("w1", slots: 1);
        var submitted = await dev.CallAsync<RunSubmitRequest, RunSubmitResponse>(Opcode.RunSubmit,
            new RunSubmitRequest { WorkflowId = "one", InputJson = Utf8("""{"n":7}"""), IdempotencyKey = "k1" });
        Assert.False(submitted.Replayed);
        Assert.Equal(1, submitted.WorkflowVersion);

        var task = await exec.NextTaskAsync(stream);
        Assert.Equal(submitted.RunId, task.RunId);
        Assert.Equal($"{submitted.RunId}:start:1", task.TaskId);
        Assert.Equal("""{"n":7}""", Encoding.UTF8.GetString(task.InputJson));
        Assert.Empty(task.ConfigJson);
        await exec.CompleteAsync(task, """{"sum":42}""");

        var run = await dev.CallAsync<RunGetRequest, RunDto>(Opcode.RunGet, new RunGetRequest { RunId = submitted.RunId, IncludeEvents = true });
        Assert.Equal((int)RunStatus.Completed, run.Status);
        Assert.Equal(ExecutionHarness.Tenant, run.TenantId);
        Assert.Equal("k1", run.IdempotencyKey);
        var node = Assert.Single(run.Nodes);
        Assert.Equal((int)NodeStatus.Completed, node.Status);
        Assert.Equal("""{"sum":42}""", Encoding.UTF8.GetString(node.OutputJson));
        Assert.Equal("w1", Assert.Single(node.Attempts).ExecutorId);
        Assert.Contains(run.Events, e => e.Type == (int)RunEventType.RunCompleted);
        Assert.True(run.FinishedAtMs > 0);

        // Same key, same request: the same run, Replayed.
        var again = await dev.CallAsync<RunSubmitRequest, RunSubmitResponse>(Opcode.RunSubmit,
            new RunSubmitRequest { WorkflowId = "one", InputJson = Utf8("""{"n":7}"""), IdempotencyKey = "k1" });
        Assert.True(again.Replayed);
        Assert.Equal(submitted.RunId, again.RunId);
        await dev.ExpectErrorAsync(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "one", InputJson = Utf8("""{"n":8}"""), IdempotencyKey = "k1" },
            ErrorCode.IdempotencyKeyConflict);

        var list = await dev.CallAsync<RunListRequest, RunListResponse>(Opcode.RunList, new RunListRequest { Status = (int)RunStatus.Completed });
        Assert.Equal(submitted.RunId, Assert.Single(list.Runs).RunId);

        var workflows = await dev.CallAsync<object[], WorkflowListResponse>(Opcode.WorkflowList, []);
        var info = Assert.Single(workflows.Workflows);
        Assert.Equal([1], info.Versions);
        var stored = await dev.CallAsync<WorkflowGetRequest, WorkflowGetResponse>(Opcode.WorkflowGet, new WorkflowGetRequest { WorkflowId = "one" });
        Assert.Contains("\"executorType\":\"worker\"", Encoding.UTF8.GetString(stored.DefinitionJson), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_control_and_missing_things_answer_with_their_codes()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await h.RegisterOneTaskAsync();
        var runId = (await h.SubmitAsync(1))[0];
        await using var op = await h.ConnectAsync("operator");

        var suspended = await op.CallAsync<RunControlRequest, RunSummaryDto>(Opcode.RunSuspend, new RunControlRequest { RunId = runId });
        Assert.Equal((int)RunStatus.Suspended, suspended.Status);
        await op.ExpectErrorAsync(Opcode.RunSuspend, new RunControlRequest { RunId = runId }, ErrorCode.RunStateConflict);
        var resumed = await op.CallAsync<RunControlRequest, RunSummaryDto>(Opcode.RunResume, new RunControlRequest { RunId = runId });
        Assert.Equal((int)RunStatus.Running, resumed.Status);
        var cancelled = await op.CallAsync<RunControlRequest, RunSummaryDto>(Opcode.RunCancel, new RunControlRequest { RunId = runId, Reason = "test" });
        Assert.Equal((int)RunStatus.Cancelled, cancelled.Status);

        await op.ExpectErrorAsync(Opcode.RunGet, new RunGetRequest { RunId = "run_nope" }, ErrorCode.RunNotFound);
        await op.ExpectErrorAsync(Opcode.RunCancel, new RunControlRequest { RunId = "run_nope" }, ErrorCode.RunNotFound);
        await op.ExpectErrorAsync(Opcode.RunSignal, new RunSignalRequest { RunId = runId, Signal = "" }, ErrorCode.InvalidArgument);
        await op.ExpectErrorAsync(Opcode.WorkflowGet, new WorkflowGetRequest { WorkflowId = "nope" }, ErrorCode.WorkflowNotFound);
        await op.ExpectErrorAsync(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "nope" }, ErrorCode.WorkflowNotFound);
        await op.ExpectErrorAsync(Opcode.DlqShow, new DlqShowRequest { Id = "dlq_nope" }, ErrorCode.DeadLetterNotFound);
        await op.ExpectErrorAsync(Opcode.RunList, new RunListRequest { Status = 99 }, ErrorCode.InvalidArgument);

        // Another tenant's run reads as missing.
        await using var admin = await h.ConnectAdminAsync();
        await admin.ExpectErrorAsync(Opcode.RunGet, new RunGetRequest { RunId = runId }, ErrorCode.RunNotFound);
    }

    public static TheoryData<Opcode> DecodedOpcodes() =>
    [
        Opcode.WorkflowRegister, Opcode.WorkflowGet, Opcode.RunSubmit, Opcode.RunGet, Opcode.RunList, Opcode.RunCancel,
        Opcode.RunSuspend, Opcode.RunResume, Opcode.RunSignal, Opcode.ExecutorRegister, Opcode.ExecutorSetSlots,
        Opcode.ExecutorHeartbeat, Opcode.TaskResult, Opcode.QueueStats, Opcode.DlqList, Opcode.DlqShow, Opcode.DlqReplay,
        Opcode.DlqDiscard,
    ];

    [Theory]
    [MemberData(nameof(DecodedOpcodes))]
    public async Task Undecodable_and_nil_bodies_are_BAD_BODY_and_the_connection_goes_on(Opcode opcode)
    {
        await using var h = await ExecutionHarness.StartAsync();
        await using var admin = await h.ConnectAdminAsync();
        // 0xc1 is never valid MessagePack; 0xc0 is a nil body; a bare string is the wrong type.
        foreach (var body in new byte[][] { [0xc1], [0xc0], [0xa1, (byte)'x'], [0x91, 0x91, 0x91] })
        {
            var frame = await admin.CallBytesAsync(opcode, body);
            Assert.True(frame.ErrorCode == ErrorCode.BadBody, $"{opcode} with body {Convert.ToHexString(body)}: expected BAD_BODY, got {frame}");
        }
        await admin.BarrierAsync();
    }

    [Fact]
    public async Task Nil_fields_take_their_defaults()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await using var admin = await h.ConnectAdminAsync();
        // RunSubmitRequest [nil, 0, nil, nil]: a workflow id of "" (not found), no input, no key.
        var frame = await admin.CallBytesAsync(Opcode.RunSubmit, [0x94, 0xc0, 0x00, 0xc0, 0xc0]);
        Assert.Equal(ErrorCode.WorkflowNotFound, frame.ErrorCode);
        // ExecutorRegisterRequest [nil, [nil], 1, nil]: refused as invalid, not a fault.
        frame = await admin.CallBytesAsync(Opcode.ExecutorRegister, [0x94, 0xc0, 0x91, 0xc0, 0x01, 0xc0]);
        Assert.Equal(ErrorCode.InvalidArgument, frame.ErrorCode);
        // DlqListRequest [nil]: the default filter.
        frame = await admin.CallBytesAsync(Opcode.DlqList, [0x91, 0xc0]);
        Assert.Equal(FrameType.Response, frame.Type);
        // TaskResultRequest [nil, true, nil, nil, nil, true]: an empty token.
        frame = await admin.CallBytesAsync(Opcode.TaskResult, [0x96, 0xc0, 0xc3, 0xc0, 0xc0, 0xc0, 0xc3]);
        Assert.Equal(ErrorCode.TaskTokenInvalid, frame.ErrorCode);
    }

    [Fact]
    public async Task Invalid_JSON_is_refused_naming_the_field()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await h.RegisterOneTaskAsync();
        await using var admin = await h.ConnectAdminAsync();
        await using var dev = await h.ConnectAsync("developer");

        var error = await dev.ExpectErrorAsync(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "one", InputJson = Utf8("{\"n\":") }, ErrorCode.InvalidArgument);
        Assert.Equal("InputJson", error.Details["field"]);
        error = await dev.ExpectErrorAsync(Opcode.RunSignal, new RunSignalRequest { RunId = "r", Signal = "s", PayloadJson = Utf8("nope") }, ErrorCode.InvalidArgument);
        Assert.Equal("PayloadJson", error.Details["field"]);
        await using var exec = await h.ConnectAsync("executor");
        error = await exec.ExpectErrorAsync(Opcode.TaskResult, new TaskResultRequest { Token = "t", Success = true, OutputJson = Utf8("[1,") }, ErrorCode.InvalidArgument);
        Assert.Equal("OutputJson", error.Details["field"]);

        // Definitions: bad JSON, unknown properties and structural errors are WORKFLOW_INVALID.
        await dev.ExpectErrorAsync(Opcode.WorkflowRegister, new WorkflowRegisterRequest { DefinitionJson = Utf8("{\"id\":") }, ErrorCode.WorkflowInvalid);
        await dev.ExpectErrorAsync(Opcode.WorkflowRegister, new WorkflowRegisterRequest { DefinitionJson = [] }, ErrorCode.WorkflowInvalid);
        await dev.ExpectErrorAsync(Opcode.WorkflowRegister, new WorkflowRegisterRequest { DefinitionJson = Utf8("""{"id":"x","nodes":[],"colour":"red"}""") }, ErrorCode.WorkflowInvalid);
        error = await dev.ExpectErrorAsync(Opcode.WorkflowRegister, new WorkflowRegisterRequest
        {
            DefinitionJson = Utf8("""{"id":"x","nodes":[{"id":"a","type":"TASK"}]}"""),
        }, ErrorCode.WorkflowInvalid);
        Assert.Equal("a", error.Details["node"]);
        // An AGENT node names a published agent version of the tenant...
        error = await dev.ExpectErrorAsync(Opcode.WorkflowRegister, new WorkflowRegisterRequest
        {
            DefinitionJson = Utf8("""{"id":"x","nodes":[{"id":"a","type":"AGENT","agent":"helper","agentVersion":1}]}"""),
        }, ErrorCode.WorkflowInvalid);
        Assert.Equal("a", error.Details["node"]);
        var agent = await dev.CallAsync<DefinitionRequest, DefinitionVersionDto>(Opcode.DefinitionCreate,
            new DefinitionRequest { Kind = 2, DefinitionJson = Utf8("""{"id":"helper","model":"m"}""") });
        await dev.CallAsync<DefinitionTransitionRequest, DefinitionVersionDto>(Opcode.DefinitionTransition,
            new DefinitionTransitionRequest { Kind = 2, Id = "helper", Version = agent.Version, Target = 3 });
        // ...and with one, this server (no inference plane) still refuses AGENT nodes with their own code.
        await dev.ExpectErrorAsync(Opcode.WorkflowRegister, new WorkflowRegisterRequest
        {
            DefinitionJson = Utf8("""{"id":"x","nodes":[{"id":"a","type":"AGENT","agent":"helper","agentVersion":1}]}"""),
        }, ErrorCode.AgentUnavailable);
    }

    [Fact]
    public async Task Dead_letter_actions_need_ids_a_filter_or_All()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await using var op = await h.ConnectAsync("operator");
        await op.ExpectErrorAsync(Opcode.DlqReplay, new DlqActionRequest(), ErrorCode.InvalidArgument);
        await op.ExpectErrorAsync(Opcode.DlqDiscard, new DlqActionRequest(), ErrorCode.InvalidArgument);
        await op.ExpectErrorAsync(Opcode.DlqReplay, new DlqActionRequest { Ids = ["a"], RatePerSecond = -1 }, ErrorCode.InvalidArgument);

        var discarded = await op.CallAsync<DlqActionRequest, DlqDiscardResponse>(Opcode.DlqDiscard, new DlqActionRequest { All = true });
        Assert.Equal(0, discarded.Discarded);
        var replayed = await op.CallAsync<DlqActionRequest, DlqReplayResponse>(Opcode.DlqReplay, new DlqActionRequest { Ids = ["dlq_missing"] });
        var outcome = Assert.Single(replayed.Outcomes);
        Assert.False(outcome.Replayed);
        Assert.Equal((int)ErrorCode.DeadLetterNotFound, outcome.ErrorCode);
    }

    [Fact]
    public async Task A_failed_task_is_dead_lettered_listed_shown_and_replayed()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await h.RegisterOneTaskAsync();
        await using var exec = await h.ConnectAsync("executor");
        uint stream = await exec.RegisterExecutorAsync("w1", slots: 1);
        var runId = (await h.SubmitAsync(1))[0];
        var task = await exec.NextTaskAsync(stream);
        await exec.CallAsync<TaskResultRequest, TaskResultResponse>(Opcode.TaskResult,
            new TaskResultRequest { Token = task.Token, Success = false, ErrorCode = "BOOM", ErrorMessage = "exploded", Retryable = false });
        await exec.CreditAsync(stream, 1);

        await using var op = await h.ConnectAsync("operator");
        var run = await op.CallAsync<RunGetRequest, RunDto>(Opcode.RunGet, new RunGetRequest { RunId = runId });
        Assert.Equal((int)RunStatus.Failed, run.Status);
        var list = await op.CallAsync<DlqListRequest, DlqListResponse>(Opcode.DlqList, new DlqListRequest { Filter = new DlqFilterDto { ErrorCode = "BOOM" } });
        var entry = Assert.Single(list.Entries);
        Assert.Equal(runId, entry.RunId);
        Assert.Equal("worker", entry.ExecutorType);
        Assert.Equal("w1", entry.ExecutorId);
        var shown = await op.CallAsync<DlqShowRequest, DeadLetterDto>(Opcode.DlqShow, new DlqShowRequest { Id = entry.Id });
        Assert.Equal("exploded", shown.LastErrorMessage);

        var replayed = await op.CallAsync<DlqActionRequest, DlqReplayResponse>(Opcode.DlqReplay, new DlqActionRequest { Ids = [entry.Id] });
        Assert.True(Assert.Single(replayed.Outcomes).Replayed);
        var retry = await exec.NextTaskAsync(stream);
        Assert.Equal(2, retry.Attempt);
        Assert.Equal($"{runId}:start:2", retry.TaskId);
        await exec.CompleteAsync(retry);
        run = await op.CallAsync<RunGetRequest, RunDto>(Opcode.RunGet, new RunGetRequest { RunId = runId });
        Assert.Equal((int)RunStatus.Completed, run.Status);
    }

    [Fact]
    public async Task Sla_tags_on_submit_order_dispatch_and_a_late_FAIL_task_fails_and_is_counted_in_metrics()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await h.RegisterOneTaskAsync();
        await using var dev = await h.ConnectAsync("developer");
        // Deadline long past (unix ms 1), FAIL policy, HIGH priority: fails at its first turn.
        var late = await dev.CallAsync<RunSubmitRequest, RunSubmitResponse>(Opcode.RunSubmit,
            new RunSubmitRequest { WorkflowId = "one", Priority = 3, DeadlineAtMs = 1, OnDeadlineMiss = 2 });
        var low = await dev.CallAsync<RunSubmitRequest, RunSubmitResponse>(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "one", Priority = 1 });
        var critical = await dev.CallAsync<RunSubmitRequest, RunSubmitResponse>(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "one", Priority = 4 });
        await dev.ExpectErrorAsync(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "one", DeadlineAtMs = 5, LatencyBudgetMs = 5 }, ErrorCode.InvalidArgument);
        await dev.ExpectErrorAsync(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "one", Priority = 99 }, ErrorCode.InvalidArgument);

        await using var exec = await h.ConnectAsync("executor");
        uint stream = await exec.RegisterExecutorAsync("w1", slots: 1);
        var first = await exec.NextTaskAsync(stream);
        Assert.Equal(critical.RunId, first.RunId);
        await exec.CompleteAsync(first);
        await exec.CreditAsync(stream, 1);
        var second = await exec.NextTaskAsync(stream);
        Assert.Equal(low.RunId, second.RunId);

        // The late task left the queue at its turn; its run fails once that change is durable (off the dispatch path).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while ((await dev.CallAsync<RunGetRequest, RunDto>(Opcode.RunGet, new RunGetRequest { RunId = late.RunId })).Status != (int)RunStatus.Failed)
        {
            Assert.True(DateTime.UtcNow < deadline, "the late run did not become FAILED");
            await Task.Delay(10);
        }
        using var http = new HttpClient { BaseAddress = new Uri($"http://{h.Server.Server.HttpEndPoint}") };
        var metrics = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains("wayang_execution_deadline_misses_total{tenant=\"acme\",priority=\"high\"} 1\n", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task QueueStats_and_metrics_show_queues_executors_and_counters()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await h.RegisterOneTaskAsync();
        await using var exec = await h.ConnectAsync("executor");
        uint stream = await exec.RegisterExecutorAsync("w\"1", slots: 1);
        await h.SubmitAsync(3);
        var task = await exec.NextTaskAsync(stream);
        await exec.CompleteAsync(task);

        var stats = await h.QueueStatsAsync();
        var queue = Assert.Single(stats.Queues);
        Assert.Equal(ExecutionHarness.Tenant, queue.TenantId);
        Assert.Equal("worker", queue.ExecutorType);
        Assert.Equal(2, queue.Depth);
        Assert.Equal(0, queue.Leased);
        Assert.True(queue.MaxDepth > 0);
        Assert.Equal(2, stats.RunsActive);
        var executor = Assert.Single(stats.Executors);
        Assert.Equal(["worker"], executor.ExecutorTypes);
        Assert.False(executor.Shared);
        Assert.Equal(1, executor.Slots);
        Assert.Equal(0, executor.InFlight);

        using var http = new HttpClient { BaseAddress = new Uri($"http://{h.Server.Server.HttpEndPoint}") };
        var metrics = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains("wayang_execution_queue_depth{tenant=\"acme\",executor_type=\"worker\"} 2\n", metrics, StringComparison.Ordinal);
        Assert.Contains("wayang_execution_queue_leased{tenant=\"acme\",executor_type=\"worker\"} 0\n", metrics, StringComparison.Ordinal);
        Assert.Contains("wayang_execution_executors 1\n", metrics, StringComparison.Ordinal);
        // The executor id is free text: escaped in the label.
        Assert.Contains("wayang_execution_executor_slots{tenant=\"acme\",executor=\"w\\\"1\",shared=\"false\"} 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("wayang_execution_runs_active 2\n", metrics, StringComparison.Ordinal);
        Assert.Contains("wayang_execution_tasks_dispatched_total 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("wayang_execution_tasks_completed_total 1\n", metrics, StringComparison.Ordinal);
        Assert.Matches(LeaseExpirations(), metrics);
        Assert.Contains("wayang_request_duration_seconds_count{opcode=\"run_submit\"}", metrics, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"(?m)^wayang_execution_lease_expirations_total \d+$")]
    private static partial Regex LeaseExpirations();

    [Fact]
    public async Task The_example_in_execution_md_registers()
    {
        var doc = await File.ReadAllTextAsync(FindSpec("execution.md"));
        int start = doc.IndexOf("```json\n", StringComparison.Ordinal) + "```json\n".Length;
        var json = doc[start..doc.IndexOf("```", start, StringComparison.Ordinal)];
        await using var h = await ExecutionHarness.StartAsync();
        await using var dev = await h.ConnectAsync("developer");
        var registered = await dev.CallAsync<WorkflowRegisterRequest, WorkflowRegisterResponse>(Opcode.WorkflowRegister,
            new WorkflowRegisterRequest { DefinitionJson = Utf8(json) });
        Assert.Equal("order-fulfilment", registered.WorkflowId);
    }

    private static string FindSpec(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "protocol-spec", name);
            if (File.Exists(candidate))
                return candidate;
        }
        throw new FileNotFoundException("protocol-spec not found above the test assembly", name);
    }
}
