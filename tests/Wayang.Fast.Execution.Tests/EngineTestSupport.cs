using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Agents;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Execution.Runs;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Execution.Tests;

// An engine over a store and a fake clock, with executors that record what they are pushed. Waits poll the engine
// with a generous real-time deadline; nothing sleeps and hopes.
//
// Every poll also "advances" the fake clock by zero. FakeTimeProvider fires only the timers registered when Advance
// looks for them: the engine's timer loop, running on another thread, may register its wake-up a moment after the
// test advanced past it. A zero advance fires such a late-registered timer that is already due.
internal sealed class EngineHarness : IAsyncDisposable
{
    public const string Tenant = "acme";
    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(30);

    private readonly IInferenceGateway? _gateway;

    private EngineHarness(IStateStore store, ExecutionOptions options, FakeTimeProvider time, IInferenceGateway? gateway)
    {
        Store = store;
        Options = options;
        Time = time;
        _gateway = gateway;
    }

    public IStateStore Store { get; private set; }
    public ExecutionOptions Options { get; }
    public FakeTimeProvider Time { get; }
    public ExecutionEngine Engine { get; private set; } = null!;

    public long NowMs => Time.GetUtcNow().ToUnixTimeMilliseconds();

    public static ExecutionOptions DefaultOptions() => new() { TokenSigningKey = new byte[32] };

    public static async Task<EngineHarness> StartAsync(ExecutionOptions? options = null, IInferenceGateway? gateway = null, IStateStore? store = null,
        FakeTimeProvider? time = null)
    {
        var harness = new EngineHarness(store ?? new InMemoryStateStore(), options ?? DefaultOptions(),
            time ?? new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000)), gateway);
        harness.Engine = await ExecutionEngine.OpenAsync(harness.Store, harness.Options, gateway, harness.Time);
        return harness;
    }

    // Over the real FASTER store in directory (a restart test opens it again on the same directory and clock). The token
    // key is left to the engine, so it is stored and survives the restart like in production.
    public static async Task<EngineHarness> StartOnDiskAsync(string directory, FakeTimeProvider? time = null, ExecutionOptions? options = null)
    {
        var store = await FasterStateStore.OpenAsync(SmallStorage(directory), logger: null);
        return await StartAsync(options ?? new ExecutionOptions { TokenSigningKey = null }, store: store, time: time);
    }

    // Stops the engine (not the store) and opens a new one over the same store: a restart without a crash.
    public async Task RestartAsync(IStateStore? newStore = null)
    {
        await Engine.DisposeAsync();
        if (newStore is not null)
            Store = newStore;
        Engine = await ExecutionEngine.OpenAsync(Store, Options, _gateway, Time);
    }

    public async Task<WorkflowSummary> RegisterAsync(WorkflowDefinition definition, string tenant = Tenant) =>
        await Engine.RegisterWorkflowAsync(tenant, definition);

    public async Task<SubmitRunResult> SubmitAsync(string workflowId, string? inputJson = null, string? key = null, string tenant = Tenant, int version = 0) =>
        await Engine.SubmitAsync(tenant, new SubmitRunRequest(workflowId, version, inputJson is null ? null : Workflows.Json(inputJson), key));

    public FakeExecutorChannel Connect(string tenant = Tenant, int slots = 10, bool shared = false, string type = Workflows.Worker, string? id = null)
    {
        var channel = new FakeExecutorChannel();
        var registration = new ExecutorRegistration(id ?? "exec-" + Guid.NewGuid().ToString("N")[..8], [type], slots, new Dictionary<string, string>());
        channel.Handle = Engine.RegisterExecutor(tenant, shared, registration, channel);
        channel.Tenant = tenant;
        channel.Shared = shared;
        channel.Nudge = Nudge;
        Engine.GrantCredit(channel.Handle, slots);
        return channel;
    }

    // What the SDK does: report, then give the slot's credit back.
    public async Task<TaskResultAck> SucceedAsync(FakeExecutorChannel channel, TaskAssignment task, string? outputJson = null)
    {
        var ack = await Engine.CompleteTaskAsync(channel.Tenant, channel.Shared,
            new TaskResult(task.Token, true, outputJson is null ? null : Workflows.Json(outputJson), null, null));
        Engine.GrantCredit(channel.Handle, 1);
        return ack;
    }

    public async Task<TaskResultAck> FailAsync(FakeExecutorChannel channel, TaskAssignment task, string errorCode = "BOOM", bool retryable = true)
    {
        var ack = await Engine.CompleteTaskAsync(channel.Tenant, channel.Shared, new TaskResult(task.Token, false, null, errorCode, "it broke", retryable));
        Engine.GrantCredit(channel.Handle, 1);
        return ack;
    }

    public async Task<RunState> GetRunAsync(string runId, string tenant = Tenant) =>
        await Engine.GetRunAsync(tenant, runId) ?? throw new InvalidOperationException($"run {runId} not found");

    public async Task<RunState> WaitRunAsync(string runId, Func<RunState, bool> condition, string what = "condition", string tenant = Tenant)
    {
        var deadline = DateTime.UtcNow + WaitLimit;
        while (true)
        {
            var run = await Engine.GetRunAsync(tenant, runId);
            if (run is not null && condition(run))
                return run;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"run {runId}: {what} not reached; status {run?.Status}, nodes {Describe(run)}");
            await Task.Delay(5);
            Nudge();
        }
    }

    public Task<RunState> WaitStatusAsync(string runId, RunStatus status) => WaitRunAsync(runId, r => r.Status == status, $"status {status}");

    public Task<RunState> WaitNodeAsync(string runId, string nodeId, NodeStatus status, int? attempt = null) =>
        WaitRunAsync(runId, r => r.Nodes.TryGetValue(nodeId, out var n) && n.Status == status && (attempt is null || n.Attempt == attempt),
            $"node {nodeId} {status}{(attempt is null ? "" : " attempt " + attempt)}");

    public void Nudge() => Time.Advance(TimeSpan.Zero);

    public Task WaitUntilAsync(Func<bool> condition, string what) => WaitUntilAsync(condition, what, Nudge);

    public static async Task WaitUntilAsync(Func<bool> condition, string what, Action? nudge)
    {
        var deadline = DateTime.UtcNow + WaitLimit;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException(what + " not reached");
            await Task.Delay(5);
            nudge?.Invoke();
        }
    }

    public static string Describe(RunState? run) =>
        run is null ? "-" : string.Join(", ", run.Nodes.Values.Select(n => $"{n.NodeId}={n.Status}#{n.Attempt}"));

    public void Advance(TimeSpan delta) => Time.Advance(delta);

    public void AdvanceMs(long ms) => Time.Advance(TimeSpan.FromMilliseconds(ms));

    public async ValueTask DisposeAsync()
    {
        await Engine.DisposeAsync();
        if (Store is IAsyncDisposable disposable)
            await disposable.DisposeAsync();
    }

    public static async Task<WayangException> ThrowsAsync(ErrorCode code, Func<Task> action)
    {
        var ex = await Assert.ThrowsAsync<WayangException>(action);
        Assert.Equal(code, ex.Code);
        return ex;
    }

    public static StorageOptions SmallStorage(string dir) => new()
    {
        DataDirectory = dir,
        JournalPageBits = 16,
        JournalMemoryBits = 18,
        JournalSegmentBits = 18,
        StorePageBits = 16,
        StoreMemoryBits = 20,
        MaxKeyBytes = 256,
        MaxValueBytes = 16384,
        CheckpointInterval = TimeSpan.FromHours(1),
    };
}

