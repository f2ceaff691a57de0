using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Tests;

// The executor task stream over raw frames: credit is slots, CREDIT and results free more, SetSlots, heartbeats,
// redelivery on disconnect, tenant isolation of results, and the stream's end on shutdown.
public class ExecutionExecutorTests
{
    [Fact]
    public async Task Register_stream_starts_with_credit_equal_to_slots_not_the_session_default()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await h.RegisterOneTaskAsync();
        // The session default credit is 32; the register stream must still carry only Slots = 2.
        await using var exec = await h.ConnectAsync("executor");
        uint stream = await exec.RegisterExecutorAsync("w1", slots: 2);

        await h.SubmitAsync(5);

        // Pushes happen before a submission is acknowledged, so after the barrier every push has arrived.
        Assert.Equal(2, await exec.PendingTasksAsync(stream));
        var stats = await h.QueueStatsAsync();
        var queue = Assert.Single(stats.Queues);
        Assert.Equal(3, queue.Depth);
        Assert.Equal(2, queue.Leased);
        var executor = Assert.Single(stats.Executors);
        Assert.Equal("w1", executor.ExecutorId);
        Assert.Equal(2, executor.InFlight);
        Assert.Equal(0, executor.Credit);
    }

    [Fact]
    public async Task Credit_and_freed_slots_release_more_tasks_one_for_one()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await h.RegisterOneTaskAsync();
        await using var exec = await h.ConnectAsync("executor");
        uint stream = await exec.RegisterExecutorAsync("w1", slots: 2);
        await h.SubmitAsync(5);
        var first = await exec.NextTaskAsync(stream);
        _ = await exec.NextTaskAsync(stream);

        // A result frees a slot, but the stream has no credit: nothing more is pushed.
        var ack = await exec.CompleteAsync(first);
        Assert.False(ack.Duplicate);
        Assert.Equal(0, await exec.PendingTasksAsync(stream));

        // CREDIT 1 with a free slot: exactly one more task.
        await exec.CreditAsync(stream, 1);
        Assert.Equal(1, await exec.PendingTasksAsync(stream));

        // CREDIT without a free slot (2 in flight, 2 slots): nothing.
        await exec.CreditAsync(stream, 5);
        Assert.Equal(1, await exec.PendingTasksAsync(stream));
    }

    [Fact]
    public async Task SetSlots_raises_capacity_and_reports_slots_and_in_flight()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await h.RegisterOneTaskAsync();
        await using var exec = await h.ConnectAsync("executor");
        uint stream = await exec.RegisterExecutorAsync("w1", slots: 1);
        await h.SubmitAsync(4);
        _ = await exec.NextTaskAsync(stream);

        var reply = await exec.CallAsync<ExecutorSetSlotsRequest, ExecutorSetSlotsResponse>(Opcode.ExecutorSetSlots,
            new ExecutorSetSlotsRequest { ExecutorId = "w1", Slots = 3 });
        Assert.Equal(3, reply.Slots);
        Assert.Equal(1, reply.InFlight);
        // More slots need more credit before anything else is pushed.
        Assert.Equal(0, await exec.PendingTasksAsync(stream));
        await exec.CreditAsync(stream, 2);
        Assert.Equal(2, await exec.PendingTasksAsync(stream));

        await exec.ExpectErrorAsync(Opcode.ExecutorSetSlots, new ExecutorSetSlotsRequest { ExecutorId = "w1", Slots = 0 }, ErrorCode.InvalidArgument);
        await exec.ExpectErrorAsync(Opcode.ExecutorSetSlots, new ExecutorSetSlotsRequest { ExecutorId = "nobody", Slots = 2 }, ErrorCode.ExecutorNotRegistered);
    }

    [Fact]
    public async Task Heartbeat_renews_the_executors_leases_and_only_on_its_own_connection()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await h.RegisterOneTaskAsync();
        await using var exec = await h.ConnectAsync("executor");
        uint stream = await exec.RegisterExecutorAsync("w1", slots: 3);
        await h.SubmitAsync(2);
        var task = await exec.NextTaskAsync(stream);
        _ = await exec.NextTaskAsync(stream);

        var beat = await exec.CallAsync<ExecutorHeartbeatRequest, ExecutorHeartbeatResponse>(Opcode.ExecutorHeartbeat, new ExecutorHeartbeatRequest { ExecutorId = "w1" });
        Assert.Equal(2, beat.LeasesRenewed);
        Assert.True(beat.LeaseExpiresAtMs >= task.LeaseExpiresAtMs, $"renewed expiry {beat.LeaseExpiresAtMs} is before the first {task.LeaseExpiresAtMs}");

        // Same key, another connection: the registration belongs to the first connection.
        await using var other = await h.ConnectAsync("executor");
        await other.ExpectErrorAsync(Opcode.ExecutorHeartbeat, new ExecutorHeartbeatRequest { ExecutorId = "w1" }, ErrorCode.ExecutorNotRegistered);
        // ... but results may come on any connection of the tenant.
        var ack = await other.CompleteAsync(task);
        Assert.Equal(task.RunId, ack.RunId);
        Assert.Equal("start", ack.NodeId);
    }

    [Fact]
    public async Task A_second_registration_of_the_same_id_is_refused()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await using var exec = await h.ConnectAsync("executor");
        _ = await exec.RegisterExecutorAsync("w1", slots: 1);
        uint again = exec.NextStream();
        await exec.SendAsync(Opcode.ExecutorRegister, again, new ExecutorRegisterRequest { ExecutorId = "w1", ExecutorTypes = ["worker"], Slots = 1 });
        var frame = await exec.NextAsync(again);
        Assert.Equal(ErrorCode.ExecutorExists, frame.ErrorCode);

        await using var elsewhere = await h.ConnectAsync("executor");
        uint third = elsewhere.NextStream();
        await elsewhere.SendAsync(Opcode.ExecutorRegister, third, new ExecutorRegisterRequest { ExecutorId = "w1", ExecutorTypes = ["worker"], Slots = 1 });
        Assert.Equal(ErrorCode.ExecutorExists, (await elsewhere.NextAsync(third)).ErrorCode);

        uint bad = exec.NextStream();
        await exec.SendAsync(Opcode.ExecutorRegister, bad, new ExecutorRegisterRequest { ExecutorId = "w2", ExecutorTypes = ["worker"], Slots = 0 });
        Assert.Equal(ErrorCode.InvalidArgument, (await exec.NextAsync(bad)).ErrorCode);
    }

    [Fact]
    public async Task Executor_disconnect_redelivers_the_same_attempt_to_another_executor()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await h.RegisterOneTaskAsync();
        var first = await h.ConnectAsync("executor");
        uint stream = await first.RegisterExecutorAsync("w1", slots: 1);
        await h.SubmitAsync(1);
        var task = await first.NextTaskAsync(stream);

        await using var second = await h.ConnectAsync("executor");
        uint secondStream = await second.RegisterExecutorAsync("w2", slots: 1);
        Assert.Equal(0, await second.PendingTasksAsync(secondStream));

        await first.DisposeAsync();
        var again = await second.NextTaskAsync(secondStream);
        Assert.Equal(task.TaskId, again.TaskId);
        Assert.Equal(task.Attempt, again.Attempt);

        // The redelivered attempt completes the run; the first delivery's token now reads as a duplicate.
        Assert.False((await second.CompleteAsync(again)).Duplicate);
        Assert.True((await second.CompleteAsync(task)).Duplicate);
        await using var dev = await h.ConnectAsync("developer");
        var run = await dev.CallAsync<RunGetRequest, RunDto>(Opcode.RunGet, new RunGetRequest { RunId = task.RunId });
        Assert.Equal((int)RunStatus.Completed, run.Status);
    }

    [Fact]
    public async Task Cancel_ends_the_stream_with_CANCELLED_and_requeues_its_tasks()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await h.RegisterOneTaskAsync();
        await using var exec = await h.ConnectAsync("executor");
        uint stream = await exec.RegisterExecutorAsync("w1", slots: 1);
        await h.SubmitAsync(1);
        _ = await exec.NextTaskAsync(stream);

        await exec.CancelAsync(stream);
        var end = await exec.NextAsync(stream);
        Assert.Equal(ErrorCode.Cancelled, end.ErrorCode);

        var stats = await h.QueueStatsAsync();
        Assert.Empty(stats.Executors);
        var queue = Assert.Single(stats.Queues);
        Assert.Equal(1, queue.Depth);
        Assert.Equal(0, queue.Leased);
        // The connection is still usable and the id is free again.
        _ = await exec.RegisterExecutorAsync("w1", slots: 1);
    }

    [Fact]
    public async Task A_result_from_another_tenant_is_refused()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await h.RegisterOneTaskAsync();
        await using var exec = await h.ConnectAsync("executor");
        uint stream = await exec.RegisterExecutorAsync("w1", slots: 1);
        await h.SubmitAsync(1);
        var task = await exec.NextTaskAsync(stream);
        Assert.Equal(ExecutionHarness.Tenant, task.TenantId);

        await using var stranger = await h.ConnectWithKeyAsync(h.OtherExecutorKey);
        await stranger.ExpectErrorAsync(Opcode.TaskResult, new TaskResultRequest { Token = task.Token, Success = true }, ErrorCode.TaskTokenInvalid);
        await stranger.ExpectErrorAsync(Opcode.TaskResult, new TaskResultRequest { Token = "v1.forged.token", Success = true }, ErrorCode.TaskTokenInvalid);

        // The owner's result still counts: the refusal changed nothing.
        Assert.False((await exec.CompleteAsync(task)).Duplicate);
    }

    [Fact]
    public async Task Another_tenants_executor_never_receives_the_task()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await h.RegisterOneTaskAsync();
        await using var stranger = await h.ConnectWithKeyAsync(h.OtherExecutorKey);
        uint strangerStream = await stranger.RegisterExecutorAsync("w1", slots: 4);
        await h.SubmitAsync(2);
        Assert.Equal(0, await stranger.PendingTasksAsync(strangerStream));
        Assert.Equal(2, Assert.Single((await h.QueueStatsAsync()).Queues).Depth);
    }

    [Fact]
    public async Task Shutdown_ends_a_registered_executors_stream_with_END()
    {
        await using var h = await ExecutionHarness.StartAsync(o => o.ShutdownDrainTimeout = TimeSpan.FromMinutes(2));
        await h.RegisterOneTaskAsync();
        await using var exec = await h.ConnectAsync("executor");
        uint stream = await exec.RegisterExecutorAsync("w1", slots: 1);
        await h.SubmitAsync(1);
        _ = await exec.NextTaskAsync(stream);

        // The stream must end by itself: a drain that waited for it would run into the 2-minute timeout.
        await h.Server.Server.StopAsync().WaitAsync(TimeSpan.FromSeconds(60));

        var frames = await exec.Raw.ReadUntilClosedAsync();
        var onStream = frames.Where(f => f.StreamId == stream).ToList();
        var last = Assert.Single(onStream);
        Assert.Equal(FrameType.End, last.Type);
        Assert.Equal(Opcode.ExecutorRegister, last.Opcode);
        Assert.Contains(frames, f => f.Type == FrameType.GoAway);
        Assert.DoesNotContain(frames, f => f.Type == FrameType.Error);
    }

    [Fact]
    public async Task Credit_overflow_ends_the_executor_stream()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await using var exec = await h.ConnectAsync("executor");
        uint stream = await exec.RegisterExecutorAsync("w1", slots: 10);
        await exec.CreditAsync(stream, 1_000_000);
        var end = await exec.NextAsync(stream);
        Assert.Equal(ErrorCode.CreditOverflow, end.ErrorCode);
        Assert.Empty((await h.QueueStatsAsync()).Executors);
    }
}
