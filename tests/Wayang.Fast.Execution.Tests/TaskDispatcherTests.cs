using Microsoft.Extensions.Time.Testing;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Execution.Dispatch;
using Wayang.Fast.Execution.Engine;

namespace Wayang.Fast.Execution.Tests;

public sealed class TaskDispatcherTests
{
    [Fact]
    public void Tasks_of_one_queue_are_pushed_in_fifo_order()
    {
        var h = new DispatchHarness();
        h.Enqueue("a", "x", "r1", "n1");
        h.Enqueue("a", "x", "r1", "n2");
        h.Enqueue("a", "x", "r2", "n3");
        Assert.Equal(3, h.Dispatcher.Depth("a", "x"));

        var e = h.Register("a", "e1", slots: 10, ["x"]);

        Assert.Equal(["r1:n1:1", "r1:n2:1", "r2:n3:1"], e.ReceivedIds);
        Assert.Equal(0, h.Dispatcher.Depth("a", "x"));
        Assert.Equal(3, h.Dispatcher.Dispatched);
        h.AssertNoViolations();
    }

    [Fact]
    public void A_front_enqueue_goes_before_older_work()
    {
        var h = new DispatchHarness();
        h.Enqueue("a", "x", "r1", "n1");
        h.Enqueue("a", "x", "r1", "n2");
        h.Enqueue("a", "x", "r0", "redelivered", front: true);

        var e = h.Register("a", "e1", slots: 10, ["x"]);

        Assert.Equal(["r0:redelivered:1", "r1:n1:1", "r1:n2:1"], e.ReceivedIds);
    }

    [Fact]
    public void A_front_enqueue_goes_at_once_even_when_the_old_head_is_blocked()
    {
        var h = new DispatchHarness();
        var e = h.Register("a", "e", slots: 2, ["x"]);
        h.Enqueue("a", "x", "r", "blocked", labels: new() { ["gpu"] = "1" });
        h.Enqueue("a", "x", "r0", "redelivered", front: true);
        Assert.Equal(["r0:redelivered:1"], e.ReceivedIds);
        Assert.Equal(1, h.Dispatcher.Depth("a", "x"));
    }

    [Fact]
    public void An_executor_gets_only_its_types_and_tasks_whose_labels_it_carries()
    {
        var h = new DispatchHarness();
        var plain = h.Register("a", "plain", slots: 10, ["x"]);
        var gpu = h.Register("a", "gpu", slots: 10, ["x", "y"], labels: new() { ["gpu"] = "a100", ["zone"] = "eu" });
        var otherGpu = h.Register("a", "h100", slots: 10, ["x"], labels: new() { ["gpu"] = "h100" });

        h.Enqueue("a", "y", "r", "only-gpu-serves-y");
        h.Enqueue("a", "x", "r", "needs-a100", labels: new() { ["gpu"] = "a100" });
        h.Enqueue("a", "z", "r", "nobody-serves-z");
        h.Enqueue("a", "x", "r", "needs-tpu", labels: new() { ["tpu"] = "v5" });

        Assert.Empty(plain.Received);
        Assert.Empty(otherGpu.Received);
        Assert.Equal(["r:only-gpu-serves-y:1", "r:needs-a100:1"], gpu.ReceivedIds);
        Assert.Equal(1, h.Dispatcher.Depth("a", "z"));
        Assert.Equal(1, h.Dispatcher.Depth("a", "x"));

        // A later executor with the label picks the waiting task up.
        var tpu = h.Register("a", "tpu", slots: 1, ["x"], labels: new() { ["tpu"] = "v5" });
        Assert.Equal(["r:needs-tpu:1"], tpu.ReceivedIds);
        h.AssertNoViolations();
    }

    [Fact]
    public void A_labelled_task_behind_the_head_of_its_queue_waits_its_turn_and_an_unlabelled_head_goes_to_anyone()
    {
        var h = new DispatchHarness();
        h.Enqueue("a", "x", "r", "gpu-1", labels: new() { ["gpu"] = "1" });
        h.Enqueue("a", "x", "r", "plain-1");
        var plain = h.Register("a", "plain", slots: 5, ["x"]);
        // FIFO per queue: the plain task waits behind the labelled head.
        Assert.Empty(plain.Received);

        var gpu = h.Register("a", "gpu", slots: 1, ["x"], labels: new() { ["gpu"] = "1" });
        Assert.Equal(["r:gpu-1:1"], gpu.ReceivedIds);
        // The head went, so the next head (unlabelled) goes to the executor that could not take the old one.
        Assert.Equal(["r:plain-1:1"], plain.ReceivedIds);
        h.AssertNoViolations();
    }