// The server side of one executor's stream, as a test sees it: every push is recorded; NextAsync hands them out in order.
internal sealed class FakeExecutorChannel : IExecutorChannel
{
    private readonly Lock _gate = new();
    private readonly List<TaskAssignment> _pushed = [];
    private int _taken;

    public ExecutorHandle Handle { get; set; } = null!;
    public string Tenant { get; set; } = EngineHarness.Tenant;
    public bool Shared { get; set; }

    public Action? Nudge { get; set; }

    // When set, pushes fail as if the connection were gone.
    public bool Broken { get; set; }

    public bool TryPush(TaskAssignment task)
    {
        if (Broken)
            return false;
        lock (_gate)
            _pushed.Add(task);
        return true;
    }

    public IReadOnlyList<TaskAssignment> Pushed
    {
        get
        {
            lock (_gate)
                return [.. _pushed];
        }
    }

    public int Untaken
    {
        get
        {
            lock (_gate)
                return _pushed.Count - _taken;
        }
    }

    public bool TryTake(out TaskAssignment task)
    {
        lock (_gate)
        {
            if (_taken < _pushed.Count)
            {
                task = _pushed[_taken++];
                return true;
            }
        }
        task = null!;
        return false;
    }

    public async Task<TaskAssignment> NextAsync(string? what = null)
    {
        TaskAssignment task = null!;
        await EngineHarness.WaitUntilAsync(() => TryTake(out task), what ?? "a task push", Nudge);
        return task;
    }
}

// A gateway whose answers the test scripts: a queue of results (or a function), recording every call.
internal sealed class ScriptedGateway : IInferenceGateway
{
    private readonly Lock _gate = new();
    private readonly Queue<AgentCallResult> _results = new();
    private readonly List<AgentCall> _calls = [];

    // When set, calls wait on this until the test completes it (or cancellation).
    public TaskCompletionSource<AgentCallResult>? Hold { get; set; }

    public void Enqueue(AgentCallResult result)
    {
        lock (_gate)
            _results.Enqueue(result);
    }

    public IReadOnlyList<AgentCall> Calls
    {
        get
        {
            lock (_gate)
                return [.. _calls];
        }
    }

    public async ValueTask<AgentCallResult> CallAgentAsync(AgentCall call, CancellationToken cancellationToken)
    {
        TaskCompletionSource<AgentCallResult>? hold;
        lock (_gate)
        {
            _calls.Add(call);
            hold = Hold;
            if (hold is null)
                return _results.Count > 0 ? _results.Dequeue() : new AgentCallResult(true, Workflows.Json("""{"text":"ok"}"""));
        }
        return await hold.Task.WaitAsync(cancellationToken);
    }

    public static AgentCallResult Ok(string json) => new(true, Workflows.Json(json));

    public static AgentCallResult Fail(string code = "MODEL_ERROR", bool retryable = true) => new(false, null, code, "model failed", retryable);
}

internal static class JsonText
{
    public static string Of(JsonElement? element) => element is { } e ? e.GetRawText() : "null";
}
