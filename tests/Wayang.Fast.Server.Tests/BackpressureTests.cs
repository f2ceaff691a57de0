using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Tests;

public sealed class BackpressureTests
{
    // A client that pipelines far more than the socket buffers hold before reading anything: the server
    // stops reading while its flush is blocked (backpressure), and every reply arrives once the client reads.
    [Fact]
    public async Task Pipelined_requests_from_a_client_that_reads_late_are_all_answered()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await server.ConnectAsync();
        const int count = 200_000;
        var batch = new byte[count * FrameHeader.Size];
        for (int i = 0; i < count; i++)
            RawClient.Frame(FrameType.Request, Opcode.Ping, (uint)(i + 1)).CopyTo(batch, i * FrameHeader.Size);

        var send = client.SendAsync(batch);
        for (int i = 0; i < count; i++)
        {
            var reply = await client.ExpectFrameAsync();
            Assert.Equal((FrameType.Response, (uint)(i + 1)), (reply.Type, reply.StreamId));
        }
        await send;
        Assert.Equal(0, server.Server.Core.Metrics.ErrorCount(ErrorCode.SlowConsumer));
    }

    // Many streams with plenty of credit and a peer that never reads: what piles up while the output is
    // blocked passes MaxPendingWriteBytes, and the connection is closed as SLOW_CONSUMER.
    [Fact]
    public async Task A_peer_that_never_reads_its_streams_is_a_slow_consumer()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.MaxFrameBytes = 1024;
            o.MaxPendingWriteBytes = 1024;
        });
        await using var client = await server.ConnectAsync(credit: 1_000_000);
        var requests = new List<byte>();
        for (uint s = 1; s <= 100; s++)
            requests.AddRange(RawClient.MessageFrame(FrameType.Request, Opcode.Tick, s, new TickRequest { Count = 10_000 }));
        await client.SendAsync([.. requests]);

        await Wait.UntilAsync(() => server.Server.Core.Metrics.ErrorCount(ErrorCode.SlowConsumer) > 0, "the server declares a slow consumer", TimeSpan.FromSeconds(60));
        var frames = await client.ReadUntilClosedAsync();
        Assert.Contains(frames, f => f.Type == FrameType.Error && f.StreamId == 0 && f.ErrorCode == ErrorCode.SlowConsumer);
        // Streams cut short by the close get no END (some may have finished before the output blocked).
        Assert.True(frames.Count(f => f.Type == FrameType.End) < 100);

        await using var other = await server.ConnectAsync();
        await other.PingAsync(1);
    }
}
