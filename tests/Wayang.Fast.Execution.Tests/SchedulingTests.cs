using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Dispatch;

namespace Wayang.Fast.Execution.Tests;

// Priority classes, earliest-deadline-first within a class, and weighted fair share between tenants (deficit round
// robin per priority level). A one-slot shared executor makes every dispatch a scheduling decision: release the
// task it holds, grant the credit back, and see which queued task comes next.
public sealed class SchedulingTests
{
    private static QueuedTask Sla(string tenant, string run, string node, SlaPriority priority = SlaPriority.Unspecified, long deadlineAtMs = 0) =>
        new()
        {
            TenantId = tenant,
            ExecutorType = "x",
            RunId = run,
            NodeId = node,
            Attempt = 1,
            TaskId = $"{run}:{node}:1",
            Priority = priority,
            DeadlineAtMs = deadlineAtMs,
        };

    // The executor is registered holding a blocker task, so everything enqueued afterwards waits in the queues.
    private static (DispatchHarness H, DispatchHarness.TestExecutor E) BusyExecutor()
    {
        var h = new DispatchHarness();
        var e = h.Register("system", "pool", slots: 1, ["x"], shared: true);
        h.Dispatcher.Enqueue(Sla("blocker", "b", "n"));
        Assert.Single(e.Received);
        return (h, e);
    }

    // Frees the slot once and returns the task that took it.
    private static string Next(DispatchHarness h, DispatchHarness.TestExecutor e)
    {
        var before = e.Received.Count;
        h.Release(e.Received[^1].TaskId);
        e.Grant(1);
        Assert.Equal(before + 1, e.Received.Count);
        return e.Received[^1].TaskId;
    }

    [Fact]
    public void Higher_priority_goes_first_and_unspecified_means_normal()
    {
        var (h, e) = BusyExecutor();
        h.Dispatcher.Enqueue(Sla("a", "r", "low", SlaPriority.Low));
        h.Dispatcher.Enqueue(Sla("a", "r", "unspecified"));
        h.Dispatcher.Enqueue(Sla("a", "r", "critical", SlaPriority.Critical));
        h.Dispatcher.Enqueue(Sla("a", "r", "normal", SlaPriority.Normal));
        h.Dispatcher.Enqueue(Sla("a", "r", "high", SlaPriority.High));

        var order = Enumerable.Range(0, 5).Select(_ => Next(h, e)).ToArray();

        Assert.Equal(["r:critical:1", "r:high:1", "r:unspecified:1", "r:normal:1", "r:low:1"], order);
        h.AssertNoViolations();
    }

    [Fact]
    public void Within_a_priority_the_earliest_deadline_goes_first_and_no_deadline_last()
    {
        var (h, e) = BusyExecutor();
        var now = h.NowMs;
        h.Dispatcher.Enqueue(Sla("a", "r", "none1"));
        h.Dispatcher.Enqueue(Sla("a", "r", "d300", deadlineAtMs: now + 300));
        h.Dispatcher.Enqueue(Sla("a", "r", "d100", deadlineAtMs: now + 100));
        h.Dispatcher.Enqueue(Sla("a", "r", "none2"));
        h.Dispatcher.Enqueue(Sla("a", "r", "d200", deadlineAtMs: now + 200));
        h.Dispatcher.Enqueue(Sla("a", "r", "high-none", SlaPriority.High));

        var order = Enumerable.Range(0, 6).Select(_ => Next(h, e)).ToArray();

        Assert.Equal(["r:high-none:1", "r:d100:1", "r:d200:1", "r:d300:1", "r:none1:1", "r:none2:1"], order);
    }

    [Fact]
    public void A_redelivery_goes_before_newer_work_of_its_class_but_not_before_a_higher_class()
    {
        var (h, e) = BusyExecutor();
        h.Dispatcher.Enqueue(Sla("a", "r", "new1"));
        h.Dispatcher.Enqueue(Sla("a", "r", "new2"));
        h.Dispatcher.Enqueue(Sla("a", "r", "urgent", SlaPriority.High));
        h.Dispatcher.Enqueue(Sla("a", "r", "redelivered"), front: true);

        var order = Enumerable.Range(0, 4).Select(_ => Next(h, e)).ToArray();

        Assert.Equal(["r:urgent:1", "r:redelivered:1", "r:new1:1", "r:new2:1"], order);
    }