    [Fact]
    public void A_tenant_executor_serves_only_its_tenant_and_a_shared_one_serves_all()
    {
        var h = new DispatchHarness();
        var mine = h.Register("a", "mine", slots: 10, ["x"]);
        h.Enqueue("b", "x", "rb", "n");
        Assert.Empty(mine.Received);
        Assert.Equal(1, h.Dispatcher.Depth("b", "x"));

        var shared = h.Register("system", "pool", slots: 10, ["x"], shared: true);
        Assert.Equal(["rb:n:1"], shared.ReceivedIds);

        // A non-shared executor of the system tenant is just another tenant's executor.
        var systemOwn = h.Register("system", "own", slots: 10, ["y"]);
        h.Enqueue("b", "y", "rb", "m");
        Assert.Empty(systemOwn.Received);
        Assert.Equal(1, h.Dispatcher.Depth("b", "y"));
        h.AssertNoViolations();
    }

    [Fact]
    public void Pushes_never_exceed_credit_or_slots_and_resume_when_either_rises()
    {
        var h = new DispatchHarness();
        var e = h.Register("a", "e", slots: 2, ["x"]);
        for (var i = 0; i < 10; i++)
            h.Enqueue("a", "x", "r", $"n{i}");
        Assert.Equal(2, e.Received.Count);

        // A freed slot without credit pushes nothing (the executor returns credit separately).
        h.Release(e.Received[0].TaskId);
        Assert.Equal(2, e.Received.Count);
        e.Grant(1);
        Assert.Equal(3, e.Received.Count);

        // Credit without a free slot pushes nothing.
        e.Grant(5);
        Assert.Equal(3, e.Received.Count);
        Assert.Equal(2, e.InFlight);

        // More slots: up to min(credit 5, slots 5 - in flight 2) = 3 more.
        e.SetSlots(5);
        Assert.Equal(6, e.Received.Count);
        Assert.Equal(5, e.InFlight);

        // Fewer slots than in flight: nothing new until in flight drops below.
        e.SetSlots(2);
        e.Grant(10);
        h.Release(e.Received[1].TaskId);
        h.Release(e.Received[2].TaskId);
        h.Release(e.Received[3].TaskId);
        Assert.Equal(6, e.Received.Count);
        h.Release(e.Received[4].TaskId);
        Assert.Equal(7, e.Received.Count);
        Assert.Equal(2, e.InFlight);

        var stat = Assert.Single(h.Dispatcher.Stats("a").Executors);
        Assert.Equal((2, 2, e.Credit), (stat.Slots, stat.InFlight, stat.Credit));
        h.AssertNoViolations();
    }

    [Fact]
    public void Release_frees_the_slot_once_and_only_for_a_leased_task()
    {
        var h = new DispatchHarness();
        var e = h.Register("a", "e", slots: 1, ["x"]);
        h.Enqueue("a", "x", "r", "n1");
        h.Enqueue("a", "x", "r", "n2");
        Assert.True(h.Dispatcher.TryGetLease("r:n1:1", out var holder));
        Assert.Equal("e", holder);
        Assert.False(h.Dispatcher.TryGetLease("r:n2:1", out _));

        Assert.False(h.Dispatcher.Release("r:n2:1")); // queued, not leased
        Assert.False(h.Dispatcher.Release("nope"));
        Assert.True(h.Release("r:n1:1"));
        Assert.False(h.Dispatcher.Release("r:n1:1"));
        Assert.False(h.Dispatcher.TryGetLease("r:n1:1", out _));

        e.Grant(1);
        Assert.Equal(["r:n1:1", "r:n2:1"], e.ReceivedIds);
        h.AssertNoViolations();
    }

