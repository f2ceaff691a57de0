using System.Collections.Concurrent;
using Wayang.Fast.Client;
using Wayang.Fast.Client.Execution;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;

namespace Wayang.Fast.Host.Tests;

// The execution plane's crash promise, with the real `wayang serve` as a child process in its default (fsync) mode:
// submissions with idempotency keys and two executors running a two-node chain are under way when the server is killed
// with SIGKILL; a new server on the same data directory and port must (1) know every submission it acknowledged, exactly
// once, under its original run id, (2) finish every run, and (3) have recorded exactly one effect per node, the one the
// executor's ledger holds for the attempt the run accepted. Executors make their side effect idempotent by TaskId, as
// the README asks of them (delivery is at-least-once: a task leased when the server died is delivered again).
public sealed class ExecutionCrashTests
{
    private const int Submissions = 300;
    private const int KillAfterAcks = 100;
    private const string Tenant = "crash";
    private const string Workflow = "chain";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(180);

    private sealed class Ledger
    {
        // TaskId -> the effect applied for it, written once.
        public readonly ConcurrentDictionary<string, string> Effects = new(StringComparer.Ordinal);

        public async ValueTask<TaskOutcome> HandleAsync(ExecutorTask task, CancellationToken ct)
        {
            await Task.Yield(); // the work: the handler returns on another thread, as real work would
            // The idempotent side effect: applied once per TaskId; a redelivery reports the effect already applied.
            string effect = Effects.GetOrAdd(task.TaskId, static _ => Guid.NewGuid().ToString("N"));
            return TaskOutcome.Success(new { effect });
        }
    }

    [Fact]
    public async Task Acknowledged_runs_survive_kill_9_once_each_and_complete_with_one_effect_per_node()
    {
        using var data = new TempDirectory("crash");
        int port = ChildServer.FreePort();
        var ledger = new Ledger();
        var acked = new ConcurrentDictionary<string, string>(StringComparer.Ordinal); // idempotency key -> run id

        string userKey, executorKey;
        await using (var first = await ChildServer.StartAsync(data.Path, port))
        {
            string adminKey = (await File.ReadAllTextAsync(Path.Combine(data.Path, "bootstrap-admin.key"))).Trim();
            await using (var admin = await WayangClient.ConnectAsync(Options(port, adminKey)))
            {
                await admin.CreateTenantAsync(Tenant);
                userKey = (await admin.CreateKeyAsync(Tenant, "user", ["developer", "operator"])).Secret;
                executorKey = (await admin.CreateKeyAsync(Tenant, "executor", ["executor"])).Secret;
            }

            await using var executorA = await StartExecutorAsync(port, executorKey, "crash-a", ledger);
            await using var executorB = await StartExecutorAsync(port, executorKey, "crash-b", ledger);
            await using (var user = await WayangClient.ConnectAsync(Options(port, userKey)))
            {
                await user.RegisterWorkflowAsync($$"""
                    {
                      "id": "{{Workflow}}",
                      "inputs": [ { "name": "n", "required": true } ],
                      "nodes": [
                        { "id": "a", "type": "TASK", "executorType": "crash" },
                        { "id": "b", "type": "TASK", "executorType": "crash", "dependsOn": ["a"] }
                      ]
                    }
                    """);

                // Eight concurrent submitters; each stops at its first failure (the kill), leaving the rest unsent.
                int next = -1;
                var submitters = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
                {
                    int i;
                    while ((i = Interlocked.Increment(ref next)) < Submissions)
                    {
                        try
                        {
                            var result = await user.SubmitRunAsync(Workflow, Input(i), Key(i));
                            acked[Key(i)] = result.RunId;
                        }
                        catch (WayangException)
                        {
                            return; // lost with the server: unknown whether it was stored, resubmitted below
                        }
                    }
                })).ToArray();

                await Wait.UntilAsync(() => acked.Count >= KillAfterAcks, Deadline, "submissions acknowledged before the kill");
                await first.KillAsync();
                await Task.WhenAll(submitters).WaitAsync(Deadline);
            }

