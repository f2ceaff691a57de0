using Wayang.Fast.Client.Execution;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Server;

namespace Wayang.Fast.Client.Tests;

// A real server on 127.0.0.1:0 with a tenant whose keys play the two sides: a user (developer + operator: workflows,
// runs, DLQ) and executors. Tests isolate themselves with their own executor types and workflow ids.
public sealed class ExecutionServerFixture : IAsyncLifetime
{
    private readonly TempDirectory _data = new();

    public WayangServer Server { get; private set; } = null!;
    public string AdminKey { get; private set; } = "";
    public string TenantId { get; } = "exec-" + Guid.NewGuid().ToString("N")[..8];
    public string UserKey { get; private set; } = "";
    public string ExecutorKey { get; private set; } = "";

    public async Task InitializeAsync()
    {
        Server = await WayangServer.StartAsync(new WayangServerOptions
        {
            DataDirectory = _data.Path,
            Port = 0,
            HttpPort = -1,
            PrintBootstrapKey = false,
            Durability = Storage.DurabilityMode.Relaxed,
        });
        AdminKey = Server.BootstrapAdminKey ?? throw new InvalidOperationException("A fresh data directory must yield a bootstrap key.");
        await using var admin = await WayangClient.ConnectAsync(Options(AdminKey));
        await admin.CreateTenantAsync(TenantId);
        UserKey = (await admin.CreateKeyAsync(TenantId, "user", ["developer", "operator"])).Secret;
        ExecutorKey = (await admin.CreateKeyAsync(TenantId, "executor", ["executor"])).Secret;
    }

    public WayangClientOptions Options(string key) => ExecutionTestSupport.Options(Server, key);

    public Task<WayangClient> UserAsync() => WayangClient.ConnectAsync(Options(UserKey));

    // An executor on its own connection (its own client), as a separate process would have.
    public async Task<Executor> StartExecutorAsync(string type, int slots, Func<ExecutorTask, CancellationToken, ValueTask<TaskOutcome>> handler, string? executorId = null)
    {
        var client = await WayangClient.ConnectAsync(Options(ExecutorKey));
        var host = client.StartExecutor(new ExecutorOptions { ExecutorId = executorId, Types = [type], Slots = slots }, handler);
        return new Executor(client, host);
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        _data.Dispose();
    }
}

public sealed class Executor(WayangClient client, ExecutorHost host) : IAsyncDisposable
{
    public WayangClient Client { get; } = client;
    public ExecutorHost Host { get; } = host;

    public async ValueTask DisposeAsync()
    {
        await Host.DisposeAsync();
        await Client.DisposeAsync();
    }
}

internal static class ExecutionTestSupport
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(120);

    public static WayangClientOptions Options(WayangServer server, string key) => new()
    {
        Host = "127.0.0.1",
        Port = server.ProtocolEndPoint.Port,
        ApiKey = key,
        KeepAliveInterval = TimeSpan.Zero,
    };

    public static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..10];

    public static async Task<RunInfo> WaitForStatusAsync(this WayangClient client, string runId, RunStatus status, bool includeEvents = false)
    {
        var run = await client.WaitUntilAsync(runId, r => r.Status == status || (r.IsTerminal && status != r.Status), includeEvents);
        Assert.True(run.Status == status, $"run {runId} is {run.Status} ({run.ErrorCode}: {run.ErrorMessage}), expected {status}");
        return run;
    }

    // Polls the run until the condition holds; fails the test after a generous deadline.
    public static async Task<RunInfo> WaitUntilAsync(this WayangClient client, string runId, Func<RunInfo, bool> condition, bool includeEvents = false)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (true)
        {
            var run = await client.GetRunAsync(runId, includeEvents);
            if (condition(run))
                return run;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"run {runId} did not reach the expected state; it is {run.Status}: " +
                    string.Join(", ", run.Nodes.Select(n => $"{n.NodeId}={n.Status}/{n.Attempt}")));
            await Task.Delay(20);
        }
    }

    public static async Task UntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("Condition not met in time: " + what);
            await Task.Delay(10);
        }
    }

    public static async Task UntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("Condition not met in time: " + what);
            await Task.Delay(10);
        }
    }

    public static void UpdateMax(ref int max, int value)
    {
        int seen = Volatile.Read(ref max);
        while (value > seen)
        {
            int prior = Interlocked.CompareExchange(ref max, value, seen);
            if (prior == seen)
                return;
            seen = prior;
        }
    }

    // One TASK node "start" of the given executor type; the run output "result" is start's output field "value".
    public static string OneTask(string id, string type, string extra = "") => $$"""
        {
          "id": "{{id}}",
          "inputs": [ { "name": "x", "required": false } ],
          "nodes": [ { "id": "start", "type": "TASK", "executorType": "{{type}}", "config": { "factor": 2 } {{extra}} } ],
          "outputs": { "result": { "path": "start.value" } }
        }
        """;
}
