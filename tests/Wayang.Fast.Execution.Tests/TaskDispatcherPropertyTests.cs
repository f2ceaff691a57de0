using CsCheck;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Dispatch;
using Wayang.Fast.Execution.Engine;

namespace Wayang.Fast.Execution.Tests;

// Random sequences of dispatcher operations against a model kept on the test side. After every operation:
// - no push exceeded min(credit, slots - in flight) and no task was leased twice at once (checked in TryPush);
// - every task the factory saw was the head of its queue in the model (priority, then deadline, then FIFO with
//   front redeliveries first);
// - queue depths and executor credit / in-flight match the model;
// - no queue head waits while a live executor with capacity could take it (so nothing is ever stranded).
// At the end, executors with room for everything are added and every queue must drain.
public sealed class TaskDispatcherPropertyTests
{
    private static readonly string[] Tenants = ["a", "b"];
    private static readonly SlaPriority[] Priorities = [SlaPriority.Unspecified, SlaPriority.High, SlaPriority.Low];
    private static readonly string[] Types = ["x", "y"];
    private static readonly string[][] TypeSets = [["x"], ["y"], ["x", "y"]];
    private static readonly Dictionary<string, string>?[] TaskLabels = [null, new() { ["zone"] = "1" }, new() { ["zone"] = "2" }];
    private static readonly Dictionary<string, string>[] ExecutorLabels =
        [[], new() { ["zone"] = "1" }, new() { ["zone"] = "2" }, new() { ["zone"] = "1", ["gpu"] = "yes" }];

    [Fact]
    public void Random_operations_keep_the_dispatcher_invariants()
    {
        Gen.Select(Gen.Int[0, 12], Gen.Int[0, 99], Gen.Int[0, 99], Gen.Int[0, 99]).Array[1, 80]
            .Sample(ops => new Scenario().Run(ops), iter: 500);
    }

    private sealed class Scenario
    {
        private readonly DispatchHarness _h = new();
        private readonly Dictionary<(string Tenant, string Type), ModelQueue> _queues = [];
        private readonly DispatchHarness.TestExecutor?[] _slots = new DispatchHarness.TestExecutor?[6];
        private readonly Dictionary<DispatchHarness.TestExecutor, (bool Shared, string[] Types, Dictionary<string, string> Labels)> _config = [];
        private int _counter;
        // Per-tenant concurrency limits set so far (0 = none).
        private readonly Dictionary<string, int> _caps = [];
        private int _generation;

        public Scenario()
        {
            foreach (var tenant in Tenants)
            {
                foreach (var type in Types)
                    _queues[(tenant, type)] = new ModelQueue();
            }
            _h.OnFactory = (task, stale) =>
            {
                var queue = _queues[(task.TenantId, task.ExecutorType)];
                if (queue.First?.TaskId != task.TaskId)
                    _h.Violations.Add($"factory saw {task.TaskId}, the model head is {queue.First?.TaskId}");
                else if (stale)
                    queue.RemoveFirst();
            };
            _h.OnPush = assignment =>
            {
                // A push never takes a tenant past its concurrency limit (Holders already counts this one).
                if (_caps.GetValueOrDefault(assignment.TenantId) is var cap and > 0 && LeasedOf(assignment.TenantId) > cap)
                    _h.Violations.Add($"pushed {assignment.TaskId} with {LeasedOf(assignment.TenantId)} leased, limit {cap}");
                var queue = _queues[(assignment.TenantId, assignment.ExecutorType)];
                if (queue.First?.TaskId == assignment.TaskId)
                    queue.RemoveFirst();
                else
                    _h.Violations.Add($"pushed {assignment.TaskId}, the model head is {queue.First?.TaskId}");
            };
        }

