using System.Net;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Tests;

public sealed class ShutdownTests
{
    [Fact]
    public async Task Stop_sends_goaway_refuses_new_requests_and_drains_in_flight()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await server.ConnectAsync();
        await client.PingAsync(9);
        await client.RequestAsync(Opcode.Tick, 11, new TickRequest { Count = 3, IntervalMs = 200 });
        Assert.Equal(FrameType.Stream, (await client.ExpectFrameAsync()).Type);

        var stop = server.Server.StopAsync();
        var frames = new List<ReceivedFrame>();
        ReceivedFrame? goAway = null;
        while (goAway is null)
        {
            var f = await client.ExpectFrameAsync();
            if (f.Type == FrameType.GoAway)
                goAway = f;
            else
                frames.Add(f);
        }
        var body = goAway.Decode<GoAwayBody>();
        Assert.Equal(11u, body.LastStreamId);
        Assert.Equal((int)ErrorCode.ShuttingDown, body.Code);

        await client.SendAsync(FrameType.Request, Opcode.Ping, 13);
        frames.AddRange(await client.ReadUntilClosedAsync());
        await stop.WaitAsync(RawClient.Deadline);

        Assert.Contains(frames, f => f.Type == FrameType.Error && f.StreamId == 13 && f.ErrorCode == ErrorCode.ShuttingDown);
        Assert.Equal(2, frames.Count(f => f.Type == FrameType.Stream && f.StreamId == 11));
        Assert.Contains(frames, f => f.Type == FrameType.End && f.StreamId == 11);
        Assert.True(server.Server.Completion.IsCompleted);
    }

    [Fact]
    public async Task Stop_before_any_connection_completes_and_releases_the_directory()
    {
        var dir = TestServer.NewDataDirectory();
        var server = await WayangServer.StartAsync(TestServer.Options(dir));
        await server.StopAsync();
        await server.StopAsync();
        // The store's directory lock is released: a second server can open it.
        var again = await WayangServer.StartAsync(TestServer.Options(dir));
        await again.DisposeAsync();
        Directory.Delete(dir, recursive: true);
    }
}

public sealed class HttpTests
{
    [Fact]
    public async Task Health_ready_and_metrics()
    {
        await using var server = await TestServer.StartAsync();
        await using (var client = await server.ConnectAsync())
        {
            await client.PingAsync(1);
            await client.SendAsync(FrameType.Request, (Opcode)0x7001, 2);
            await client.ExpectErrorAsync(ErrorCode.UnknownOpcode, 2);
            // An audited change: one audit record.
            await client.RequestAsync(Opcode.TenantCreate, 3, new TenantCreateRequest { TenantId = "acme" });
            Assert.Equal(FrameType.Response, (await client.ExpectFrameAsync()).Type);
        }

        using var http = new HttpClient { BaseAddress = new Uri($"http://{server.Server.HttpEndPoint}") };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri("/healthz", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri("/readyz", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync(new Uri("/nope", UriKind.Relative))).StatusCode);

        var metrics = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        foreach (var series in new[]
        {
            "wayang_connections_current ", "wayang_connections_total ", "wayang_requests_in_flight ",
            "wayang_frames_in_total{type=\"request\"} ", "wayang_frames_out_total{type=\"response\"} ",
            "wayang_bytes_in_total ", "wayang_bytes_out_total ",
            "wayang_request_duration_seconds_bucket{opcode=\"ping\",le=\"+Inf\"} ", "wayang_request_duration_seconds_count{opcode=\"ping\"} ",
            "wayang_errors_total{code=\"UNKNOWN_OPCODE\"} 1", "wayang_journal_commit_duration_seconds_count ",
            "wayang_session_faults_total 0", "wayang_audit_records_total 1\n",
            "wayang_store_checkpoints_total ", "wayang_store_compactions_total 0\n", "wayang_store_compacted_bytes_total 0\n",
            "wayang_store_expired_records_total 0\n",
            "wayang_threadpool_work_items_total ", "wayang_threadpool_threads ", "wayang_threadpool_queue_length ",
        })
        {
            Assert.Contains(series, metrics, StringComparison.Ordinal);
        }
        // The requests above ran on the pool, which therefore has threads and has completed work.
        Assert.True(SampleValue(metrics, "wayang_threadpool_work_items_total") > 0);
        Assert.True(SampleValue(metrics, "wayang_threadpool_threads") >= 1);
        // The bootstrap key was committed, so the storage hook has reported at least one group commit.
        Assert.DoesNotContain("wayang_journal_commit_duration_seconds_count 0\n", metrics, StringComparison.Ordinal);

        var stop = server.Server.StopAsync();
        await stop;
    }

    [Fact]
    public async Task Readyz_turns_unavailable_when_shutting_down()
    {
        await using var server = await TestServer.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://{server.Server.HttpEndPoint}") };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri("/readyz", UriKind.Relative))).StatusCode);
        server.Server.Core.BeginShutdown();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await http.GetAsync(new Uri("/readyz", UriKind.Relative))).StatusCode);
    }

    private static long SampleValue(string metrics, string name)
    {
        var line = metrics.Split('\n').Single(l => l.StartsWith(name + " ", StringComparison.Ordinal));
        return long.Parse(line.AsSpan(name.Length + 1), System.Globalization.CultureInfo.InvariantCulture);
    }
}
