using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Tests;

public sealed class StreamTests
{
    [Fact]
    public async Task Tick_honours_credit_exactly()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await server.ConnectAsync(credit: 3);
        await client.RequestAsync(Opcode.Tick, 1, new TickRequest { Count = 10 });
        for (int i = 0; i < 3; i++)
        {
            var item = await client.ExpectFrameAsync();
            Assert.Equal((FrameType.Stream, 1u), (item.Type, item.StreamId));
            Assert.Equal(i, item.Decode<TickItem>().Sequence);
        }
        // Credit is spent: a round trip on another stream must come back with nothing from stream 1 before it.
        await client.PingAsync(3);

        await client.SendMessageAsync(FrameType.Credit, Opcode.Tick, 1, new CreditBody { Credits = 7 });
        for (int i = 3; i < 10; i++)
        {
            var item = await client.ExpectFrameAsync();
            Assert.Equal((FrameType.Stream, 1u, i), (item.Type, item.StreamId, item.Decode<TickItem>().Sequence));
        }
        var end = await client.ExpectFrameAsync();
        Assert.Equal((FrameType.End, 1u), (end.Type, end.StreamId));
        Assert.Empty(end.Body);
    }

    [Fact]
    public async Task Cancel_of_a_tick_answers_cancelled()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await server.ConnectAsync(credit: 1);
        await client.RequestAsync(Opcode.Tick, 5, new TickRequest { Count = 100 });
        var first = await client.ExpectFrameAsync();
        Assert.Equal(FrameType.Stream, first.Type);
        await client.SendAsync(FrameType.Cancel, Opcode.Tick, 5);
        await client.ExpectErrorAsync(ErrorCode.Cancelled, 5);
        // The stream id is free again.
        await client.PingAsync(5);
        // CANCEL and CREDIT for unknown streams are ignored.
        await client.SendAsync(FrameType.Cancel, Opcode.Tick, 77);
        await client.SendMessageAsync(FrameType.Credit, Opcode.Tick, 78, new CreditBody { Credits = 1 });
        await client.PingAsync(6);
    }

    [Fact]
    public async Task Credit_overflow_ends_the_stream()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await server.ConnectAsync(credit: 1);
        await client.RequestAsync(Opcode.Tick, 1, new TickRequest { Count = 5 });
        Assert.Equal(FrameType.Stream, (await client.ExpectFrameAsync()).Type);
        await client.SendMessageAsync(FrameType.Credit, Opcode.Tick, 1, new CreditBody { Credits = 2_000_000 });
        // The overflowing grant was refused, so no more items arrive before the error.
        await client.ExpectErrorAsync(ErrorCode.CreditOverflow, 1);
        await client.PingAsync(2);
    }

    [Fact]
    public async Task Replies_come_out_of_order()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await server.ConnectAsync();
        // The Tick's END is at least 300 ms away; the Ping behind it is answered at once.
        await client.SendAsync([
            .. RawClient.MessageFrame(FrameType.Request, Opcode.Tick, 1, new TickRequest { Count = 2, IntervalMs = 300 }),
            .. RawClient.Frame(FrameType.Request, Opcode.Ping, 3)]);
        var order = new List<(FrameType, uint)>();
        while (order.Count < 4)
        {
            var f = await client.ExpectFrameAsync();
            order.Add((f.Type, f.StreamId));
        }
        Assert.True(order.IndexOf((FrameType.Response, 3u)) < order.IndexOf((FrameType.End, 1u)), string.Join(", ", order));
        Assert.Equal(2, order.Count(o => o == (FrameType.Stream, 1u)));
    }

    [Fact]
    public async Task Duplicate_stream_id_is_refused_while_in_flight()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await server.ConnectAsync(credit: 1);
        await client.RequestAsync(Opcode.Tick, 7, new TickRequest { Count = 5 });
        Assert.Equal(FrameType.Stream, (await client.ExpectFrameAsync()).Type);
        await client.SendAsync(FrameType.Request, Opcode.Ping, 7);
        await client.ExpectErrorAsync(ErrorCode.DuplicateStream, 7);
        await client.SendAsync(FrameType.Cancel, Opcode.Tick, 7);
        await client.ExpectErrorAsync(ErrorCode.Cancelled, 7);
    }

    [Fact]
    public async Task Too_many_in_flight_is_refused_per_request()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxInFlightPerConnection = 2);
        await using var client = await server.ConnectAsync(credit: 1);
        await client.RequestAsync(Opcode.Tick, 1, new TickRequest { Count = 5 });
        await client.RequestAsync(Opcode.Tick, 2, new TickRequest { Count = 5 });
        Assert.Equal(FrameType.Stream, (await client.ExpectFrameAsync()).Type);
        Assert.Equal(FrameType.Stream, (await client.ExpectFrameAsync()).Type);
        await client.SendAsync(FrameType.Request, Opcode.Ping, 3);
        var refused = await client.ExpectErrorAsync(ErrorCode.TooManyInFlight, 3);
        Assert.True(refused.Decode<ErrorBody>().Retryable);

        await client.SendAsync(FrameType.Cancel, Opcode.Tick, 1);
        await client.ExpectErrorAsync(ErrorCode.Cancelled, 1);
        await client.PingAsync(4);
    }

    [Fact]
    public async Task Invalid_tick_arguments_are_invalid_argument()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await server.ConnectAsync();
        await client.RequestAsync(Opcode.Tick, 1, new TickRequest { Count = 10_001 });
        await client.ExpectErrorAsync(ErrorCode.InvalidArgument, 1);
    }

    [Fact]
    public async Task Idle_connection_is_closed_with_idle_timeout()
    {
        await using var server = await TestServer.StartAsync(o => o.IdleTimeout = TimeSpan.FromMilliseconds(400));
        await using var client = await server.ConnectAsync();
        await client.PingAsync(1);
        await client.ExpectFatalAsync(ErrorCode.IdleTimeout);
    }

    [Fact]
    public async Task Connections_past_the_maximum_are_refused()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxConnections = 1);
        await using var first = await server.ConnectAsync();
        await using (var second = await RawClient.ConnectAsync(server.EndPoint))
            await second.ExpectFatalAsync(ErrorCode.TooManyConnections);
        await first.PingAsync(1);

        await first.DisposeAsync();
        await Wait.UntilAsync(() => Volatile.Read(ref server.Server.Core.Metrics.ConnectionsCurrent) == 0, "the first connection is gone");
        await using var third = await server.ConnectAsync();
        await third.PingAsync(1);
    }
}
