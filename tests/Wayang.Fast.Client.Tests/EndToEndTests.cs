using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;
using Wayang.Fast.Server;

namespace Wayang.Fast.Client.Tests;

// The SDK against the real server on 127.0.0.1:0 with its own temp data directory.
public sealed class RealServerFixture : IAsyncLifetime
{
    public string DataDirectory { get; } = Path.Combine(Path.GetTempPath(), "wayang-client-e2e-" + Guid.NewGuid().ToString("N"));

    public WayangServer Server { get; private set; } = null!;

    public string AdminKey { get; private set; } = "";

    public async Task InitializeAsync()
    {
        Server = await WayangServer.StartAsync(new WayangServerOptions
        {
            DataDirectory = DataDirectory,
            Port = 0,
            HttpPort = -1,
            PrintBootstrapKey = false,
        });
        AdminKey = Server.BootstrapAdminKey ?? throw new InvalidOperationException("A fresh data directory must yield a bootstrap key.");
    }

    public WayangClientOptions Options(string? key = null) => new()
    {
        Host = "127.0.0.1",
        Port = Server.ProtocolEndPoint.Port,
        ApiKey = key ?? AdminKey,
        KeepAliveInterval = TimeSpan.Zero,
    };

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

public sealed class EndToEndTests(RealServerFixture fixture) : IClassFixture<RealServerFixture>
{
    private static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..10];

    [Fact]
    public async Task Bootstrap_key_is_platform_admin_of_the_system_tenant()
    {
        await using var client = await WayangClient.ConnectAsync(fixture.Options());

        Assert.Equal("system", client.Session!.TenantId);
        Assert.Contains("platform-admin", client.Session.Roles);
        Assert.True(client.Session.InitialStreamCredit > 0);
        Assert.True(File.Exists(fixture.Server.BootstrapKeyFile));
    }

    [Fact]
    public async Task Ping_works_concurrently_on_one_connection()
    {
        await using var client = await WayangClient.ConnectAsync(fixture.Options());

        var pings = Enumerable.Range(0, 200).Select(_ => client.PingAsync().AsTask()).ToArray();
        var times = await Task.WhenAll(pings);

        Assert.All(times, t => Assert.True(t > TimeSpan.Zero));
        Assert.Equal(1, client.ConnectionCount);
    }

    [Fact]
    public async Task Tick_streams_every_item_in_order_with_a_small_window()
    {
        var options = fixture.Options();
        options.InitialStreamCredit = 4;
        await using var client = await WayangClient.ConnectAsync(options);

        var sequences = new List<int>();
        await foreach (var item in client.TickAsync(100))
            sequences.Add(item.Sequence);

        Assert.Equal(100, sequences.Count);
        Assert.Equal(sequences.Order(), sequences);
        await client.PingAsync(); // the connection is healthy after the stream
    }

    [Fact]
    public async Task Leaving_a_tick_stream_early_cancels_it_and_the_connection_stays_usable()
    {
        await using var client = await WayangClient.ConnectAsync(fixture.Options());

        int seen = 0;
        await foreach (var _ in client.TickAsync(10_000, intervalMs: 1))
        {
            if (++seen == 3)
                break;
        }

        Assert.Equal(3, seen);
        await client.PingAsync();
    }

    [Fact]
    public async Task Tick_arguments_out_of_range_are_INVALID_ARGUMENT()
    {
        await using var client = await WayangClient.ConnectAsync(fixture.Options());

        var e = await Assert.ThrowsAsync<WayangException>(async () =>
        {
            await foreach (var _ in client.TickAsync(1_000_000))
            {
            }
        });

        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
    }

    [Fact]
    public async Task Tenants_and_keys_lifecycle()
    {
        await using var admin = await WayangClient.ConnectAsync(fixture.Options());
        var tenantId = Unique("acme");

        var tenant = await admin.CreateTenantAsync(tenantId, "Acme Corp");
        Assert.Equal(tenantId, tenant.TenantId);
        Assert.Equal("Acme Corp", tenant.DisplayName);
        Assert.Contains(await admin.ListTenantsAsync(), t => t.TenantId == tenantId);

        var exists = await Assert.ThrowsAsync<WayangException>(() => admin.CreateTenantAsync(tenantId));
        Assert.Equal(ErrorCode.TenantExists, exists.Code);

        var created = await admin.CreateKeyAsync(tenantId, "ci", ["tenant-admin"]);
        Assert.False(string.IsNullOrEmpty(created.Secret));
        Assert.Equal(tenantId, created.Key.TenantId);
        Assert.Equal(["tenant-admin"], created.Key.Roles);

        // The new key works, sees its own tenant, and is confined to it.
        await using (var tenantAdmin = await WayangClient.ConnectAsync(fixture.Options(created.Secret)))
        {
            Assert.Equal(tenantId, tenantAdmin.Session!.TenantId);
            var own = await tenantAdmin.ListKeysAsync();
            Assert.Contains(own, k => k.KeyId == created.Key.KeyId);

            var denied = await Assert.ThrowsAsync<WayangException>(() => tenantAdmin.ListTenantsAsync());
            Assert.Equal(ErrorCode.PermissionDenied, denied.Code);
        }

        var listed = await admin.ListKeysAsync(tenantId);
        Assert.Contains(listed, k => k.KeyId == created.Key.KeyId && !k.Revoked);

        var revoked = await admin.RevokeKeyAsync(created.Key.KeyId);
        Assert.True(revoked.Revoked);
        Assert.NotNull(revoked.RevokedAt);
        Assert.Contains(await admin.ListKeysAsync(tenantId), k => k.KeyId == created.Key.KeyId && k.Revoked);

        // A revoked key cannot connect, and the client does not retry an auth failure.
        var refused = await Assert.ThrowsAsync<WayangException>(() => WayangClient.ConnectAsync(fixture.Options(created.Secret)));
        Assert.True(refused.Code is ErrorCode.KeyRevoked or ErrorCode.Unauthenticated, refused.Code.ToString());
        Assert.False(refused.Retryable);
    }

