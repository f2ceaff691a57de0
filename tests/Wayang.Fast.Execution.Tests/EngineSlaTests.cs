using Microsoft.Extensions.Time.Testing;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Engine;
using static Wayang.Fast.Execution.Tests.Workflows;

namespace Wayang.Fast.Execution.Tests;

// SLA tags from submission to dispatch: a run's priority and deadline reach its tasks (a node's `sla` overrides
// them), late tasks follow their deadline-miss policy and are counted, and the tags survive a restart.
public sealed class EngineSlaTests
{
    private static Task<SubmitRunResult> Submit(EngineHarness h, string workflowId, RunSla sla, string? input = null) =>
        h.Engine.SubmitAsync(EngineHarness.Tenant, new SubmitRunRequest(workflowId, 0, input is null ? null : Json(input), null, sla)).AsTask();

    [Fact]
    public async Task A_runs_priority_and_budget_reach_its_task_and_are_stored()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        var blocker = h.Connect(slots: 1);
        await h.SubmitAsync("one-task");
        var held = await blocker.NextAsync();

        var low = await Submit(h, "one-task", new RunSla(SlaPriority.Low));
        var critical = await Submit(h, "one-task", new RunSla(SlaPriority.Critical, LatencyBudgetMs: 5_000));
        var normal = await h.SubmitAsync("one-task");

        var stored = await h.GetRunAsync(critical.RunId);
        Assert.Equal(SlaPriority.Critical, stored.Priority);
        Assert.Equal(stored.CreatedAtMs + 5_000, stored.DeadlineAtMs);

