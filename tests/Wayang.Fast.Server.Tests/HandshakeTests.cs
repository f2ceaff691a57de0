using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Tests;

public sealed class HandshakeTests
{
    [Fact]
    public async Task Hello_with_the_bootstrap_key_gets_welcome()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await RawClient.ConnectAsync(server.EndPoint);
        var welcome = await client.HandshakeAsync(server.AdminKey, credit: 5);

        Assert.Equal(WireOptions.ProtocolVersion, welcome.ProtocolVersion);
        Assert.Equal("system", welcome.TenantId);
        Assert.Contains("platform-admin", welcome.Roles);
        Assert.Equal(WireOptions.DefaultMaxFrameBytes, welcome.MaxFrameBytes);
        Assert.Equal(1024, welcome.MaxInFlight);
        Assert.Equal(5u, welcome.InitialStreamCredit);
        Assert.False(string.IsNullOrEmpty(welcome.SessionId));
        Assert.False(string.IsNullOrEmpty(welcome.KeyId));
        await client.PingAsync(1);
    }

    [Fact]
    public async Task Zero_credit_in_hello_means_the_server_default()
    {
        await using var server = await TestServer.StartAsync(o => o.DefaultInitialStreamCredit = 7);
        await using var client = await RawClient.ConnectAsync(server.EndPoint);
        var welcome = await client.HandshakeAsync(server.AdminKey);
        Assert.Equal(7u, welcome.InitialStreamCredit);
    }

    [Fact]
    public async Task Start_raises_the_thread_pool_minimum_and_never_lowers_it()
    {
        // Process-wide: other servers in this test run raise it too, so only "at least" can be asserted.
        await using (var server = await TestServer.StartAsync(o => o.MinThreadPoolThreads = 24))
        {
            ThreadPool.GetMinThreads(out int workers, out _);
            Assert.True(workers >= 24, $"minimum worker threads {workers}");
        }
        await using (var server = await TestServer.StartAsync(o => o.MinThreadPoolThreads = 0))
        {
            ThreadPool.GetMinThreads(out int workers, out _);
            Assert.True(workers >= 24, $"0 must leave the pool alone, found {workers}");
        }
        var dir = TestServer.NewDataDirectory();
        try
        {
            await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => WayangServer.StartAsync(TestServer.Options(dir, o => o.MinThreadPoolThreads = -1)));
        }
        finally
        {
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Start_refuses_out_of_range_storage_and_retention_settings_before_opening_anything()
    {
        var dir = TestServer.NewDataDirectory();
        try
        {
            var error = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => WayangServer.StartAsync(TestServer.Options(dir, o => o.Storage.CheckpointJournalBytes = 1)));
            Assert.Equal("Storage.CheckpointJournalBytes", error.ParamName);
            // A run deleted before its idempotency key would let a repeat of the key run it again.
            var retention = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => WayangServer.StartAsync(TestServer.Options(dir, o =>
            {
                o.Execution.IdempotencyRetention = TimeSpan.FromHours(24);
                o.Execution.FinishedRunRetention = TimeSpan.FromHours(12);
            })));
            Assert.Equal("Execution.FinishedRunRetention", retention.ParamName);
            Assert.False(File.Exists(Path.Combine(dir, "MANIFEST.json")));
        }
        finally
        {
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Bootstrap_key_file_is_owner_only_and_holds_the_key()
    {
        await using var server = await TestServer.StartAsync();
        Assert.True(File.Exists(server.Server.BootstrapKeyFile));
        Assert.Equal(server.AdminKey, File.ReadAllText(server.Server.BootstrapKeyFile).Trim());
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(server.Server.BootstrapKeyFile));
    }

    [Fact]
    public async Task Wrong_key_is_unauthenticated_and_closed()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await RawClient.ConnectAsync(server.EndPoint);
        await client.SendAsync(RawClient.Hello("wyk_0000000000000000_00000000000000000000000000000000"));
        await client.ExpectFatalAsync(ErrorCode.Unauthenticated);

        await using var garbage = await RawClient.ConnectAsync(server.EndPoint);
        await garbage.SendAsync(RawClient.Hello("not a key"));
        await garbage.ExpectFatalAsync(ErrorCode.Unauthenticated);

        // Fatal for that connection only.
        await using var other = await server.ConnectAsync();
        await other.PingAsync(1);
    }

    [Fact]
    public async Task Revoked_key_is_refused_on_a_new_connection()
    {
        await using var server = await TestServer.StartAsync();
        await using var admin = await server.ConnectAsync();
        await admin.RequestAsync(Opcode.KeyCreate, 1, new KeyCreateRequest { TenantId = "system", Name = "soon-revoked", Roles = ["viewer"] });
        var created = (await admin.ExpectFrameAsync()).Decode<KeyCreateResponse>();

        await using (var before = await server.ConnectAsync(created.Secret))
            await before.PingAsync(1);

        await admin.RequestAsync(Opcode.KeyRevoke, 3, new KeyRevokeRequest { KeyId = created.Key.KeyId });
        var revoked = await admin.ExpectFrameAsync();
        Assert.Equal(FrameType.Response, revoked.Type);
        Assert.True(revoked.Decode<ApiKeyInfoDto>().Revoked);

        await using var after = await RawClient.ConnectAsync(server.EndPoint);
        await after.SendAsync(RawClient.Hello(created.Secret));
        await after.ExpectFatalAsync(ErrorCode.KeyRevoked);
    }

    [Fact]
    public async Task Revoking_a_key_closes_its_open_connections_and_the_revoking_one_after_its_reply()
    {
        await using var server = await TestServer.StartAsync();
        await using var admin = await server.ConnectAsync();
        await admin.RequestAsync(Opcode.KeyCreate, 1, new KeyCreateRequest { TenantId = "system", Name = "ops", Roles = ["platform-admin"] });
        var created = (await admin.ExpectFrameAsync()).Decode<KeyCreateResponse>();

        await using var open = await server.ConnectAsync(created.Secret);
        await open.PingAsync(1);
        await using var self = await server.ConnectAsync(created.Secret);

        // The key revokes itself: the reply arrives first, then KEY_REVOKED and close on the same connection.
        await self.RequestAsync(Opcode.KeyRevoke, 5, new KeyRevokeRequest { KeyId = created.Key.KeyId });
        var frames = await self.ReadUntilClosedAsync();
        Assert.True(frames.Count == 2 && frames[0].Type == FrameType.Response && frames[0].StreamId == 5
            && frames[1].Type == FrameType.Error && frames[1].StreamId == 0 && frames[1].ErrorCode == ErrorCode.KeyRevoked,
            $"expected RESPONSE then ERROR KEY_REVOKED, got [{string.Join(", ", frames)}]");

        // The other connection on that key is closed with KEY_REVOKED without sending anything.
        await open.ExpectFatalAsync(ErrorCode.KeyRevoked);

        // Connections on other keys are untouched.
        await admin.PingAsync(7);
    }

    [Fact]
    public async Task Request_before_hello_is_handshake_required_and_closed()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await RawClient.ConnectAsync(server.EndPoint);
        await client.SendAsync(FrameType.Request, Opcode.Ping, 1);
        await client.ExpectFatalAsync(ErrorCode.HandshakeRequired);

        await using var other = await server.ConnectAsync();
        await other.PingAsync(1);
    }

    [Fact]
    public async Task Unsupported_protocol_version_in_hello_is_fatal()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await RawClient.ConnectAsync(server.EndPoint);
        await client.SendMessageAsync(FrameType.Hello, Opcode.None, 0, new HelloRequest { ProtocolVersion = 99, ApiKey = server.AdminKey });
        await client.ExpectFatalAsync(ErrorCode.UnsupportedVersion);
    }

    [Fact]
    public async Task Second_hello_is_already_authenticated_and_connection_stays()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await server.ConnectAsync();
        await client.SendAsync(RawClient.Hello(server.AdminKey));
        await client.ExpectErrorAsync(ErrorCode.AlreadyAuthenticated, 0);
        await client.PingAsync(1);
    }

    [Fact]
    public async Task No_hello_within_the_handshake_timeout_closes()
    {
        await using var server = await TestServer.StartAsync(o => o.HandshakeTimeout = TimeSpan.FromMilliseconds(300));
        await using var client = await RawClient.ConnectAsync(server.EndPoint);
        await client.ExpectFatalAsync(ErrorCode.HandshakeRequired);
    }
}