    [Fact]
    public void Heartbeat_renews_leases_and_expiry_returns_tasks_and_frees_slots()
    {
        var h = new DispatchHarness();
        var e = h.Register("a", "e", slots: 2, ["x"]);
        h.Enqueue("a", "x", "r", "n1");
        var start = h.NowMs;
        Assert.Equal(start + 30_000, h.Dispatcher.NextLeaseExpiryMs);
        Assert.Equal(start + 30_000, e.Received[0].LeaseExpiresAtMs);

        h.Time.Advance(TimeSpan.FromSeconds(20));
        h.Enqueue("a", "x", "r", "n2");
        var (renewed, expiresAt) = h.Heartbeat(e);
        Assert.Equal(2, renewed);
        Assert.Equal(h.NowMs + 30_000, expiresAt);

        // Past the first lease's original expiry: renewed, nothing expires, and the timer moves on.
        h.Time.Advance(TimeSpan.FromSeconds(20));
        Assert.Empty(h.Expire());
        Assert.Equal(expiresAt, h.Dispatcher.NextLeaseExpiryMs);
        Assert.Equal(0, h.Dispatcher.LeaseExpirations);

        h.Time.Advance(TimeSpan.FromSeconds(11));
        var expired = h.Expire();
        Assert.Equal(["r:n1:1", "r:n2:1"], expired.Select(t => t.TaskId).Order());
        Assert.Equal(2, h.Dispatcher.LeaseExpirations);
        Assert.Equal(long.MaxValue, h.Dispatcher.NextLeaseExpiryMs);
        Assert.Equal(0, e.InFlight);
        var stat = Assert.Single(h.Dispatcher.Stats(null).Queues);
        Assert.Equal(0, stat.Leased);

        // The engine requeues the same attempt at the front; it goes out again when credit comes back.
        foreach (var task in expired)
            h.Dispatcher.Enqueue(task, front: true);
        Assert.Equal(2, h.Dispatcher.Depth("a", "x"));
        e.Grant(2);
        Assert.Equal(4, e.Received.Count);
        Assert.Equal(0, h.Dispatcher.Depth("a", "x"));
        h.AssertNoViolations();
    }

    [Fact]
    public void A_slot_freed_by_expiry_takes_the_next_queued_task_when_credit_allows()
    {
        var h = new DispatchHarness();
        var e = h.Register("a", "e", slots: 1, ["x"]);
        h.Enqueue("a", "x", "r", "n1");
        h.Enqueue("a", "x", "r", "n2");
        e.Grant(1);
        Assert.Equal(["r:n1:1"], e.ReceivedIds);

        h.Time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(["r:n1:1"], h.Expire().Select(t => t.TaskId));
        Assert.Equal(["r:n1:1", "r:n2:1"], e.ReceivedIds);
        h.AssertNoViolations();
    }

    [Fact]
    public void Expiry_only_takes_the_leases_that_are_due()
    {
        var h = new DispatchHarness();
        var e = h.Register("a", "e", slots: 5, ["x"]);
        h.Enqueue("a", "x", "r", "early");
        h.Time.Advance(TimeSpan.FromSeconds(10));
        h.Enqueue("a", "x", "r", "late");
        h.Time.Advance(TimeSpan.FromSeconds(25));

        Assert.Equal(["r:early:1"], h.Expire().Select(t => t.TaskId));
        Assert.True(h.Dispatcher.TryGetLease("r:late:1", out _));
        Assert.Equal(1, e.InFlight);
        h.AssertNoViolations();
    }

    [Fact]
    public void Unregister_returns_the_held_tasks_and_the_id_can_register_again()
    {
        var h = new DispatchHarness();
        var e = h.Register("a", "e", slots: 3, ["x"]);
        h.Enqueue("a", "x", "r", "n1");
        h.Enqueue("a", "x", "r", "n2");
        h.Release("r:n1:1");

        var held = h.Unregister(e);
        Assert.Equal(["r:n2:1"], held.Select(t => t.TaskId));
        Assert.False(h.Dispatcher.TryGetLease("r:n2:1", out _));
        Assert.Empty(h.Dispatcher.Stats(null).Executors);
        Assert.Empty(h.Dispatcher.Unregister(e.Handle));

        // Calls on a gone handle are ignored.
        h.Dispatcher.GrantCredit(e.Handle, 5);
        h.Dispatcher.SetSlots(e.Handle, 5);
        Assert.Equal(0, h.Dispatcher.Heartbeat(e.Handle).Renewed);

        foreach (var task in held)
            h.Dispatcher.Enqueue(task, front: true);
        var again = h.Register("a", "e", slots: 1, ["x"]);
        Assert.Equal(["r:n2:1"], again.ReceivedIds);
        h.AssertNoViolations();
    }

