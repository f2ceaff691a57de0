using System.Collections.Concurrent;
using Wayang.Fast.Client.Execution;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Server;
using static Wayang.Fast.Client.Tests.ExecutionTestSupport;

namespace Wayang.Fast.Client.Tests;

// The executor host across a server restart on the same data directory and port: it registers again, the attempt the
// old server had leased is delivered again (same TaskId), the result of the first delivery is sent after the restart and
// accepted, and the second delivery's result is acknowledged as a duplicate. The run completes once.
public sealed class ExecutionRestartTests
{
    [Fact]
    public async Task An_executor_reregisters_after_a_restart_and_a_result_sent_late_is_accepted_once()
    {
        using var data = new TempDirectory();
        var first = await StartAsync(data.Path, port: 0);
        int port = first.ProtocolEndPoint.Port;
        string userKey, executorKey;
        await using (var admin = await WayangClient.ConnectAsync(Options(first, first.BootstrapAdminKey!)))
        {
            await admin.CreateTenantAsync("shop");
            userKey = (await admin.CreateKeyAsync("shop", "user", ["developer", "operator"])).Secret;
            executorKey = (await admin.CreateKeyAsync("shop", "executor", ["executor"])).Secret;
        }
        string runId;
        await using (var user = await WayangClient.ConnectAsync(Options(first, userKey)))
        {
            await user.RegisterWorkflowAsync(OneTask("orders", "payments"));
            runId = (await user.SubmitRunAsync("orders")).RunId;
        }

        var executorOptions = Options(first, executorKey);
        executorOptions.Reconnect.MaxAttempts = 20;
        executorOptions.Reconnect.BaseDelay = TimeSpan.FromMilliseconds(20);
        executorOptions.Reconnect.MaxDelay = TimeSpan.FromMilliseconds(200);
        await using var executorClient = await WayangClient.ConnectAsync(executorOptions);
        var deliveries = new ConcurrentQueue<string>();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var executor = executorClient.StartExecutor(new ExecutorOptions { Types = ["payments"], Slots = 1 }, async (task, _) =>
        {
            deliveries.Enqueue(task.TaskId);
            if (deliveries.Count == 1)
            {
                started.SetResult();
                await release.Task; // still running while the server restarts; its token is ignored on purpose
            }
            return TaskOutcome.Success(new { value = deliveries.Count });
        });
        await started.Task.WaitAsync(Deadline);

        await first.StopAsync();
        await first.DisposeAsync();
        await using var second = await StartAsync(data.Path, port);

        // The restarted server requeued the leased attempt and pushed it to the registration; it waits here for the
        // one slot, which the first delivery still holds.
        await UntilAsync(() => executor.Registrations >= 2 && executor.TasksReceived == 2, "the attempt was delivered again after the restart");
        release.SetResult();

        await using var again = await WayangClient.ConnectAsync(Options(second, userKey));
        var run = await again.WaitForStatusAsync(runId, RunStatus.Completed, includeEvents: true);
        await UntilAsync(() => executor.ResultsAccepted + executor.ResultsDuplicate + executor.ResultsRefused == 2, "both results were answered");

        Assert.Equal(2, deliveries.Count);
        Assert.Single(deliveries.Distinct());
        Assert.Equal($"{runId}:start:1", deliveries.First());
        Assert.Equal(1, run.Node("start")!.Attempt);
        Assert.Equal(1, run.Output!.Value.GetProperty("result").GetInt32()); // the first delivery's result won
        Assert.Single(run.Events, e => e.Type == RunEventType.NodeCompleted);
        Assert.Equal((1, 1, 0), (executor.ResultsAccepted, executor.ResultsDuplicate, executor.ResultsRefused));

        // The executor keeps serving on the new connection.
        var next = await again.SubmitRunAsync("orders");
        await again.WaitForStatusAsync(next.RunId, RunStatus.Completed);
    }

    private static Task<WayangServer> StartAsync(string dataDirectory, int port) => WayangServer.StartAsync(new WayangServerOptions
    {
        DataDirectory = dataDirectory,
        Port = port,
        HttpPort = -1,
        PrintBootstrapKey = false,
    });
}