    [Fact]
    public void Weights_three_to_one_give_three_quarters_of_the_dispatches()
    {
        var (h, e) = BusyExecutor();
        h.Dispatcher.SetTenantSchedule("heavy", 3, maxConcurrent: 0);
        for (var i = 0; i < 5000; i++)
        {
            h.Dispatcher.Enqueue(Sla("heavy", "rh", $"n{i}"));
            h.Dispatcher.Enqueue(Sla("light", "rl", $"n{i}"));
        }

        var tenants = Enumerable.Range(0, 4000).Select(_ => Next(h, e)).Select(id => id.StartsWith("rh:", StringComparison.Ordinal)).ToArray();

        var share = tenants.Count(heavy => heavy) / (double)tenants.Length;
        Assert.InRange(share, 0.73, 0.77);
        // And not in long bursts: deficit round robin interleaves at most `weight` in a row.
        Assert.True(LongestRun(tenants, true) <= 3, $"longest heavy run {LongestRun(tenants, true)}");
        Assert.True(LongestRun(tenants, false) <= 1, $"longest light run {LongestRun(tenants, false)}");
        h.AssertNoViolations();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(50)]
    public void A_quiet_tenants_single_task_waits_at_most_the_flooders_weight_in_dispatches(int flooderWeight)
    {
        var (h, e) = BusyExecutor();
        h.Dispatcher.SetTenantSchedule("flood", flooderWeight, maxConcurrent: 0);
        for (var i = 0; i < 10_000; i++)
            h.Dispatcher.Enqueue(Sla("flood", "rf", $"n{i}"));
        // The flood is mid-way through its turns when the quiet task arrives.
        for (var i = 0; i < 37; i++)
            Next(h, e);

        h.Dispatcher.Enqueue(Sla("quiet", "rq", "only"));
        var waited = 0;
        while (Next(h, e) != "rq:only:1")
            waited++;

        // README: a task waits at most the sum of the other queued tenants' weights (same priority and type).
        Assert.True(waited <= flooderWeight, $"the quiet task waited {waited} dispatches, bound {flooderWeight}");
    }

    [Fact]
    public void The_bound_is_the_sum_of_the_other_tenants_weights()
    {
        var (h, e) = BusyExecutor();
        string[] flooders = ["f1", "f2", "f3"];
        int[] weights = [2, 5, 3];
        for (var t = 0; t < flooders.Length; t++)
        {
            h.Dispatcher.SetTenantSchedule(flooders[t], weights[t], maxConcurrent: 0);
            for (var i = 0; i < 3000; i++)
                h.Dispatcher.Enqueue(Sla(flooders[t], $"r{flooders[t]}", $"n{i}"));
        }
        for (var i = 0; i < 11; i++)
            Next(h, e);

        h.Dispatcher.Enqueue(Sla("quiet", "rq", "only"));
        var waited = 0;
        while (Next(h, e) != "rq:only:1")
            waited++;

        Assert.True(waited <= weights.Sum(), $"waited {waited}, bound {weights.Sum()}");
    }

    [Fact]
    public void An_idle_tenant_banks_no_credit()
    {
        var (h, e) = BusyExecutor();
        h.Dispatcher.SetTenantSchedule("a", 3, maxConcurrent: 0);
        for (var i = 0; i < 200; i++)
            h.Dispatcher.Enqueue(Sla("b", "rb", $"n{i}"));
        // b runs alone for a long time while a is idle.
        for (var i = 0; i < 100; i++)
            Assert.StartsWith("rb:", Next(h, e), StringComparison.Ordinal);

        for (var i = 0; i < 50; i++)
            h.Dispatcher.Enqueue(Sla("a", "ra", $"n{i}"));
        var next = Enumerable.Range(0, 24).Select(_ => Next(h, e).StartsWith("ra:", StringComparison.Ordinal)).ToArray();

        // a gets its 3:1 share from now on, never a catch-up burst for the time it was idle.
        Assert.Equal(18, next.Count(isA => isA));
        Assert.True(LongestRun(next, true) <= 3);
    }

    [Fact]
    public void A_weight_change_applies_from_the_tenants_next_turn()
    {
        var (h, e) = BusyExecutor();
        for (var i = 0; i < 500; i++)
        {
            h.Dispatcher.Enqueue(Sla("a", "ra", $"n{i}"));
            h.Dispatcher.Enqueue(Sla("b", "rb", $"n{i}"));
        }
        var equal = Enumerable.Range(0, 100).Select(_ => Next(h, e).StartsWith("ra:", StringComparison.Ordinal)).Count(isA => isA);
        Assert.Equal(50, equal);

        h.Dispatcher.SetTenantSchedule("a", 4, maxConcurrent: 0);
        Next(h, e);
        Next(h, e);
        var weighted = Enumerable.Range(0, 100).Select(_ => Next(h, e).StartsWith("ra:", StringComparison.Ordinal)).Count(isA => isA);
        Assert.InRange(weighted, 78, 82);
    }

