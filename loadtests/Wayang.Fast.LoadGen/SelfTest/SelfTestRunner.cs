using Wayang.Fast.LoadGen.Engine;
using Wayang.Fast.LoadGen.Reporting;
using Wayang.Fast.LoadGen.Scenarios;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.LoadGen.SelfTest;

// `--self-test`: runs every load model against FakeServer and checks the counts the report must get exactly right.
// Timing-dependent numbers are checked with wide margins (the machine is shared).
internal static class SelfTestRunner
{
    private const string Key = "wk_selftest";

    public static async Task<int> RunAsync(TextWriter log)
    {
        int failures = 0;
        void Check(bool condition, string what)
        {
            log.WriteLine((condition ? "  ok    " : "  FAIL  ") + what);
            if (!condition)
                failures++;
        }
        int frame = FrameHeader.Size; // an empty Ping request and its empty reply are both header-only frames

        await using (var server = new FakeServer(Key))
        {
            log.WriteLine("closed model, sliding window, 4 x 8, 20,000 requests");
            var r = await RunAsync(server, "--connections 4 --pipeline 8 --requests 20000 --warmup 200ms");
            Check(r.Ok == 20_000, $"ok == 20000 (got {r.Ok})");
            Check(r.AllFailed == 0, $"failed == 0 (got {r.AllFailed})");
            Check(r.Latency.Count == 20_000, $"histogram count == 20000 (got {r.Latency.Count})");
            Check(r.BytesSent == 20_000L * frame && r.BytesReceived == 20_000L * frame, $"bytes sent/received == 20000 x {frame} (got {r.BytesSent}/{r.BytesReceived})");
            Check(r.RequestsPerSecond > 0 && r.Latency.P50Ms > 0 && r.Latency.P50Ms <= r.Latency.P99Ms && r.Latency.P99Ms <= r.Latency.MaxMs, "percentiles ordered, throughput > 0");

            log.WriteLine("closed model, batch, 4 x 16, 1 s");
            r = await RunAsync(server, "--connections 4 --pipeline 16 --batch --duration 1s --warmup 200ms");
            Check(r.Ok > 0 && r.AllFailed == 0, $"ok > 0, failed == 0 (got {r.Ok}/{r.AllFailed})");
            Check(r.BytesSent == r.Ok * frame, $"bytes sent == ok x {frame}");
            Check(r.ElapsedSeconds is > 0.9 and < 3, $"measured window ~1 s (got {r.ElapsedSeconds:0.000})");

            log.WriteLine("open model, 4,000 req/s over 4 connections, 2 s");
            r = await RunAsync(server, "--connections 4 --rate 4000 --duration 2s --warmup 300ms");
            Check(r.AllFailed == 0, $"failed == 0 (got {r.AllFailed})");
            Check(r.Ok is > 7_200 and < 8_800, $"ok ~ 8000 (got {r.Ok})");
            Check(r.LatencyUncorrected is { Count: > 0 }, "uncorrected histogram recorded");
            Check(r.Latency.P50Ms >= r.LatencyUncorrected!.P50Ms - 0.001, "corrected latency >= uncorrected");

            log.WriteLine("open model with a request budget: 3,000 requests at 6,000 req/s");
            r = await RunAsync(server, "--connections 3 --rate 6000 --requests 3000 --warmup 0");
            Check(r.Ok == 3_000 && r.AllFailed == 0, $"ok == 3000, failed == 0 (got {r.Ok}/{r.AllFailed})");
        }

        await using (var failing = new FakeServer(Key, failEvery: 10))
        {
            log.WriteLine("error replies: every 10th request fails");
            var r = await RunAsync(failing, "--connections 2 --pipeline 4 --requests 1000 --warmup 0");
            Check(r.Ok + r.Failed == 1000, $"ok + failed == 1000 (got {r.Ok} + {r.Failed})");
            Check(r.Failed is >= 95 and <= 105, $"~100 failed (got {r.Failed})");
            Check(r.Errors.GetValueOrDefault("Internal") == r.Failed, "errors by name: Internal");
        }

        await using (var server = new FakeServer(Key))
        {
            log.WriteLine("wrong key");
            bool refused = false;
            try
            {
                await LoadRunner.RunAsync(LoadOptions.Parse(["--key", "wrong", "--connections", "1", "--requests", "1"]), new PingScenario(), server.EndPoint, "wrong", TextWriter.Null, CancellationToken.None);
            }
            catch (InvalidOperationException e) when (e.Message.Contains("Unauthenticated", StringComparison.Ordinal))
            {
                refused = true;
            }
            Check(refused, "handshake refused with Unauthenticated");
        }

        log.WriteLine("loopback guard");
        Check(Throws(() => LoadRunner.ResolveLoopback("10.1.2.3", 7420)), "10.1.2.3 refused");
        Check(Throws(() => LoadRunner.ResolveLoopback("example.com", 7420)), "example.com refused");
        Check(!Throws(() => LoadRunner.ResolveLoopback("127.0.0.1", 7420)) && !Throws(() => LoadRunner.ResolveLoopback("localhost", 7420)), "127.0.0.1 and localhost accepted");

        log.WriteLine("json report");
        var sample = new LoadReport { Scenario = "ping", Model = "closed", Ok = 5, Latency = new LatencySummary { Count = 5, P99Ms = 0.1 } };
        using (var ms = new MemoryStream())
        {
            sample.WriteJson(ms);
            using var doc = System.Text.Json.JsonDocument.Parse(ms.ToArray());
            Check(doc.RootElement.GetProperty("ok").GetInt64() == 5 && doc.RootElement.GetProperty("latencyMs").GetProperty("p99").GetDouble() == 0.1, "json round-trips ok and latencyMs.p99");
        }

        log.WriteLine(failures == 0 ? "self-test passed" : $"self-test FAILED: {failures} check(s)");
        return failures == 0 ? 0 : 1;
    }

    private static bool Throws(Action a)
    {
        try
        {
            a();
            return false;
        }
        catch (ArgumentException)
        {
            return true;
        }
    }

    private static Task<LoadReport> RunAsync(FakeServer server, string args)
    {
        var options = LoadOptions.Parse([.. args.Split(' '), "--key", Key]);
        return LoadRunner.RunAsync(options, new PingScenario(), server.EndPoint, Key, TextWriter.Null, CancellationToken.None);
    }
}
