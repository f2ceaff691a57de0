using BenchmarkDotNet.Attributes;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Dispatch;
using Wayang.Fast.Execution.Engine;

namespace Wayang.Fast.Benchmarks.Execution;

// The dispatcher's scheduling decision under a deep, mixed backlog: 10,000 queued tasks over 1,000 tenants (weights
// 1-4) and the 4 priority levels, some with deadlines, served by one shared executor with one slot. One operation is
// a whole steady-state cycle: the executor's task is released, its credit comes back (the decision: the dispatcher
// picks the next task by level, tenant share and deadline, and pushes it), and the released task is queued again so
// the backlog stays at 10,000.
[MemoryDiagnoser]
public class SchedulingBenchmarks
{
    private TaskDispatcher _dispatcher = null!;
    private ExecutorHandle _executor = null!;
    private Channel _channel = null!;

    [Params(10_000)]
    public int Queued { get; set; }

    [Params(1_000)]
    public int Tenants { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var assignment = new TaskAssignment
        {
            Token = "token", TaskId = "", TenantId = "", RunId = "", WorkflowId = "wf", NodeId = "", Attempt = 1,
            ExecutorType = "x", LeaseExpiresAtMs = 0,
        };
        QueuedTask? offered = null;
        _channel = new Channel();
        _dispatcher = new TaskDispatcher(new ExecutionOptions(), TimeProvider.System, (task, _, _) =>
        {
            offered = task;
            return assignment;
        });
        _channel.Offered = () => offered!;
        for (var t = 0; t < Tenants; t++)
            _dispatcher.SetTenantSchedule("t" + t, 1 + (t % 4), maxConcurrent: 0);

        var deadlineBase = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 3_600_000;
        SlaPriority[] priorities = [SlaPriority.Low, SlaPriority.Normal, SlaPriority.High, SlaPriority.Critical];
        // One more than the backlog: the executor holds one.
        for (var i = 0; i <= Queued; i++)
        {
            _dispatcher.Enqueue(new QueuedTask
            {
                TenantId = "t" + (i % Tenants),
                ExecutorType = "x",
                RunId = "r" + i,
                NodeId = "n",
                Attempt = 1,
                TaskId = "r" + i + ":n:1",
                Priority = priorities[i / Tenants % priorities.Length],
                DeadlineAtMs = i % 3 == 0 ? deadlineBase + (i % 1000) : 0,
            });
        }
        _executor = _dispatcher.Register("system", shared: true, new ExecutorRegistration("pool", ["x"], 1, new Dictionary<string, string>()), _channel);
    }

    [Benchmark]
    public QueuedTask Decision()
    {
        var done = _channel.Current!;
        _dispatcher.Release(done.TaskId);
        _dispatcher.GrantCredit(_executor, 1);
        _dispatcher.Enqueue(done);
        return _channel.Current!;
    }

    private sealed class Channel : IExecutorChannel
    {
        public Func<QueuedTask> Offered = null!;
        public QueuedTask? Current;

        public bool TryPush(TaskAssignment task)
        {
            Current = Offered();
            return true;
        }
    }
}