        await h.SucceedAsync(blocker, held);
        var order = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var next = await blocker.NextAsync();
            order.Add(next.RunId);
            await h.SucceedAsync(blocker, next);
        }
        Assert.Equal([critical.RunId, normal.RunId, low.RunId], order);
    }

    [Fact]
    public async Task A_node_sla_overrides_the_runs()
    {
        await using var h = await EngineHarness.StartAsync();
        var urgent = TaskNode("start");
        urgent.Sla = new NodeSla { Priority = SlaPriority.Critical };
        await h.RegisterAsync(Define("urgent-node", urgent));
        await h.RegisterAsync(OneTask());
        var blocker = h.Connect(slots: 1);
        await h.SubmitAsync("one-task");
        var held = await blocker.NextAsync();

        var high = await Submit(h, "one-task", new RunSla(SlaPriority.High));
        var lowRunUrgentNode = await Submit(h, "urgent-node", new RunSla(SlaPriority.Low));

        await h.SucceedAsync(blocker, held);
        Assert.Equal(lowRunUrgentNode.RunId, (await blocker.NextAsync()).RunId);
        Assert.NotEqual(high.RunId, lowRunUrgentNode.RunId);
    }

    [Fact]
    public async Task A_late_task_under_FAIL_fails_with_DEADLINE_EXCEEDED_without_running_and_is_counted()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        var run = await Submit(h, "one-task", new RunSla(SlaPriority.High, LatencyBudgetMs: 100, OnDeadlineMiss: DeadlineMissPolicy.Fail));
        h.AdvanceMs(101);

        var executor = h.Connect(slots: 1);
        var failed = await h.WaitStatusAsync(run.RunId, RunStatus.Failed);

        var node = failed.Nodes["start"];
        Assert.Equal(NodeStatus.Failed, node.Status);
        Assert.Equal("DEADLINE_EXCEEDED", Assert.Single(node.Attempts).ErrorCode);
        Assert.Equal(0, executor.Untaken);
        Assert.Empty(executor.Pushed);
        Assert.Contains((EngineHarness.Tenant, SlaPriority.High, 1L), h.Engine.GetStats(null).DeadlineMisses);
    }

    [Fact]
    public async Task A_late_task_under_RUN_ANYWAY_is_dispatched_and_counted_once()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        var run = await Submit(h, "one-task", new RunSla(DeadlineAtMs: h.NowMs + 50));
        h.AdvanceMs(51);

        var executor = h.Connect(slots: 1);
        var task = await executor.NextAsync();
        Assert.Equal(run.RunId, task.RunId);
        await h.SucceedAsync(executor, task);
        await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        Assert.Contains((EngineHarness.Tenant, SlaPriority.Normal, 1L), h.Engine.GetStats(null).DeadlineMisses);
    }

    [Fact]
    public async Task On_time_tasks_are_not_misses()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        var executor = h.Connect(slots: 1);
        await Submit(h, "one-task", new RunSla(LatencyBudgetMs: 1_000, OnDeadlineMiss: DeadlineMissPolicy.Fail));
        await h.SucceedAsync(executor, await executor.NextAsync());
        Assert.Empty(h.Engine.GetStats(null).DeadlineMisses);
    }

    [Theory]
    [InlineData(-1, 0, 0, 0)]
    [InlineData(0, -5, 0, 0)]
    [InlineData(0, 0, -5, 0)]
    [InlineData(0, 100, 100, 0)]
    [InlineData(9, 0, 0, 0)]
    [InlineData(0, 0, 0, 7)]
    public async Task Bad_sla_tags_are_INVALID_ARGUMENT(int priority, long deadline, long budget, int policy)
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        var ex = await Assert.ThrowsAsync<WayangException>(() =>
            Submit(h, "one-task", new RunSla((SlaPriority)(byte)priority, deadline, budget, (DeadlineMissPolicy)(byte)policy)));
        Assert.Equal(ErrorCode.InvalidArgument, ex.Error.Code);
    }

    [Fact]
    public async Task Priorities_and_deadlines_of_queued_tasks_survive_a_restart()
    {
        using var dir = new TempDirectory("engine-sla");
        string low, critical, late;
        FakeTimeProvider time;
        await using (var h = await EngineHarness.StartOnDiskAsync(dir.Path))
        {
            time = h.Time;
            await h.RegisterAsync(OneTask());
            low = (await Submit(h, "one-task", new RunSla(SlaPriority.Low))).RunId;
            critical = (await Submit(h, "one-task", new RunSla(SlaPriority.Critical))).RunId;
            late = (await Submit(h, "one-task", new RunSla(LatencyBudgetMs: 10_000, OnDeadlineMiss: DeadlineMissPolicy.Fail))).RunId;
        }
        // The deadline is absolute: after the restart (and 10 s later) it has passed.
        time.Advance(TimeSpan.FromSeconds(11));

        await using var reopened = await EngineHarness.StartOnDiskAsync(dir.Path, time);
        var executor = reopened.Connect(slots: 1);
        var first = await executor.NextAsync();
        Assert.Equal(critical, first.RunId);
        // The freed slot's next turn is the late NORMAL task: failed, not pushed; then the LOW one.
        await reopened.SucceedAsync(executor, first);
        Assert.Equal(low, (await executor.NextAsync()).RunId);
        var failed = await reopened.WaitStatusAsync(late, RunStatus.Failed);
        Assert.Equal("DEADLINE_EXCEEDED", Assert.Single(failed.Nodes["start"].Attempts).ErrorCode);
        Assert.Equal(2, executor.Pushed.Count);
    }

    [Fact]
    public async Task A_tenants_queued_limit_refuses_submissions_with_retry_after_and_frees_as_tasks_go()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        await h.Engine.SetTenantScheduleAsync(new TenantSchedule(EngineHarness.Tenant, MaxQueued: 2));
        await h.SubmitAsync("one-task");
        await h.SubmitAsync("one-task");

        var ex = await Assert.ThrowsAsync<WayangException>(() => h.SubmitAsync("one-task"));
        Assert.Equal(ErrorCode.TenantQueueLimit, ex.Error.Code);
        Assert.True(ex.Error.RetryAfterMs > 0);

        var executor = h.Connect(slots: 1);
        await executor.NextAsync();
        await h.SubmitAsync("one-task");
    }

    [Fact]
    public async Task A_tenants_submission_rate_is_limited_with_the_time_to_the_next_token()
    {
        await using var h = await EngineHarness.StartAsync();
        await h.RegisterAsync(OneTask());
        await h.Engine.SetTenantScheduleAsync(new TenantSchedule(EngineHarness.Tenant, MaxSubmitsPerSecond: 4));
        for (var i = 0; i < 4; i++)
            await h.SubmitAsync("one-task");

        var ex = await Assert.ThrowsAsync<WayangException>(() => h.SubmitAsync("one-task"));
        Assert.Equal(ErrorCode.TenantRateLimited, ex.Error.Code);
        Assert.Equal(250, ex.Error.RetryAfterMs);
        // Other tenants are not affected.
        await h.RegisterAsync(OneTask(), tenant: "other");
        await h.SubmitAsync("one-task", tenant: "other");

        h.AdvanceMs(250);
        await h.SubmitAsync("one-task");

        // Lifted, then set again: a new limit starts with a full second's worth.
        await h.Engine.SetTenantScheduleAsync(new TenantSchedule(EngineHarness.Tenant));
        await h.SubmitAsync("one-task");
        await h.Engine.SetTenantScheduleAsync(new TenantSchedule(EngineHarness.Tenant, MaxSubmitsPerSecond: 2));
        await h.SubmitAsync("one-task");
        await h.SubmitAsync("one-task");
        Assert.Equal(ErrorCode.TenantRateLimited, (await Assert.ThrowsAsync<WayangException>(() => h.SubmitAsync("one-task"))).Error.Code);
    }

    [Fact]
    public async Task Bad_schedules_are_INVALID_ARGUMENT()
    {
        await using var h = await EngineHarness.StartAsync();
        foreach (var bad in new[] { new TenantSchedule(""), new TenantSchedule("t", Weight: 0), new TenantSchedule("t", Weight: 1001), new TenantSchedule("t", MaxQueued: -1) })
        {
            var ex = await Assert.ThrowsAsync<WayangException>(() => h.Engine.SetTenantScheduleAsync(bad).AsTask());
            Assert.Equal(ErrorCode.InvalidArgument, ex.Error.Code);
        }
    }

    [Fact]
    public async Task Schedules_are_durable_and_apply_again_after_a_restart()
    {
        using var dir = new TempDirectory("engine-sched");
        FakeTimeProvider time;
        await using (var h = await EngineHarness.StartOnDiskAsync(dir.Path))
        {
            time = h.Time;
            await h.RegisterAsync(OneTask());
            await h.Engine.SetTenantScheduleAsync(new TenantSchedule(EngineHarness.Tenant, Weight: 3, MaxConcurrent: 1));
            for (var i = 0; i < 3; i++)
                await h.SubmitAsync("one-task");
        }

        await using var reopened = await EngineHarness.StartOnDiskAsync(dir.Path, time);
        Assert.Equal(new TenantSchedule(EngineHarness.Tenant, 3, 1), Assert.Single(reopened.Engine.GetTenantSchedules()));
        // The concurrency limit holds for the recovered tasks: one at a time although the executor has 5 slots.
        var executor = reopened.Connect(slots: 5);
        var first = await executor.NextAsync();
        Assert.Equal(0, executor.Untaken);
        await reopened.SucceedAsync(executor, first);
        await executor.NextAsync();
        Assert.Equal(0, executor.Untaken);
    }

    [Fact]
    public async Task A_node_latency_budget_keeps_its_deadline_across_a_restart()
    {
        using var dir = new TempDirectory("engine-sla-node");
        var node = TaskNode("start");
        node.Sla = new NodeSla { LatencyBudgetMs = 10_000, OnDeadlineMiss = DeadlineMissPolicy.Fail };
        string runId;
        FakeTimeProvider time;
        await using (var h = await EngineHarness.StartOnDiskAsync(dir.Path))
        {
            time = h.Time;
            await h.RegisterAsync(Define("budgeted", node));
            runId = (await h.SubmitAsync("budgeted")).RunId;
        }
        time.Advance(TimeSpan.FromSeconds(11));

        // Counted from when the task became ready before the restart, the budget is spent: the task fails unrun.
        await using var reopened = await EngineHarness.StartOnDiskAsync(dir.Path, time);
        var executor = reopened.Connect(slots: 1);
        var failed = await reopened.WaitStatusAsync(runId, RunStatus.Failed);
        Assert.Equal("DEADLINE_EXCEEDED", Assert.Single(failed.Nodes["start"].Attempts).ErrorCode);
        Assert.Empty(executor.Pushed);
    }

    [Fact]
    public async Task Deadline_miss_counts_survive_a_restart()
    {
        using var dir = new TempDirectory("engine-sla-misses");
        FakeTimeProvider time;
        await using (var h = await EngineHarness.StartOnDiskAsync(dir.Path))
        {
            time = h.Time;
            await h.RegisterAsync(OneTask());
            await Submit(h, "one-task", new RunSla(SlaPriority.Critical, LatencyBudgetMs: 10));
            h.AdvanceMs(11);
            var executor = h.Connect(slots: 1);
            await h.SucceedAsync(executor, await executor.NextAsync());
            // The count is written off the dispatch path: wait until it is in the store.
            await EngineHarness.WaitUntilAsync(() => h.Store.TryGet("misses/acme/4"u8, out _), "the miss count is stored", null);
        }

        await using var reopened = await EngineHarness.StartOnDiskAsync(dir.Path, time);
        Assert.Contains((EngineHarness.Tenant, SlaPriority.Critical, 1L), reopened.Engine.GetStats(null).DeadlineMisses);
    }
}