    [Fact]
    public async Task Error_codes_surface_from_the_real_server()
    {
        await using var admin = await WayangClient.ConnectAsync(fixture.Options());

        var missingKey = await Assert.ThrowsAsync<WayangException>(() => admin.RevokeKeyAsync("no-such-key"));
        Assert.Equal(ErrorCode.KeyNotFound, missingKey.Code);
        Assert.Equal("KEY_NOT_FOUND", missingKey.Error.Name);

        var missingTenant = await Assert.ThrowsAsync<WayangException>(() => admin.CreateKeyAsync(Unique("ghost"), "k", ["viewer"]));
        Assert.Equal(ErrorCode.TenantNotFound, missingTenant.Code);

        var badName = await Assert.ThrowsAsync<WayangException>(() => admin.CreateTenantAsync("Not Valid!"));
        Assert.Equal(ErrorCode.InvalidArgument, badName.Code);

        var unknownOpcode = await Assert.ThrowsAsync<WayangException>(() => admin.CallAsync<TenantListResponse>((Opcode)0x0F0F).AsTask());
        Assert.Equal(ErrorCode.UnknownOpcode, unknownOpcode.Code);

        // Request-level errors leave the connection usable.
        await admin.PingAsync();
        Assert.Equal(1, admin.ConnectionCount);
    }

    [Fact]
    public async Task Wrong_key_is_UNAUTHENTICATED()
    {
        var e = await Assert.ThrowsAsync<WayangException>(() => WayangClient.ConnectAsync(fixture.Options("wk_not_a_real_key")));

        Assert.Equal(ErrorCode.Unauthenticated, e.Code);
    }

    [Fact]
    public async Task Viewer_cannot_create_keys()
    {
        await using var admin = await WayangClient.ConnectAsync(fixture.Options());
        var tenantId = Unique("view");
        await admin.CreateTenantAsync(tenantId);
        var viewer = await admin.CreateKeyAsync(tenantId, "viewer", ["viewer"]);

        await using var client = await WayangClient.ConnectAsync(fixture.Options(viewer.Secret));
        var e = await Assert.ThrowsAsync<WayangException>(() => client.CreateKeyAsync(tenantId, "more", ["viewer"]));

        Assert.Equal(ErrorCode.PermissionDenied, e.Code);
        await client.PingAsync();
    }
}

// A server stopped under a live client: GOAWAY/close reaches the client as a retryable error, and a new
// server on the same data directory and port is picked up by the next call.
public sealed class ServerRestartTests
{
    [Fact]
    public async Task Client_reconnects_to_a_restarted_server()
    {
        var dir = Path.Combine(Path.GetTempPath(), "wayang-client-restart-" + Guid.NewGuid().ToString("N"));
        try
        {
            var first = await WayangServer.StartAsync(new WayangServerOptions { DataDirectory = dir, Port = 0, HttpPort = -1, PrintBootstrapKey = false });
            var key = first.BootstrapAdminKey!;
            int port = first.ProtocolEndPoint.Port;
            var options = new WayangClientOptions { Port = port, ApiKey = key, KeepAliveInterval = TimeSpan.Zero };
            options.Reconnect.MaxAttempts = 20;
            options.Reconnect.BaseDelay = TimeSpan.FromMilliseconds(20);
            options.Reconnect.MaxDelay = TimeSpan.FromMilliseconds(200);
            await using var client = await WayangClient.ConnectAsync(options);
            await client.PingAsync();

            await first.StopAsync();
            await Wait.UntilAsync(() => !client.IsConnected, what: "client saw the server go away");

            await using var second = await WayangServer.StartAsync(new WayangServerOptions { DataDirectory = dir, Port = port, HttpPort = -1, PrintBootstrapKey = false });
            Assert.Null(second.BootstrapAdminKey);

            await client.PingAsync();
            Assert.Equal(2, client.ConnectionCount);
        }
        finally
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
