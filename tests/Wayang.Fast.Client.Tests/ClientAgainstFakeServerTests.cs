using System.Buffers.Binary;
using MessagePack;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Client.Tests;

public sealed class ClientAgainstFakeServerTests
{
    [Fact]
    public async Task Connect_sends_hello_and_exposes_the_welcome_session()
    {
        await using var server = new FakeServer();
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions(o => { o.ClientName = "unit"; o.InitialStreamCredit = 7; }));

        Assert.NotNull(client.Session);
        Assert.Equal("s1", client.Session!.SessionId);
        Assert.Equal(7u, client.Session.InitialStreamCredit);
        Assert.Equal(["platform-admin"], client.Session.Roles);
        var hello = server.Session(1).Hello!;
        Assert.Equal("unit", hello.ClientName);
        Assert.Equal("test-key", hello.ApiKey);
        Assert.Equal(WireOptions.ProtocolVersion, hello.ProtocolVersion);
    }

    [Fact]
    public async Task Ping_round_trips()
    {
        await using var server = new FakeServer();
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var rtt = await client.PingAsync();

        Assert.True(rtt > TimeSpan.Zero);
        var frame = Assert.Single(server.Frames);
        Assert.Equal(FrameType.Request, frame.Type);
        Assert.Equal(Opcode.Ping, frame.Opcode);
        Assert.NotEqual(0u, frame.StreamId);
        Assert.Empty(frame.Body);
    }

    [Fact]
    public async Task Many_concurrent_calls_share_one_connection_with_distinct_stream_ids()
    {
        await using var server = new FakeServer();
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var calls = Enumerable.Range(0, 500).Select(_ => Task.Run(async () => await client.PingAsync())).ToArray();
        await Task.WhenAll(calls);

        Assert.Equal(1, server.Accepted);
        var ids = server.Frames.Select(f => f.StreamId).ToList();
        Assert.Equal(500, ids.Count);
        Assert.Equal(500, ids.Distinct().Count());
    }

    [Fact]
    public async Task Replies_out_of_order_reach_their_own_callers()
    {
        await using var server = new FakeServer();
        var held = new List<ReceivedFrame>();
        server.OnFrame = async (session, frame) =>
        {
            if (frame.Type != FrameType.Request)
                return;
            held.Add(frame);
            if (held.Count < 3)
                return;
            // Answer in reverse order, each with the tenant id its request carried.
            for (int i = held.Count - 1; i >= 0; i--)
            {
                var request = MessagePackSerializer.Deserialize<TenantCreateRequest>(held[i].Body, WireOptions.Untrusted);
                await session.SendMessageAsync(FrameType.Response, held[i].Opcode, held[i].StreamId,
                    new TenantInfoDto { TenantId = request.TenantId, DisplayName = "d-" + request.TenantId, CreatedAtMs = 1000 });
            }
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var a = client.CreateTenantAsync("a");
        await server.WaitForFrameAsync(f => f.Type == FrameType.Request);
        var b = client.CreateTenantAsync("b");
        await Wait.UntilAsync(() => server.Frames.Count == 2);
        var c = client.CreateTenantAsync("c");

        Assert.Equal("d-a", (await a).DisplayName);
        Assert.Equal("d-b", (await b).DisplayName);
        Assert.Equal("c", (await c).TenantId);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1000), (await c).CreatedAt);
    }

    [Fact]
    public async Task Server_error_maps_to_WayangException_with_code_retryable_retry_after_and_details()
    {
        await using var server = new FakeServer
        {
            OnFrame = (session, frame) => frame.Opcode == Opcode.Ping
                ? FakeServer.DefaultBehaviour(session, frame)
                : session.SendErrorAsync(frame.StreamId, ErrorCode.TooManyInFlight, "slow down", 250, new Dictionary<string, string> { ["limit"] = "1024" }),
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var e = await Assert.ThrowsAsync<WayangException>(() => client.ListTenantsAsync());

        Assert.Equal(ErrorCode.TooManyInFlight, e.Code);
        Assert.Equal("TOO_MANY_IN_FLIGHT", e.Error.Name);
        Assert.Equal("slow down", e.Error.Message);
        Assert.True(e.Retryable);
        Assert.Equal(TimeSpan.FromMilliseconds(250), e.RetryAfter);
        Assert.Equal("1024", e.Error.Details["limit"]);
        // The connection survives a request-level error.
        await client.PingAsync();
        Assert.Equal(1, server.Accepted);
    }

    [Fact]
    public async Task Unknown_error_code_keeps_the_server_name()
    {
        await using var server = new FakeServer
        {
            OnFrame = (session, frame) => session.SendMessageAsync(FrameType.Error, Opcode.None, frame.StreamId,
                new ErrorBody { Code = 3999, Name = "FUTURE_THING", Message = "new", Retryable = true }),
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var e = await Assert.ThrowsAsync<WayangException>(() => client.PingAsync().AsTask());

        Assert.Equal((ErrorCode)3999, e.Code);
        Assert.True(e.Retryable);
        Assert.Equal("FUTURE_THING", e.Error.Details["name"]);
    }

    [Fact]
    public async Task Timeout_fails_the_call_with_CLIENT_TIMEOUT_and_sends_CANCEL()
    {
        await using var server = new FakeServer { OnFrame = (_, _) => Task.CompletedTask };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var e = await Assert.ThrowsAsync<WayangException>(() => client.PingAsync(TimeSpan.FromMilliseconds(100)).AsTask());

        Assert.Equal(ErrorCode.ClientTimeout, e.Code);
        Assert.True(e.Retryable);
        var request = server.Frames.Single(f => f.Type == FrameType.Request);
        var cancel = await server.WaitForFrameAsync(f => f.Type == FrameType.Cancel);
        Assert.Equal(request.StreamId, cancel.StreamId);
    }

    [Fact]
    public async Task Default_timeout_from_options_applies()
    {
        await using var server = new FakeServer { OnFrame = (_, _) => Task.CompletedTask };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions(o => o.DefaultTimeout = TimeSpan.FromMilliseconds(50)));

        var e = await Assert.ThrowsAsync<WayangException>(() => client.ListKeysAsync());

        Assert.Equal(ErrorCode.ClientTimeout, e.Code);
    }

    [Fact]
    public async Task Cancellation_fails_the_call_with_CANCELLED_and_sends_CANCEL()
    {
        await using var server = new FakeServer { OnFrame = (_, _) => Task.CompletedTask };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());
        using var cts = new CancellationTokenSource();

        var call = client.PingAsync(ct: cts.Token).AsTask();
        var request = await server.WaitForFrameAsync(f => f.Type == FrameType.Request);
        await cts.CancelAsync();

        var e = await Assert.ThrowsAsync<WayangException>(() => call);
        Assert.Equal(ErrorCode.Cancelled, e.Code);
        var cancel = await server.WaitForFrameAsync(f => f.Type == FrameType.Cancel);
        Assert.Equal(request.StreamId, cancel.StreamId);
    }

    [Fact]
    public async Task A_late_reply_after_timeout_is_ignored_and_pooled_calls_stay_correct()
    {
        var late = new List<ReceivedFrame>();
        await using var server = new FakeServer();
        server.OnFrame = async (session, frame) =>
        {
            if (frame.Type != FrameType.Request)
                return;
            var request = MessagePackSerializer.Deserialize<KeyRevokeRequest>(frame.Body, WireOptions.Untrusted);
            if (request.KeyId == "slow")
            {
                lock (late)
                    late.Add(frame);
                return;
            }
            if (request.KeyId == "release")
            {
                // Answer the timed-out call now, then this one: the late reply must not leak into another call.
                foreach (var held in late)
                    await session.SendMessageAsync(FrameType.Response, held.Opcode, held.StreamId, new ApiKeyInfoDto { KeyId = "slow" });
            }
            await session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId, new ApiKeyInfoDto { KeyId = request.KeyId });
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        await Assert.ThrowsAsync<WayangException>(() => client.RevokeKeyAsync("slow", TimeSpan.FromMilliseconds(30)));
        for (int i = 0; i < 20; i++)
            Assert.Equal("k" + i, (await client.RevokeKeyAsync("k" + i)).KeyId);
        Assert.Equal("release", (await client.RevokeKeyAsync("release")).KeyId);
        Assert.Equal("after", (await client.RevokeKeyAsync("after")).KeyId);
    }

    [Fact]
    public async Task Tick_stream_grants_credit_as_the_caller_consumes()
    {
        const int total = 20;
        await using var server = new FakeServer();
        var credit = 0;
        var sent = 0;
        var creditSignal = new SemaphoreSlim(0);
        server.OnFrame = (session, frame) =>
        {
            if (frame.Type == FrameType.Credit)
            {
                Interlocked.Add(ref credit, (int)MessagePackSerializer.Deserialize<CreditBody>(frame.Body, WireOptions.Untrusted).Credits);
                creditSignal.Release();
            }
            else if (frame.Type == FrameType.Request && frame.Opcode == Opcode.Tick)
            {
                var request = MessagePackSerializer.Deserialize<TickRequest>(frame.Body, WireOptions.Untrusted);
                Interlocked.Add(ref credit, (int)session.Hello!.InitialStreamCredit);
                _ = Task.Run(async () =>
                {
                    // A server that honours credit: it sends only while it holds some.
                    for (int i = 0; i < request.Count; i++)
                    {
                        while (Volatile.Read(ref credit) == 0)
                            await creditSignal.WaitAsync();
                        Interlocked.Decrement(ref credit);
                        await session.SendMessageAsync(FrameType.Stream, Opcode.Tick, frame.StreamId, new TickItem { Sequence = i, UnixTimeMs = 1 });
                        Interlocked.Increment(ref sent);
                    }
                    await session.SendAsync(FrameType.End, Opcode.Tick, frame.StreamId, []);
                });
            }
            return Task.CompletedTask;
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions(o => o.InitialStreamCredit = 4));

        var received = new List<int>();
        await using (var e = client.TickAsync(total).GetAsyncEnumerator())
        {
            Assert.True(await e.MoveNextAsync());
            received.Add(e.Current.Sequence);
            // The caller holds the first item: the server can send the initial window and no more.
            await Wait.UntilAsync(() => Volatile.Read(ref sent) == 4);
            Assert.DoesNotContain(server.Frames, f => f.Type == FrameType.Credit);
            Assert.Equal(4, Volatile.Read(ref sent));

            while (await e.MoveNextAsync())
                received.Add(e.Current.Sequence);
        }

        Assert.Equal(Enumerable.Range(0, total), received);
        var grants = server.Frames.Where(f => f.Type == FrameType.Credit).ToList();
        Assert.NotEmpty(grants);
        // Credits are granted in batches of half the window.
        Assert.All(grants, g => Assert.Equal(2u, MessagePackSerializer.Deserialize<CreditBody>(g.Body, WireOptions.Untrusted).Credits));
        Assert.DoesNotContain(server.Frames, f => f.Type == FrameType.Cancel);
    }

    [Fact]
    public async Task Breaking_out_of_a_stream_sends_CANCEL()
    {
        await using var server = new FakeServer();
        server.OnFrame = async (session, frame) =>
        {
            if (frame.Type == FrameType.Request)
            {
                for (int i = 0; i < 3; i++)
                    await session.SendMessageAsync(FrameType.Stream, Opcode.Tick, frame.StreamId, new TickItem { Sequence = i });
            }
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        await foreach (var item in client.TickAsync(100))
        {
            if (item.Sequence == 1)
                break;
        }

        var request = server.Frames.Single(f => f.Type == FrameType.Request);
        var cancel = await server.WaitForFrameAsync(f => f.Type == FrameType.Cancel);
        Assert.Equal(request.StreamId, cancel.StreamId);
    }

    [Fact]
    public async Task Stream_error_surfaces_as_WayangException_after_the_items()
    {
        await using var server = new FakeServer();
        server.OnFrame = async (session, frame) =>
        {
            if (frame.Type == FrameType.Request)
            {
                await session.SendMessageAsync(FrameType.Stream, Opcode.Tick, frame.StreamId, new TickItem { Sequence = 0 });
                await session.SendErrorAsync(frame.StreamId, ErrorCode.InvalidArgument, "count too large");
            }
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var items = new List<int>();
        var e = await Assert.ThrowsAsync<WayangException>(async () =>
        {
            await foreach (var item in client.TickAsync(1_000_000))
                items.Add(item.Sequence);
        });

        Assert.Equal([0], items);
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
    }

    [Fact]
    public async Task Connection_drop_fails_in_flight_calls_with_CONNECTION_CLOSED_and_the_next_call_reconnects()
    {
        await using var server = new FakeServer();
        server.OnFrame = (session, frame) =>
        {
            if (session.Number == 1)
            {
                session.Abort();
                return Task.CompletedTask;
            }
            return FakeServer.DefaultBehaviour(session, frame);
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var e = await Assert.ThrowsAsync<WayangException>(() => client.PingAsync().AsTask());
        Assert.Equal(ErrorCode.ConnectionClosed, e.Code);
        Assert.True(e.Retryable);

        await client.PingAsync();
        Assert.Equal(2, server.Accepted);
        Assert.Equal(2, client.ConnectionCount);
    }

    [Fact]
    public async Task Connection_level_error_before_close_is_reported_to_in_flight_calls()
    {
        await using var server = new FakeServer();
        server.OnFrame = async (session, frame) =>
        {
            await session.SendErrorAsync(0, ErrorCode.IdleTimeout, "idle");
            session.Abort();
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var e = await Assert.ThrowsAsync<WayangException>(() => client.PingAsync().AsTask());

        Assert.Equal(ErrorCode.ConnectionClosed, e.Code);
        Assert.Equal("IDLE_TIMEOUT", e.Error.Details["cause"]);
    }

    [Fact]
    public async Task GoAway_lets_in_flight_calls_finish_and_new_calls_use_a_new_connection()
    {
        await using var server = new FakeServer();
        var held = new TaskCompletionSource<ReceivedFrame>(TaskCreationOptions.RunContinuationsAsynchronously);
        server.OnFrame = async (session, frame) =>
        {
            if (session.Number == 1 && frame.Type == FrameType.Request)
            {
                held.TrySetResult(frame);
                await session.SendMessageAsync(FrameType.GoAway, Opcode.None, 0, new GoAwayBody { LastStreamId = frame.StreamId, Code = (int)ErrorCode.ShuttingDown, Message = "bye" });
                return;
            }
            await FakeServer.DefaultBehaviour(session, frame);
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var inFlight = client.PingAsync().AsTask();
        var first = await held.Task;
        await Wait.UntilAsync(() => !client.IsConnected, what: "GOAWAY seen");

        await client.PingAsync();
        Assert.Equal(2, server.Accepted);
        Assert.All(server.Frames.Where(f => f.SessionNumber == 1), f => Assert.Equal(first.StreamId, f.StreamId));

        // The old connection still delivers the reply of the call it accepted, then the client closes it.
        await server.Session(1).SendAsync(FrameType.Response, Opcode.Ping, first.StreamId, []);
        await inFlight;
        await server.Session(1).Closed.WaitAsync(TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task Authentication_failure_is_not_retried()
    {
        await using var server = new FakeServer
        {
            Authenticate = _ => new ErrorBody { Code = (int)ErrorCode.Unauthenticated, Name = "UNAUTHENTICATED", Message = "bad key" },
        };

        var e = await Assert.ThrowsAsync<WayangException>(() => WayangClient.ConnectAsync(server.ClientOptions()));

        Assert.Equal(ErrorCode.Unauthenticated, e.Code);
        Assert.False(e.Retryable);
        Assert.Equal(1, server.Accepted);
    }

    [Fact]
    public async Task Unreachable_server_fails_with_NOT_CONNECTED_after_the_configured_attempts()
    {
        int port;
        await using (var server = new FakeServer())
            port = server.Port;
        var options = new WayangClientOptions { Host = "127.0.0.1", Port = port, KeepAliveInterval = TimeSpan.Zero };
        options.Reconnect.MaxAttempts = 3;
        options.Reconnect.BaseDelay = TimeSpan.FromMilliseconds(1);
        await using var client = new WayangClient(options);

        var e = await Assert.ThrowsAsync<WayangException>(() => client.PingAsync().AsTask());

        Assert.Equal(ErrorCode.NotConnected, e.Code);
        Assert.True(e.Retryable);
        Assert.Contains("3 attempt", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Lazy_client_connects_on_first_call()
    {
        await using var server = new FakeServer();
        await using var client = new WayangClient(server.ClientOptions());
        Assert.Equal(0, server.Accepted);
        Assert.Null(client.Session);

        await client.PingAsync();

        Assert.Equal(1, server.Accepted);
        Assert.NotNull(client.Session);
    }

    [Fact]
    public async Task Server_ping_is_answered_with_pong_carrying_the_same_body()
    {
        await using var server = new FakeServer();
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        await server.Session(1).SendAsync(FrameType.Ping, Opcode.None, 0, [1, 2, 3, 4]);

        var pong = await server.WaitForFrameAsync(f => f.Type == FrameType.Pong);
        Assert.Equal(0u, pong.StreamId);
        Assert.Equal([1, 2, 3, 4], pong.Body);
    }

    [Fact]
    public async Task Idle_connection_sends_keep_alive_pings()
    {
        await using var server = new FakeServer();
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions(o => o.KeepAliveInterval = TimeSpan.FromMilliseconds(50)));

        var ping = await server.WaitForFrameAsync(f => f.Type == FrameType.Ping);

        Assert.Equal(0u, ping.StreamId);
        Assert.Equal(8, ping.Body.Length);
        Assert.True(BinaryPrimitives.ReadInt64LittleEndian(ping.Body) > 0);
    }

    [Fact]
    public async Task Request_larger_than_the_server_maximum_is_refused_locally()
    {
        await using var server = new FakeServer { MaxFrameBytes = 64 };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var e = await Assert.ThrowsAsync<WayangException>(() => client.CreateTenantAsync(new string('a', 200)));

        Assert.Equal(ErrorCode.FrameTooLarge, e.Code);
        await client.PingAsync();
        Assert.DoesNotContain(server.Frames, f => f.Opcode == Opcode.TenantCreate);
    }

    [Fact]
    public async Task Admin_calls_send_the_documented_bodies_and_map_replies()
    {
        await using var server = new FakeServer();
        server.OnFrame = async (session, frame) =>
        {
            var key = new ApiKeyInfoDto { KeyId = "key1", TenantId = "acme", Name = "ci", Roles = ["developer"], CreatedAtMs = 5, Revoked = true, RevokedAtMs = 9 };
            switch (frame.Opcode)
            {
                case Opcode.TenantList:
                    Assert.Empty(frame.Body);
                    await session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId, new TenantListResponse { Tenants = [new TenantInfoDto { TenantId = "acme" }] });
                    break;
                case Opcode.KeyCreate:
                    var create = MessagePackSerializer.Deserialize<KeyCreateRequest>(frame.Body, WireOptions.Untrusted);
                    Assert.Equal(("acme", "ci", "developer,viewer"), (create.TenantId, create.Name, string.Join(',', create.Roles)));
                    await session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId, new KeyCreateResponse { Secret = "wk_secret", Key = key });
                    break;
                case Opcode.KeyList:
                    Assert.Equal("", MessagePackSerializer.Deserialize<KeyListRequest>(frame.Body, WireOptions.Untrusted).TenantId);
                    await session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId, new KeyListResponse { Keys = [key] });
                    break;
            }
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        Assert.Equal("acme", Assert.Single(await client.ListTenantsAsync()).TenantId);
        var created = await client.CreateKeyAsync("acme", "ci", ["developer", "viewer"]);
        Assert.Equal("wk_secret", created.Secret);
        Assert.Equal(["developer"], created.Key.Roles);
        var listed = Assert.Single(await client.ListKeysAsync());
        Assert.True(listed.Revoked);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(9), listed.RevokedAt);
    }

    [Fact]
    public async Task Calls_after_dispose_throw()
    {
        await using var server = new FakeServer();
        var client = await WayangClient.ConnectAsync(server.ClientOptions());
        await client.DisposeAsync();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => client.PingAsync().AsTask());
    }

    [Fact]
    public void Backoff_grows_exponentially_and_is_capped()
    {
        var policy = new WayangReconnectOptions { BaseDelay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromSeconds(1) };
        for (int i = 0; i < 50; i++)
        {
            var first = WayangClient.BackoffDelay(policy, 1);
            Assert.InRange(first.TotalMilliseconds, 50, 100);
            var third = WayangClient.BackoffDelay(policy, 3);
            Assert.InRange(third.TotalMilliseconds, 200, 400);
            var late = WayangClient.BackoffDelay(policy, 20);
            Assert.InRange(late.TotalMilliseconds, 500, 1000);
        }
    }
}