    [Fact]
    public void RemoveRun_drops_queued_tasks_and_leases_and_the_freed_slot_serves_other_runs()
    {
        var h = new DispatchHarness();
        var e = h.Register("a", "e", slots: 2, ["x"]);
        h.Enqueue("a", "x", "doomed", "n1");
        h.Enqueue("a", "x", "doomed", "n2");
        h.Enqueue("a", "x", "doomed", "n3");
        h.Enqueue("a", "x", "other", "n1");
        h.Enqueue("a", "x", "doomed", "n4");
        h.Enqueue("a", "x", "other", "n2");
        Assert.Equal(4, h.Dispatcher.Depth("a", "x"));

        var leased = h.RemoveRun("doomed");
        Assert.Equal(["doomed:n1:1", "doomed:n2:1"], leased.Order());
        Assert.Equal(2, h.Dispatcher.Depth("a", "x"));
        Assert.Empty(h.RemoveRun("doomed"));
        Assert.Equal(0, e.InFlight);

        e.Grant(2);
        Assert.Equal(["doomed:n1:1", "doomed:n2:1", "other:n1:1", "other:n2:1"], e.ReceivedIds);
        Assert.Equal(0, h.Dispatcher.Depth("a", "x"));
        h.AssertNoViolations();
    }

    [Fact]
    public void RemoveRun_of_the_blocking_head_lets_the_next_head_go()
    {
        var h = new DispatchHarness();
        var e = h.Register("a", "e", slots: 2, ["x"]);
        h.Enqueue("a", "x", "doomed", "n", labels: new() { ["gpu"] = "1" });
        h.Enqueue("a", "x", "other", "n");
        Assert.Empty(e.Received);

        h.RemoveRun("doomed");
        Assert.Equal(["other:n:1"], e.ReceivedIds);
        h.AssertNoViolations();
    }

    [Fact]
    public void A_failed_push_keeps_the_task_queued_and_another_executor_takes_it()
    {
        var h = new DispatchHarness();
        var broken = h.Register("a", "broken", slots: 5, ["x"]);
        broken.Fail = true;
        h.Enqueue("a", "x", "r", "n1");
        Assert.Equal(1, h.Dispatcher.Depth("a", "x"));
        Assert.False(h.Dispatcher.TryGetLease("r:n1:1", out _));
        Assert.Equal(0, h.Dispatcher.Dispatched);
        Assert.Equal(1, broken.FailedPushes);

        // Closed until the server unregisters it: no more tries, even with new credit.
        broken.Grant(5);
        h.Enqueue("a", "x", "r", "n2");
        Assert.Equal(1, broken.FailedPushes);

        var good = h.Register("a", "good", slots: 5, ["x"]);
        Assert.Equal(["r:n1:1", "r:n2:1"], good.ReceivedIds);
        Assert.Empty(h.Unregister(broken));
        h.AssertNoViolations();
    }

    [Fact]
    public void A_failed_push_falls_through_to_the_next_executor_at_once()
    {
        var h = new DispatchHarness();
        var first = h.Register("a", "first", slots: 5, ["x"]);
        var second = h.Register("a", "second", slots: 5, ["x"]);
        first.Fail = true;
        h.Enqueue("a", "x", "r", "n1");
        Assert.Equal(["r:n1:1"], second.ReceivedIds);
        Assert.Equal(1, first.FailedPushes);
    }

    [Fact]
    public void A_stale_task_is_dropped_and_the_queue_moves_on()
    {
        var h = new DispatchHarness();
        h.Stale.Add("r:gone:1");
        h.Enqueue("a", "x", "r", "gone");
        h.Enqueue("a", "x", "r", "live");
        var e = h.Register("a", "e", slots: 1, ["x"]);
        Assert.Equal(["r:live:1"], e.ReceivedIds);
        Assert.Equal(0, h.Dispatcher.Depth("a", "x"));
        Assert.Equal(1, h.Dispatcher.Dispatched);
    }

