using Wayang.Fast.Client.Execution;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Server;
using static Wayang.Fast.Client.Tests.ExecutionTestSupport;

namespace Wayang.Fast.Client.Tests;

// Execution behaviour that needs its own server options: queue limits and leases.
public sealed class ExecutionLimitsTests
{
    [Fact]
    public async Task A_full_queue_refuses_submissions_with_QUEUE_FULL_and_RetryAfter_until_an_executor_drains_it()
    {
        await using var server = await StartAsync(new ExecutionOptions { MaxQueueDepth = 2, QueueFullRetryAfterMs = 1500 });
        var (user, executorKey) = await TenantAsync(server.Server);
        await using var _ = user;
        await user.RegisterWorkflowAsync(OneTask("orders", "payments"));

        var accepted = new[] { await user.SubmitRunAsync("orders"), await user.SubmitRunAsync("orders") };
        var full = await Assert.ThrowsAsync<WayangException>(() => user.SubmitRunAsync("orders", idempotencyKey: "third"));

        Assert.Equal(ErrorCode.QueueFull, full.Code);
        Assert.True(full.Retryable);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), full.RetryAfter);
        // Without a key the session refuses before the engine (no input parsed, no exception): the same answer.
        var fullNoKey = await Assert.ThrowsAsync<WayangException>(() => user.SubmitRunAsync("orders", """{"any":"input"}"""));
        Assert.Equal((ErrorCode.QueueFull, TimeSpan.FromMilliseconds(1500)), (fullNoKey.Code, fullNoKey.RetryAfter));
        var queue = Assert.Single((await user.GetQueueStatsAsync()).Queues, q => q.ExecutorType == "payments");
        Assert.Equal((2, 2), (queue.Depth, queue.MaxDepth));
        // Refused means not created: the tenant has exactly the two accepted runs.
        Assert.Equal(accepted.Select(a => a.RunId).Order(), (await user.ListRunsAsync()).Select(r => r.RunId).Order());

        await using var executorClient = await WayangClient.ConnectAsync(Options(server.Server, executorKey));
        await using var executor = executorClient.StartExecutor(new ExecutorOptions { Types = ["payments"], Slots = 1 },
            (_, _) => ValueTask.FromResult(TaskOutcome.Success(new { value = 1 })));
        foreach (var a in accepted)
            await user.WaitForStatusAsync(a.RunId, RunStatus.Completed);

        // The same idempotency key after the refusal is a fresh submission, not a replay.
        var third = await user.SubmitRunAsync("orders", idempotencyKey: "third");
        Assert.False(third.Replayed);
        await user.WaitForStatusAsync(third.RunId, RunStatus.Completed);
    }

    [Fact]
    public async Task Heartbeats_keep_the_lease_of_a_task_that_outlives_it()
    {
        await using var server = await StartAsync(new ExecutionOptions { LeaseDuration = TimeSpan.FromSeconds(2) });
        var (user, executorKey) = await TenantAsync(server.Server);
        await using var _ = user;
        await user.RegisterWorkflowAsync(OneTask("slow", "batch"));

        await using var executorClient = await WayangClient.ConnectAsync(Options(server.Server, executorKey));
        await using var executor = executorClient.StartExecutor(
            new ExecutorOptions { Types = ["batch"], Slots = 2, HeartbeatInterval = TimeSpan.FromMilliseconds(200) },
            async (_, ct) =>
            {
                // Three leases long: without heartbeats the task would be requeued and pushed again (a free slot waits).
                await Task.Delay(TimeSpan.FromSeconds(6), ct);
                return TaskOutcome.Success(new { value = 1 });
            });
        var submitted = await user.SubmitRunAsync("slow");
        await user.WaitForStatusAsync(submitted.RunId, RunStatus.Completed);

        // The run completes when the server accepts the result; the host counts it when the ack arrives.
        await UntilAsync(() => executor.ResultsAccepted == 1, "the result was acknowledged");
        Assert.Equal(1, executor.TasksReceived);
    }

    private static async Task<ServerWithData> StartAsync(ExecutionOptions execution)
    {
        var data = new TempDirectory();
        var server = await WayangServer.StartAsync(new WayangServerOptions
        {
            DataDirectory = data.Path,
            Port = 0,
            HttpPort = -1,
            PrintBootstrapKey = false,
            Durability = Storage.DurabilityMode.Relaxed,
            Execution = execution,
        });
        return new ServerWithData(server, data);
    }

    private static async Task<(WayangClient User, string ExecutorKey)> TenantAsync(WayangServer server)
    {
        await using var admin = await WayangClient.ConnectAsync(Options(server, server.BootstrapAdminKey!));
        await admin.CreateTenantAsync("shop");
        var userKey = (await admin.CreateKeyAsync("shop", "user", ["developer", "operator"])).Secret;
        var executorKey = (await admin.CreateKeyAsync("shop", "executor", ["executor"])).Secret;
        return (await WayangClient.ConnectAsync(Options(server, userKey)), executorKey);
    }

    private sealed class ServerWithData(WayangServer server, TempDirectory data) : IAsyncDisposable
    {
        public WayangServer Server { get; } = server;

        public async ValueTask DisposeAsync()
        {
            await Server.DisposeAsync();
            data.Dispose();
        }
    }
}