            Assert.True(acked.Count < Submissions, "the kill landed after every submission: the test did not crash under load");

            // The same executors stay up and register with the new server on their own.
            await using var second = await ChildServer.StartAsync(data.Path, port);
            await using var again = await WayangClient.ConnectAsync(Options(port, userKey));

            // Every key again: an acknowledged one is a replay of its original run; any other is stored at most once.
            var runByKey = new Dictionary<string, string>(StringComparer.Ordinal);
            for (int i = 0; i < Submissions; i++)
            {
                var result = await again.SubmitRunAsync(Workflow, Input(i), Key(i));
                if (acked.TryGetValue(Key(i), out var original))
                {
                    Assert.True(result.Replayed, $"{Key(i)} was acknowledged as {original} but is not a replay after the restart");
                    Assert.Equal(original, result.RunId);
                }
                runByKey[Key(i)] = result.RunId;
            }

            await WaitAllCompletedAsync(again, runByKey.Count);
            var listed = await again.ListRunsAsync(limit: 1000);
            Assert.Equal(Submissions, listed.Count);
            Assert.Equal(runByKey.Values.Order(StringComparer.Ordinal), listed.Select(r => r.RunId).Order(StringComparer.Ordinal));

            foreach (var runId in runByKey.Values)
            {
                var run = await again.GetRunAsync(runId, includeEvents: true);
                Assert.Equal(RunStatus.Completed, run.Status);
                foreach (var nodeId in new[] { "a", "b" })
                {
                    var node = run.Node(nodeId)!;
                    Assert.Equal(NodeStatus.Completed, node.Status);
                    Assert.Single(run.Events, e => e.Type == RunEventType.NodeCompleted && e.NodeId == nodeId);
                    // One effect per (run, node) in the executors' ledger, and it is the one the run recorded.
                    var effects = ledger.Effects.Where(e => e.Key.StartsWith($"{runId}:{nodeId}:", StringComparison.Ordinal)).ToList();
                    var effect = Assert.Single(effects);
                    Assert.Equal($"{runId}:{nodeId}:{node.Attempt}", effect.Key);
                    Assert.Equal(effect.Value, node.Output!.Value.GetProperty("effect").GetString());
                }
            }
        }
    }

    private static string Key(int i) => "order-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string Input(int i) => "{\"n\":" + i.ToString(System.Globalization.CultureInfo.InvariantCulture) + "}";

    private static WayangClientOptions Options(int port, string key) => new()
    {
        Host = "127.0.0.1",
        Port = port,
        ApiKey = key,
        KeepAliveInterval = TimeSpan.Zero,
        Reconnect = { MaxAttempts = 1 }, // a call fails at once while the server is down
    };

    private static async Task<ExecutorProcess> StartExecutorAsync(int port, string key, string executorId, Ledger ledger)
    {
        var options = Options(port, key);
        options.Reconnect.BaseDelay = TimeSpan.FromMilliseconds(50);
        options.Reconnect.MaxDelay = TimeSpan.FromMilliseconds(250); // the host itself registers again until stopped
        var client = await WayangClient.ConnectAsync(options);
        var host = client.StartExecutor(new ExecutorOptions { ExecutorId = executorId, Types = ["crash"], Slots = 16 }, ledger.HandleAsync);
        return new ExecutorProcess(client, host);
    }

    private static async Task WaitAllCompletedAsync(WayangClient client, int expected)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (true)
        {
            var runs = await client.ListRunsAsync(limit: 1000);
            int completed = runs.Count(r => r.Status == RunStatus.Completed);
            var bad = runs.FirstOrDefault(r => r.IsTerminal && r.Status != RunStatus.Completed);
            Assert.True(bad is null, $"run {bad?.RunId} ended {bad?.Status}");
            if (completed == expected)
                return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{completed} of {expected} runs completed after the restart");
            await Task.Delay(50);
        }
    }

    private sealed class ExecutorProcess(WayangClient client, ExecutorHost host) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await host.DisposeAsync();
            await client.DisposeAsync();
        }
    }
}