    [Fact]
    public void A_shared_executor_takes_tenants_round_robin()
    {
        var h = new DispatchHarness();
        for (var i = 0; i < 5; i++)
            h.Enqueue("t1", "x", "r1", $"n{i}");
        for (var i = 0; i < 5; i++)
            h.Enqueue("t2", "x", "r2", $"n{i}");
        for (var i = 0; i < 2; i++)
            h.Enqueue("t3", "x", "r3", $"n{i}");

        var e = h.Register("system", "pool", slots: 1, ["x"], shared: true);
        while (e.Received.Count < 12)
        {
            var before = e.Received.Count;
            h.Release(e.Received[^1].TaskId);
            e.Grant(1);
            Assert.Equal(before + 1, e.Received.Count);
        }

        Assert.Equal(["t1", "t2", "t3", "t1", "t2", "t3", "t1", "t2", "t1", "t2", "t1", "t2"], e.Received.Select(t => t.TenantId));
        h.AssertNoViolations();
    }

    [Fact]
    public void The_least_loaded_executor_is_chosen()
    {
        var h = new DispatchHarness();
        var big = h.Register("a", "big", slots: 8, ["x"]);
        var small = h.Register("a", "small", slots: 2, ["x"]);
        for (var i = 0; i < 10; i++)
            h.Enqueue("a", "x", "r", $"n{i}");
        // Loads stay proportional to slots: 8 and 2.
        Assert.Equal(8, big.InFlight);
        Assert.Equal(2, small.InFlight);
        // n0: both idle, the tie goes to the earlier registered; n1: small (0/2) is less loaded than big (1/8).
        Assert.Equal("big", h.HolderOf("r:n0:1"));
        Assert.Equal("small", h.HolderOf("r:n1:1"));

        h.Register("system", "pool", slots: 4, ["x"], shared: true);
        h.Release("r:n0:1");
        big.Grant(1);
        // big is at 7/8 with capacity; shared at 0/4 gets new work first.
        h.Enqueue("a", "x", "r", "n10");
        Assert.Equal("pool", h.HolderOf("r:n10:1"));
        h.AssertNoViolations();
    }

    [Fact]
    public void A_task_id_already_queued_or_leased_is_not_added_again()
    {
        var h = new DispatchHarness();
        h.Enqueue("a", "x", "r", "n");
        h.Enqueue("a", "x", "r", "n");
        Assert.Equal(1, h.Dispatcher.Depth("a", "x"));
        var e = h.Register("a", "e", slots: 5, ["x"]);
        h.Enqueue("a", "x", "r", "n", front: true);
        Assert.Equal(["r:n:1"], e.ReceivedIds);
        Assert.Equal(0, h.Dispatcher.Depth("a", "x"));
    }