        public void Run((int Kind, int A, int B, int C)[] ops)
        {
            foreach (var (kind, a, b, c) in ops)
            {
                Apply(kind, a, b, c);
                Check($"after op {kind}({a},{b},{c})");
            }

            // Give everything room: failed connections are unregistered (their tasks requeued), held tasks finish,
            // and shared executors that carry every label combination a task can ask for join.
            foreach (var executor in _slots.Where(e => e is not null && e.Fail).ToList())
                Unregister(Array.IndexOf(_slots, executor));
            foreach (var tenant in Tenants)
            {
                _caps[tenant] = 0;
                _h.Dispatcher.SetTenantSchedule(tenant, 1, 0);
            }
            foreach (var taskId in _h.Holders.Keys.ToList())
                _h.Release(taskId);
            _h.Register("system", "final-1", slots: 10_000, ["x", "y"], shared: true, labels: new() { ["zone"] = "1" });
            _h.Register("system", "final-2", slots: 10_000, ["x", "y"], shared: true, labels: new() { ["zone"] = "2" });
            Check("at the end");
            foreach (var ((tenant, type), queue) in _queues)
            {
                Assert.Equal(0, queue.Count);
                Assert.Equal(0, _h.Dispatcher.Depth(tenant, type));
            }
        }

        private void Apply(int kind, int a, int b, int c)
        {
            switch (kind)
            {
                case 0 or 1 or 2:
                {
                    var task = DispatchHarness.Task(Tenants[a % 2], Types[b % 2], $"r{c % 4}", $"n{_counter++}", TaskLabels[b / 2 % 3]);
                    // Random SLA: a third each of no tag, High, Low; deadlines on some (a few equal, to exercise ties).
                    task = new QueuedTask
                    {
                        TenantId = task.TenantId, ExecutorType = task.ExecutorType, RunId = task.RunId, NodeId = task.NodeId,
                        Attempt = task.Attempt, TaskId = task.TaskId, Labels = task.Labels,
                        Priority = Priorities[(a / 2) % 3],
                        DeadlineAtMs = (a / 6 % 3) switch { 0 => 0, 1 => 1_000 + (c % 3), _ => 500 + c },
                    };
                    if (_counter % 11 == 5)
                        _h.Stale.Add(task.TaskId);
                    Enqueue(task, front: c % 5 == 0);
                    break;
                }
                case 3:
                {
                    var index = a % _slots.Length;
                    if (_slots[index] is not null)
                        break;
                    // Slot 0 and 3: tenant a; 1 and 4: tenant b; 2 and 5: shared.
                    var shared = index % 3 == 2;
                    var tenant = shared ? "system" : Tenants[index % 3];
                    var types = TypeSets[c % 3];
                    var labels = ExecutorLabels[c / 3 % 4];
                    var id = $"e{index}-{_generation++}";
                    var executor = _h.Register(tenant, id, 1 + (b % 4), types, shared, labels);
                    _slots[index] = executor;
                    _config[executor] = (shared, types, labels);
                    break;
                }
                case 4:
                    Unregister(a % _slots.Length);
                    break;
                case 5:
                    _slots[a % _slots.Length]?.Grant(1 + (b % 3));
                    break;
                case 6:
                    _slots[a % _slots.Length]?.SetSlots(1 + (b % 4));
                    break;
                case 7:
                    if (_h.Holders.Count > 0)
                        _h.Release(_h.Holders.Keys.ElementAt(a % _h.Holders.Count));
                    break;
                case 8:
                    _h.Time.Advance(TimeSpan.FromSeconds(a % 40));
                    foreach (var task in _h.Expire())
                        Enqueue(task, front: true);
                    break;
                case 9:
                    if (_slots[a % _slots.Length] is { } beating)
                        _h.Heartbeat(beating);
                    break;
                case 10:
                {
                    // The model first: RemoveRun dispatches what the removed heads uncover before it returns.
                    var run = $"r{a % 4}";
                    foreach (var queue in _queues.Values)
                        queue.RemoveRun(run);
                    _h.RemoveRun(run);
                    break;
                }
                case 11:
                    if (_slots[a % _slots.Length] is { } failing)
                        failing.Fail = true;
                    break;
                case 12:
                    // The model first: lifting a limit dispatches before SetTenantSchedule returns.
                    _caps[Tenants[a % 2]] = c % 4;
                    _h.Dispatcher.SetTenantSchedule(Tenants[a % 2], 1 + (b % 4), c % 4);
                    break;
            }
        }

