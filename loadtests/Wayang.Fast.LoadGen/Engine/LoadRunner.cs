using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using HdrHistogram;
using Wayang.Fast.LoadGen.Reporting;
using Wayang.Fast.LoadGen.Scenarios;

namespace Wayang.Fast.LoadGen.Engine;

public static class LoadRunner
{
    private const string ClientName = "wayang-loadgen";

    // Loopback only: the generator is a tool for this machine's server, never a way to load someone else's host.
    public static IPEndPoint ResolveLoopback(string host, int port)
    {
        IPAddress[] addresses = IPAddress.TryParse(host, out var parsed)
            ? [parsed]
            : string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)
                ? [IPAddress.Loopback]
                : throw new ArgumentException($"--host must be a loopback address (127.0.0.0/8, ::1 or localhost), got '{host}'");
        var address = addresses[0];
        if (!IPAddress.IsLoopback(address))
            throw new ArgumentException($"--host must be a loopback address (127.0.0.0/8, ::1 or localhost), got '{host}'");
        return new IPEndPoint(address, port);
    }

    public static async Task<LoadReport> RunAsync(LoadOptions options, IScenario scenario, IPEndPoint endPoint, string apiKey, TextWriter log, CancellationToken cancellationToken)
    {
        bool open = options.Model == LoadModel.Open;
        var startedAt = DateTimeOffset.UtcNow;
        var connections = new LoadConnection[options.Connections];
        try
        {
            using (var connectCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                connectCts.CancelAfter(options.ConnectTimeout);
                // Connect in small waves: a server with a handshake timeout should not see a thundering herd.
                for (int i = 0; i < connections.Length; i += 16)
                {
                    int end = Math.Min(connections.Length, i + 16);
                    var wave = new Task<LoadConnection>[end - i];
                    for (int j = i; j < end; j++)
                        wave[j - i] = LoadConnection.ConnectAsync(endPoint, apiKey, ClientName, connectCts.Token);
                    var made = await Task.WhenAll(wave);
                    made.CopyTo(connections, i);
                }

                var setupContext = new ScenarioSetupContext(endPoint, apiKey, connections[0]);
                await scenario.SetupAsync(setupContext, connectCts.Token);
            }

            int serverCap = connections[0].Welcome.MaxInFlight > 0 ? connections[0].Welcome.MaxInFlight : int.MaxValue;
            int wantedSlots = open ? options.MaxInFlight : options.Pipeline;
            int slots = Math.Min(wantedSlots, serverCap);
            if (slots < wantedSlots)
                log.WriteLine($"note: the server allows {serverCap} requests in flight per connection; using {slots}");

            var bodies = scenario.CreateRequestBodies();
            // The caller's token ends the load gracefully (stop issuing, drain); only the drain timeout or the absolute
            // bound below abort reads.
            using var abort = new CancellationTokenSource();
            // Absolute bound: whatever happens, the run ends.
            abort.CancelAfter(options.Warmup + (options.Requests > 0 ? LoadOptions.MaxDuration : options.Duration) + options.DrainTimeout + TimeSpan.FromSeconds(30));
            long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
            int gcBefore = GC.CollectionCount(0);
            long start = Stopwatch.GetTimestamp();
            var control = new RunControl(start, options.Warmup, options.Duration, options.Requests, options.DrainTimeout, abort);
            using var stopOnCancel = cancellationToken.Register(control.Stop);
            var workers = new LoadWorker[connections.Length];
            for (int i = 0; i < workers.Length; i++)
                workers[i] = new LoadWorker(connections[i], scenario, bodies, control, slots, open);

            log.WriteLine($"running {scenario.Name}: {Describe(options, slots)} against {endPoint}");

            Task stopTimer = Task.CompletedTask;
            using var timerCts = new CancellationTokenSource();
            if (options.Requests == 0 && !open)
            {
                // Closed model: stop issuing at the end of the measured window even if every connection is stuck waiting.
            // (The open model's pacer ends each connection at its own last intended time.)
                stopTimer = StopAtAsync(control, options.Warmup + options.Duration, timerCts.Token);
            }

            // CPU of both sides over the measured window: sampled when warmup ends and when the last loop ends.
            var cpuStart = SampleCpuAtAsync(options.Warmup, options.ServerPid, timerCts.Token);

            Task[] loops;
            if (open)
            {
                double period = options.Connections * (double)Stopwatch.Frequency / options.Rate;
                for (int i = 0; i < workers.Length; i++)
                    workers[i].ConfigurePacing(start, period, (double)i / workers.Length);
                loops = [.. workers.Select(w => Task.Run(w.RunReceiveAsync))];
                var pacer = new Thread(() => Pacer.Run(workers, control)) { IsBackground = true, Name = "loadgen-pacer", Priority = ThreadPriority.AboveNormal };
                pacer.Start();
                await Task.Run(pacer.Join);
                control.Stop();
                foreach (var w in workers)
                    w.MarkIssuingDone();
            }
            else
            {
                bool batch = options.Model == LoadModel.ClosedBatch;
                loops = [.. workers.Select(w => Task.Run(() => w.RunClosedAsync(batch)))];
            }
            await Task.WhenAll(loops);
            long finished = Stopwatch.GetTimestamp();
            var selfCpuEnd = CpuSampler.Self();
            var serverCpuEnd = options.ServerPid > 0 ? CpuSampler.Of(options.ServerPid) : null;
            long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
            int gcs = GC.CollectionCount(0) - gcBefore;
            await timerCts.CancelAsync();
            try
            {
                await stopTimer;
            }
            catch (OperationCanceledException)
            {
            }

            TimeSpan? selfCpu = null, serverCpu = null;
            if (cpuStart.IsCompletedSuccessfully)
            {
                var (selfStart, serverStart) = cpuStart.Result;
                selfCpu = selfCpuEnd - selfStart;
                serverCpu = serverCpuEnd - serverStart;
            }
            var report = BuildReport(options, scenario, endPoint, slots, control, workers, startedAt, finished, allocated, gcs);
            return report with { GeneratorCpuSeconds = selfCpu?.TotalSeconds, ServerCpuSeconds = serverCpu?.TotalSeconds };
        }
        finally
        {
            foreach (var c in connections)
            {
                if (c is not null)
                    await c.DisposeAsync();
            }
        }
    }

    private static async Task<(TimeSpan Self, TimeSpan? Server)> SampleCpuAtAsync(TimeSpan after, int serverPid, CancellationToken ct)
    {
        if (after > TimeSpan.Zero)
            await Task.Delay(after, ct);
        return (CpuSampler.Self(), serverPid > 0 ? CpuSampler.Of(serverPid) : null);
    }

    private static async Task StopAtAsync(RunControl control, TimeSpan after, CancellationToken ct)
    {
        await Task.Delay(after, ct);
        control.Stop();
        // Closed loops check the stop flag when a read completes; they always have something in flight, so they wake.
    }

    private static string Describe(LoadOptions o, int slots) => o.Model switch
    {
        LoadModel.Open => $"open model, {o.Rate:N0} req/s over {o.Connections} connections (max {slots} in flight each)",
        LoadModel.ClosedBatch => $"closed model (batch), {o.Connections} connections x {slots} per batch",
        _ => $"closed model (sliding window), {o.Connections} connections x {slots} in flight",
    } + (o.Requests > 0 ? $", {o.Requests:N0} requests" : $", {o.Duration.TotalSeconds:0.###} s") + $" after {o.Warmup.TotalSeconds:0.###} s warmup";

    private static LoadReport BuildReport(LoadOptions o, IScenario scenario, IPEndPoint endPoint, int slots, RunControl control, LoadWorker[] workers, DateTimeOffset startedAt, long finished, long allocated, int gcs)
    {
        bool open = o.Model == LoadModel.Open;
        var latency = new LongHistogram(WorkerStats.HighestTicks, 3);
        var uncorrected = open ? new LongHistogram(WorkerStats.HighestTicks, 3) : null;
        long ok = 0, failed = 0, timedOut = 0, sent = 0, received = 0, unexpected = 0, last = 0, backlog = 0;
        var errors = new Dictionary<string, long>();
        var connectionErrors = new List<string>();
        long backlogAt = control.MeasureEnd == long.MaxValue ? finished : Math.Min(control.MeasureEnd, finished);
        foreach (var w in workers)
        {
            var s = w.Stats;
            latency.Add(s.Latency);
            if (uncorrected is not null && s.Uncorrected is not null)
                uncorrected.Add(s.Uncorrected);
            ok += s.Ok;
            failed += s.Failed;
            timedOut += s.TimedOut;
            sent += s.BytesSent;
            received += s.BytesReceived;
            unexpected += s.UnexpectedFrames;
            last = Math.Max(last, s.LastCompletion);
            if (open && control.MeasureEnd != long.MaxValue)
                backlog += w.Backlog(backlogAt - 1);
            if (s.ErrorsByName is not null)
            {
                foreach (var (k, v) in s.ErrorsByName)
                    errors[k] = errors.GetValueOrDefault(k) + v;
            }
            if (s.ConnectionError is not null)
                connectionErrors.Add(s.ConnectionError);
        }
        // The measured window runs from the end of warmup to the last measured completion.
        double elapsed = last > control.MeasureStart ? (last - control.MeasureStart) / (double)Stopwatch.Frequency : 0;
        return new LoadReport
        {
            Label = o.Label,
            Scenario = scenario.Name,
            Model = o.Model switch { LoadModel.Open => "open", LoadModel.ClosedBatch => "closed-batch", _ => "closed" },
            Target = endPoint.ToString(),
            Connections = o.Connections,
            Pipeline = open ? 0 : slots,
            TargetRate = open ? o.Rate : 0,
            MaxInFlightPerConnection = slots,
            RequestsBudget = o.Requests,
            WarmupSeconds = o.Warmup.TotalSeconds,
            DurationSeconds = o.Requests > 0 ? 0 : o.Duration.TotalSeconds,
            ElapsedSeconds = elapsed,
            StartedAt = startedAt,
            Ok = ok,
            Failed = failed,
            TimedOut = timedOut,
            BacklogAtEnd = backlog,
            UnexpectedFrames = unexpected,
            RequestsPerSecond = elapsed > 0 ? (ok + failed) / elapsed : 0,
            OkPerSecond = elapsed > 0 ? ok / elapsed : 0,
            Latency = LatencySummary.From(latency),
            LatencyUncorrected = uncorrected is null ? null : LatencySummary.From(uncorrected),
            BytesSent = sent,
            BytesReceived = received,
            Errors = errors,
            ConnectionErrors = connectionErrors,
            GeneratorAllocatedBytes = allocated,
            GeneratorGen0Collections = gcs,
        };
    }

    internal static bool IsConnectFailure(Exception e)
        => e is SocketException or IOException or OperationCanceledException or InvalidOperationException;
}