    [Fact]
    public void Registration_is_validated_and_ids_are_unique_per_tenant()
    {
        var h = new DispatchHarness();
        h.Register("a", "e", slots: 1, ["x"]);
        var dup = Assert.Throws<WayangException>(() => h.Register("a", "e", slots: 1, ["y"]));
        Assert.Equal(ErrorCode.ExecutorExists, dup.Code);
        // Another tenant's executor with the same id is a different executor.
        h.Register("b", "e", slots: 1, ["x"]);

        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<WayangException>(() => h.Register("a", "s0", slots: 0, ["x"])).Code);
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<WayangException>(() => h.Register("a", "s1", slots: 10_001, ["x"])).Code);
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<WayangException>(() => h.Register("a", "t0", slots: 1, [])).Code);
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<WayangException>(() => h.Register("a", "t1", slots: 1, ["Bad Type"])).Code);
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<WayangException>(() => h.Register("a", "", slots: 1, ["x"])).Code);
        h.Register("a", "max", slots: 10_000, ["x"]);

        var e = h.Executors["a/e"];
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<WayangException>(() => h.Dispatcher.SetSlots(e.Handle, 0)).Code);
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<WayangException>(() => h.Dispatcher.SetSlots(e.Handle, 10_001)).Code);
    }

    [Fact]
    public void Stats_show_a_tenant_its_queues_its_executors_and_the_shared_ones()
    {
        var h = new DispatchHarness();
        h.Register("a", "ea", slots: 1, ["x"]);
        h.Register("b", "eb", slots: 1, ["x"]);
        h.Register("system", "pool", slots: 1, ["y"], shared: true);
        h.Enqueue("a", "x", "r", "n1");
        h.Enqueue("a", "x", "r", "n2");
        h.Enqueue("b", "z", "rb", "n1");

        var (queues, executors) = h.Dispatcher.Stats("a");
        var q = Assert.Single(queues);
        Assert.Equal(new QueueStat("a", "x", 1, h.Options.MaxQueueDepth, 1), q);
        Assert.Equal(["ea", "pool"], executors.Select(e => e.ExecutorId).Order());
        var shared = executors.Single(e => e.ExecutorId == "pool");
        Assert.True(shared.Shared);
        Assert.Equal(["y"], shared.ExecutorTypes);

        var all = h.Dispatcher.Stats(null);
        Assert.Equal(2, all.Queues.Count);
        Assert.Equal(3, all.Executors.Count);
    }

    [Fact]
    public void An_executor_serving_several_types_takes_from_each()
    {
        var h = new DispatchHarness();
        for (var i = 0; i < 3; i++)
        {
            h.Enqueue("a", "x", "r", $"x{i}");
            h.Enqueue("a", "y", "r", $"y{i}");
        }
        var e = h.Register("a", "e", slots: 6, ["x", "y"]);
        Assert.Equal(6, e.Received.Count);
        Assert.Equal(0, h.Dispatcher.Depth("a", "x") + h.Dispatcher.Depth("a", "y"));
        h.AssertNoViolations();
    }

    // Producers and executor workers on several threads: every task goes out exactly once and no executor is ever
    // pushed past its credit or slots (the workers return the slot and the credit before telling the dispatcher).
    [Fact]
    public async Task Concurrent_producers_and_executors_dispatch_every_task_exactly_once()
    {
        const int Producers = 4;
        const int PerProducer = 3000;
        const int Total = Producers * PerProducer;
        const int Slots = 8;
        var dispatcher = new TaskDispatcher(new ExecutionOptions(), TimeProvider.System, (task, _, expiresAt) => new TaskAssignment
        {
            Token = "token",
            TaskId = task.TaskId,
            TenantId = task.TenantId,
            RunId = task.RunId,
            WorkflowId = "wf",
            NodeId = task.NodeId,
            Attempt = task.Attempt,
            ExecutorType = task.ExecutorType,
            LeaseExpiresAtMs = expiresAt,
        });
        var channels = Enumerable.Range(0, 3).Select(_ => new ConcurrentChannel(Slots)).ToArray();
        // A shared executor and one of each tenant's own.
        var handles = new[]
        {
            dispatcher.Register("system", true, new ExecutorRegistration("shared", ["x"], Slots, new Dictionary<string, string>()), channels[0]),
            dispatcher.Register("t0", false, new ExecutorRegistration("own0", ["x"], Slots, new Dictionary<string, string>()), channels[1]),
            dispatcher.Register("t1", false, new ExecutorRegistration("own1", ["x"], Slots, new Dictionary<string, string>()), channels[2]),
        };
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<string, byte>();
        var duplicates = 0;
        var done = 0;
        var allDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));

        var workers = channels.Select((channel, i) => Task.Run(async () =>
        {
            while (await channel.Pushed.Reader.WaitToReadAsync(timeout.Token))
            {
                while (channel.Pushed.Reader.TryRead(out var assignment))
                {
                    if (!seen.TryAdd(assignment.TaskId, 0))
                        Interlocked.Increment(ref duplicates);
                    Interlocked.Decrement(ref channel.InFlight);
                    if (!dispatcher.Release(assignment.TaskId))
                        channel.Violations.Enqueue($"release of {assignment.TaskId} failed");
                    Interlocked.Increment(ref channel.Credit);
                    dispatcher.GrantCredit(handles[i], 1);
                    if (Interlocked.Increment(ref done) == Total)
                        allDone.TrySetResult();
                }
            }
        })).ToArray();
        var producers = Enumerable.Range(0, Producers).Select(p => Task.Run(() =>
        {
            for (var i = 0; i < PerProducer; i++)
                dispatcher.Enqueue(DispatchHarness.Task($"t{p % 2}", "x", $"p{p}-r{i / 10}", $"n{i}"));
        })).ToArray();

        await Task.WhenAll(producers).WaitAsync(timeout.Token);
        await allDone.Task.WaitAsync(timeout.Token);
        foreach (var channel in channels)
            channel.Pushed.Writer.Complete();
        await Task.WhenAll(workers).WaitAsync(timeout.Token);

        Assert.Equal(0, duplicates);
        Assert.Equal(Total, seen.Count);
        Assert.Equal(Total, dispatcher.Dispatched);
        Assert.Empty(channels.SelectMany(c => c.Violations));
        var (queues, executors) = dispatcher.Stats(null);
        Assert.All(queues, q => Assert.Equal((0, 0), (q.Depth, q.Leased)));
        Assert.All(executors, e => Assert.Equal(0, e.InFlight));
    }

    private sealed class ConcurrentChannel(int slots) : IExecutorChannel
    {
        public readonly System.Threading.Channels.Channel<TaskAssignment> Pushed = System.Threading.Channels.Channel.CreateUnbounded<TaskAssignment>();
        public readonly System.Collections.Concurrent.ConcurrentQueue<string> Violations = new();
        private readonly int _slots = slots;
        public int Credit = slots;
        public int InFlight;

        public bool TryPush(TaskAssignment task)
        {
            var inFlight = Interlocked.Increment(ref InFlight);
            var credit = Interlocked.Decrement(ref Credit);
            if (inFlight > _slots || credit < 0)
                Violations.Enqueue($"push of {task.TaskId} with {inFlight} in flight and credit {credit}");
            return Pushed.Writer.TryWrite(task);
        }
    }
}