    [Fact]
    public void Weights_are_one_to_a_thousand()
    {
        var h = new DispatchHarness();
        Assert.Throws<ArgumentOutOfRangeException>(() => h.Dispatcher.SetTenantSchedule("a", 0, maxConcurrent: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => h.Dispatcher.SetTenantSchedule("a", TaskDispatcher.MaxWeight + 1, maxConcurrent: 0));
        h.Dispatcher.SetTenantSchedule("a", TaskDispatcher.MaxWeight, maxConcurrent: 0);
    }

    [Fact]
    public void Priority_is_strict_across_tenants_and_fair_within_a_level()
    {
        var (h, e) = BusyExecutor();
        for (var i = 0; i < 4; i++)
        {
            h.Dispatcher.Enqueue(Sla("a", "ra", $"low{i}", SlaPriority.Low));
            h.Dispatcher.Enqueue(Sla("b", "rb", $"high{i}", SlaPriority.High));
            h.Dispatcher.Enqueue(Sla("c", "rc", $"high{i}", SlaPriority.High));
        }

        var order = Enumerable.Range(0, 12).Select(_ => Next(h, e)).ToArray();

        Assert.All(order.Take(8), id => Assert.Contains(":high", id, StringComparison.Ordinal));
        Assert.Equal(4, order.Take(8).Count(id => id.StartsWith("rb:", StringComparison.Ordinal)));
        Assert.All(order.Skip(8), id => Assert.StartsWith("ra:low", id, StringComparison.Ordinal));
    }

    [Fact]
    public void A_queue_whose_head_is_cancelled_moves_to_the_level_of_its_new_head()
    {
        var (h, e) = BusyExecutor();
        h.Dispatcher.Enqueue(Sla("a", "cancelled", "n", SlaPriority.Critical));
        h.Dispatcher.Enqueue(Sla("a", "ra", "low", SlaPriority.Low));
        h.Dispatcher.Enqueue(Sla("b", "rb", "normal"));
        h.RemoveRun("cancelled");

        Assert.Equal("rb:normal:1", Next(h, e));
        Assert.Equal("ra:low:1", Next(h, e));
        h.AssertNoViolations();
    }

    [Fact]
    public void A_tenant_at_its_concurrency_limit_keeps_its_tasks_queued_and_others_go_ahead()
    {
        var h = new DispatchHarness();
        h.Dispatcher.SetTenantSchedule("capped", weight: 1, maxConcurrent: 2);
        for (var i = 0; i < 5; i++)
            h.Dispatcher.Enqueue(Sla("capped", "rc", $"n{i}"));
        var e = h.Register("system", "pool", slots: 10, ["x"], shared: true);
        Assert.Equal(2, e.Received.Count);
        Assert.Equal(3, h.Dispatcher.Depth("capped", "x"));

        // Another tenant is not held back by it.
        h.Dispatcher.Enqueue(Sla("free", "rf", "n0"));
        Assert.Equal(3, e.Received.Count);

        // A lease of the capped tenant ends: exactly one more of its tasks goes.
        h.Release(e.Received[0].TaskId);
        Assert.Equal(4, e.Received.Count);
        Assert.Equal(2, h.Dispatcher.Depth("capped", "x"));

        // Raising the limit releases the rest at once; nothing was dropped.
        h.Dispatcher.SetTenantSchedule("capped", weight: 1, maxConcurrent: 0);
        Assert.Equal(6, e.Received.Count);
        Assert.Equal(0, h.Dispatcher.Depth("capped", "x"));
        Assert.Equal(5, e.Received.Count(t => t.TenantId == "capped"));
        h.AssertNoViolations();
    }

    [Fact]
    public void An_own_executor_also_respects_the_tenants_concurrency_limit()
    {
        var h = new DispatchHarness();
        h.Dispatcher.SetTenantSchedule("capped", weight: 1, maxConcurrent: 1);
        var e = h.Register("capped", "own", slots: 4, ["x"]);
        h.Dispatcher.Enqueue(Sla("capped", "r", "a"));
        h.Dispatcher.Enqueue(Sla("capped", "r", "b"));
        Assert.Single(e.Received);
        h.Expire();
        h.Time.Advance(TimeSpan.FromMinutes(1));
        var expired = h.Expire();
        Assert.Single(expired);
        // The expired lease freed the tenant's only concurrency slot: the next queued task went out.
        Assert.Equal(2, e.Received.Count);
        Assert.Equal("r:b:1", e.Received[1].TaskId);
        h.AssertNoViolations();
    }

    private static int LongestRun(bool[] values, bool value)
    {
        int longest = 0, current = 0;
        foreach (var v in values)
        {
            current = v == value ? current + 1 : 0;
            longest = Math.Max(longest, current);
        }
        return longest;
    }
}