        private int LeasedOf(string tenant) => _h.Holders.Values.Count(h => h.Task.TenantId == tenant);

        private void Enqueue(QueuedTask task, bool front)
        {
            // The model first: Enqueue may push (or find it stale) at once.
            _queues[(task.TenantId, task.ExecutorType)].Add(task, front);
            _h.Dispatcher.Enqueue(task, front);
        }

        private void Unregister(int index)
        {
            if (_slots[index] is not { } executor)
                return;
            _slots[index] = null;
            _config.Remove(executor);
            foreach (var task in _h.Unregister(executor))
                Enqueue(task, front: true);
        }

        private void Check(string when)
        {
            Assert.True(_h.Violations.Count == 0, $"{when}: {string.Join("; ", _h.Violations)}");

            foreach (var ((tenant, type), queue) in _queues)
            {
                Assert.True(queue.Count == _h.Dispatcher.Depth(tenant, type), $"{when}: depth of {tenant}/{type}");
                if (queue.First is not { } head)
                    continue;
                // A tenant at its limit waits by design.
                if (_caps.GetValueOrDefault(tenant) is var cap and > 0 && LeasedOf(tenant) >= cap)
                    continue;
                foreach (var (executor, config) in _config)
                {
                    var capacity = Math.Min(executor.Credit, executor.Slots - executor.InFlight);
                    if (capacity > 0 && !executor.Fail && CanServe(executor, config, head))
                        Assert.Fail($"{when}: {head.TaskId} waits while {executor.Id} has capacity {capacity}");
                }
            }

            var stats = _h.Dispatcher.Stats(null).Executors.ToDictionary(s => s.ExecutorId);
            foreach (var executor in _config.Keys)
            {
                var stat = stats[executor.Id];
                Assert.True((stat.InFlight, stat.Credit, stat.Slots) == (executor.InFlight, executor.Credit, executor.Slots),
                    $"{when}: {executor.Id} stats {stat.InFlight}/{stat.Credit}/{stat.Slots}, model {executor.InFlight}/{executor.Credit}/{executor.Slots}");
            }
            var leased = _h.Dispatcher.Stats(null).Queues.Sum(q => q.Leased);
            Assert.True(leased == _h.Holders.Count, $"{when}: {leased} leased, model holds {_h.Holders.Count}");
        }

        private static bool CanServe(DispatchHarness.TestExecutor executor, (bool Shared, string[] Types, Dictionary<string, string> Labels) config, QueuedTask task)
        {
            if (!config.Shared && executor.Tenant != task.TenantId)
                return false;
            if (!config.Types.Contains(task.ExecutorType))
                return false;
            return task.Labels is null || task.Labels.All(l => config.Labels.TryGetValue(l.Key, out var v) && v == l.Value);
        }
    }

    // The documented queue order, kept naively: highest priority, then earliest deadline (none last), then sequence
    // (new tasks count up, front redeliveries count down).
    private sealed class ModelQueue
    {
        private readonly List<(QueuedTask Task, long Sequence)> _items = [];
        private long _back;
        private long _front;

        public int Count => _items.Count;

        public void Add(QueuedTask task, bool front) => _items.Add((task, front ? --_front : ++_back));

        public QueuedTask? First => _items.Count == 0 ? null : _items[IndexOfFirst()].Task;

        public void RemoveRun(string runId) => _items.RemoveAll(item => item.Task.RunId == runId);

        public void RemoveFirst() => _items.RemoveAt(IndexOfFirst());

        private int IndexOfFirst()
        {
            var best = 0;
            for (var i = 1; i < _items.Count; i++)
            {
                if (Key(_items[i]).CompareTo(Key(_items[best])) < 0)
                    best = i;
            }
            return best;
        }

        private static (int, long, long) Key((QueuedTask Task, long Sequence) item) =>
            (-Level(item.Task.Priority), item.Task.DeadlineAtMs > 0 ? item.Task.DeadlineAtMs : long.MaxValue, item.Sequence);

        private static int Level(SlaPriority p) => p switch
        {
            SlaPriority.Low => 0,
            SlaPriority.High => 2,
            SlaPriority.Critical => 3,
            _ => 1,
        };
    }
}