// A dispatcher with a fake clock, a factory that can declare tasks stale, and executors whose channels check every
// push against a model of credit and slots kept on the test side.
internal sealed class DispatchHarness
{
    public readonly FakeTimeProvider Time = new(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));
    public readonly ExecutionOptions Options = new() { LeaseDuration = TimeSpan.FromSeconds(30) };
    public readonly TaskDispatcher Dispatcher;
    public readonly HashSet<string> Stale = [];
    // taskId -> the lease the model says exists.
    public readonly Dictionary<string, Held> Holders = [];
    public readonly Dictionary<string, TestExecutor> Executors = [];
    public readonly List<string> Violations = [];
    // Called with each task the factory sees (before the push) and each accepted push, for models that track
    // queue order.
    public Action<QueuedTask, bool>? OnFactory;
    public Action<TaskAssignment>? OnPush;

    public DispatchHarness() => Dispatcher = new TaskDispatcher(Options, Time, Assign);

    public long NowMs => Time.GetUtcNow().ToUnixTimeMilliseconds();

    public void Enqueue(string tenant, string type, string run, string node, Dictionary<string, string>? labels = null, bool front = false, int attempt = 1) =>
        Dispatcher.Enqueue(Task(tenant, type, run, node, labels, attempt), front);

    public static QueuedTask Task(string tenant, string type, string run, string node, Dictionary<string, string>? labels = null, int attempt = 1) => new()
    {
        TenantId = tenant,
        ExecutorType = type,
        RunId = run,
        NodeId = node,
        Attempt = attempt,
        TaskId = $"{run}:{node}:{attempt}",
        Labels = labels,
    };

    public TestExecutor Register(string tenant, string id, int slots, string[] types, bool shared = false, Dictionary<string, string>? labels = null)
    {
        // The model exists before Register returns: Register itself may push.
        var executor = new TestExecutor(this, tenant, id, slots);
        var handle = Dispatcher.Register(tenant, shared, new ExecutorRegistration(id, types, slots, labels ?? []), executor);
        executor.Handle = handle;
        Executors[$"{tenant}/{id}"] = executor;
        return executor;
    }

    // The model changes before each call: the dispatcher may push with the freed capacity before it returns.
    public bool Release(string taskId)
    {
        var held = Holders.Remove(taskId, out var holder);
        if (held)
            holder!.Executor.InFlight--;
        var released = Dispatcher.Release(taskId);
        if (released != held)
            Violations.Add($"release of {taskId}: dispatcher {released}, model {held}");
        return released;
    }

    public IReadOnlyList<QueuedTask> Expire()
    {
        var now = NowMs;
        var due = Holders.Where(kv => kv.Value.ExpiresAtMs <= now).Select(kv => kv.Key).ToHashSet();
        foreach (var taskId in due)
            Drop(taskId);
        var expired = Dispatcher.ExpireLeases(now);
        if (!due.SetEquals(expired.Select(t => t.TaskId)))
            Violations.Add($"expired [{string.Join(",", expired.Select(t => t.TaskId))}], model due [{string.Join(",", due)}]");
        return expired;
    }

    public (int Renewed, long ExpiresAtMs) Heartbeat(TestExecutor executor)
    {
        var result = Dispatcher.Heartbeat(executor.Handle);
        foreach (var held in Holders.Values.Where(h => h.Executor == executor))
            held.ExpiresAtMs = result.ExpiresAtMs;
        return result;
    }

    public IReadOnlyList<QueuedTask> Unregister(TestExecutor executor)
    {
        var mine = Holders.Where(kv => kv.Value.Executor == executor).Select(kv => kv.Key).ToHashSet();
        foreach (var taskId in mine)
            Drop(taskId);
        executor.Gone = true;
        var held = Dispatcher.Unregister(executor.Handle);
        if (!mine.SetEquals(held.Select(t => t.TaskId)))
            Violations.Add($"unregister of {executor.Id} returned [{string.Join(",", held.Select(t => t.TaskId))}], model [{string.Join(",", mine)}]");
        Executors.Remove($"{executor.Tenant}/{executor.Id}");
        return held;
    }

    public IReadOnlyList<string> RemoveRun(string runId)
    {
        var ofRun = Holders.Where(kv => kv.Value.Task.RunId == runId).Select(kv => kv.Key).ToHashSet();
        foreach (var taskId in ofRun)
            Drop(taskId);
        var leased = Dispatcher.RemoveRun(runId);
        if (!ofRun.SetEquals(leased))
            Violations.Add($"RemoveRun {runId} returned [{string.Join(",", leased)}], model [{string.Join(",", ofRun)}]");
        return leased;
    }

    public string? HolderOf(string taskId) => Holders.TryGetValue(taskId, out var held) ? held.Executor.Id : null;

    public void AssertNoViolations() => Assert.Empty(Violations);

    private void Drop(string taskId)
    {
        if (Holders.Remove(taskId, out var held))
            held.Executor.InFlight--;
    }

    private TaskAssignment? Assign(QueuedTask task, string executorId, long leaseExpiresAtMs)
    {
        var stale = Stale.Contains(task.TaskId);
        OnFactory?.Invoke(task, stale);
        if (stale)
            return null;
        return new TaskAssignment
        {
            Token = "token",
            TaskId = task.TaskId,
            TenantId = task.TenantId,
            RunId = task.RunId,
            WorkflowId = "wf",
            NodeId = task.NodeId,
            Attempt = task.Attempt,
            ExecutorType = task.ExecutorType,
            LeaseExpiresAtMs = leaseExpiresAtMs,
        };
    }

    internal sealed class Held(TestExecutor executor, TaskAssignment task)
    {
        public readonly TestExecutor Executor = executor;
        public readonly TaskAssignment Task = task;
        public long ExpiresAtMs;
    }

    internal sealed class TestExecutor(DispatchHarness harness, string tenant, string id, int slots) : IExecutorChannel
    {
        public ExecutorHandle Handle = null!;
        public readonly string Tenant = tenant;
        public readonly string Id = id;
        public int Slots = slots;
        public int Credit = slots;
        public int InFlight;
        public bool Fail;
        public bool Gone;
        public int FailedPushes;
        public readonly List<TaskAssignment> Received = [];

        public IEnumerable<string> ReceivedIds => Received.Select(t => t.TaskId);

        public bool TryPush(TaskAssignment task)
        {
            if (Fail)
            {
                FailedPushes++;
                return false;
            }
            if (Gone)
                harness.Violations.Add($"push of {task.TaskId} to unregistered {Id}");
            if (Credit <= 0 || InFlight >= Slots)
                harness.Violations.Add($"push of {task.TaskId} to {Id} with credit {Credit}, slots {Slots}, in flight {InFlight}");
            if (harness.Holders.TryGetValue(task.TaskId, out var other))
                harness.Violations.Add($"{task.TaskId} pushed to {Id} while leased to {other.Executor.Id}");
            Credit--;
            InFlight++;
            harness.Holders[task.TaskId] = new Held(this, task) { ExpiresAtMs = task.LeaseExpiresAtMs };
            Received.Add(task);
            harness.OnPush?.Invoke(task);
            return true;
        }

        public void Grant(int credits)
        {
            Credit += credits;
            harness.Dispatcher.GrantCredit(Handle, credits);
        }

        public void SetSlots(int slots)
        {
            Slots = slots;
            harness.Dispatcher.SetSlots(Handle, slots);
        }
    }
}
