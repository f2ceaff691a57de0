using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Wayang.Fast.Benchmarks.Storage;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Dispatch;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Execution.Tokens;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Benchmarks.Execution;

// The dedupe checks of the exactly-once path, over a real FasterStateStore (fsync mode):
// - TokenVerify: a task token's HMAC-SHA256 check and claim parse, done for every result.
// - SubmitReplay: a submission whose idempotency key was used before: the key's record is found and the original
//   run answered (Replayed), nothing written.
// - DuplicateResult: a result for an attempt whose result was already accepted: acknowledged as a duplicate,
//   nothing written.
[MemoryDiagnoser]
public class DedupeBenchmarks
{
    private const string Tenant = "bench";
    private string _dir = "";
    private FasterStateStore _store = null!;
    private ExecutionEngine _engine = null!;
    private TaskTokens _tokens = null!;
    private string _token = "";
    private long _now;
    private SubmitRunRequest _replay = null!;
    private TaskResult _duplicate = null!;

    private sealed class CapturingChannel : IExecutorChannel
    {
        public TaskAssignment? Last;

        public bool TryPush(TaskAssignment task)
        {
            Last = task;
            return true;
        }
    }

    [GlobalSetup]
    public void Setup()
    {
        _tokens = new TaskTokens(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());
        _now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        _token = _tokens.Issue("run-0123456789abcdef", "charge", 3, _now + 3_600_000);

        _dir = StorageBenchDirectory.Create("dedupe");
        _store = FasterStateStore.Open(new StorageOptions { DataDirectory = _dir, DeleteOnClose = true, CheckpointOnDispose = false });
        _engine = ExecutionEngine.OpenAsync(_store, new ExecutionOptions()).AsTask().GetAwaiter().GetResult();
        var definition = WorkflowRegistry.ParseDefinition("""
            { "id": "orders", "nodes": [ { "id": "charge", "type": "TASK", "executorType": "payments" } ] }
            """u8);
        _engine.RegisterWorkflowAsync(Tenant, definition).AsTask().GetAwaiter().GetResult();

        var channel = new CapturingChannel();
        _engine.RegisterExecutor(Tenant, shared: false, new ExecutorRegistration("e1", ["payments"], 1, new Dictionary<string, string>()), channel);
        using var input = JsonDocument.Parse("""{ "order": 17 }""");
        _replay = new SubmitRunRequest("orders", 0, input.RootElement.Clone(), "order-17");
        var first = _engine.SubmitAsync(Tenant, _replay).AsTask().GetAwaiter().GetResult();

        var task = WaitFor(() => channel.Last);
        _duplicate = new TaskResult(task.Token, true, null, null, null);
        _engine.CompleteTaskAsync(Tenant, false, _duplicate).AsTask().GetAwaiter().GetResult();
        if (!_engine.SubmitAsync(Tenant, _replay).AsTask().GetAwaiter().GetResult().Replayed || first.RunId.Length == 0)
            throw new InvalidOperationException("setup: the second submission must be a replay");
        if (!_engine.CompleteTaskAsync(Tenant, false, _duplicate).AsTask().GetAwaiter().GetResult().Duplicate)
            throw new InvalidOperationException("setup: the second result must be a duplicate");
    }

    private static T WaitFor<T>(Func<T?> read) where T : class
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            if (read() is { } value)
                return value;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("setup: no task was pushed");
            Thread.Sleep(1);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _store.DisposeAsync().AsTask().GetAwaiter().GetResult();
        StorageBenchDirectory.Delete(_dir);
    }

    // Every dispatch signs a token and every submission draws a run id: both on the first-delivery path.
    [Benchmark]
    public string TokenIssue() => _tokens.Issue("run_0123456789abcdefghij", "step", 1, _now);

    [Benchmark]
    public string NewRunId() => Wayang.Fast.Common.Ids.NewId("run_");

    [Benchmark]
    public bool TokenVerify() => _tokens.TryVerify(_token, _now, out _, out ErrorCode _);

    [Benchmark]
    public bool SubmitReplay() => _engine.SubmitAsync(Tenant, _replay).AsTask().GetAwaiter().GetResult().Replayed;

    [Benchmark]
    public bool DuplicateResult() => _engine.CompleteTaskAsync(Tenant, false, _duplicate).AsTask().GetAwaiter().GetResult().Duplicate;
}
