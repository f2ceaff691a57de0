using MessagePack;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Tests;

public sealed class AdminTests
{
    private static async Task<T> Call<T>(RawClient client, Opcode opcode, uint streamId, object? request)
    {
        if (request is null)
            await client.SendAsync(FrameType.Request, opcode, streamId);
        else
            await client.SendAsync(RawClient.Frame(FrameType.Request, opcode, streamId, MessagePackSerializer.Serialize(request.GetType(), request, WireOptions.Trusted)));
        var reply = await client.ExpectFrameAsync();
        Assert.True(reply.Type == FrameType.Response && reply.StreamId == streamId && reply.Opcode == opcode, $"expected RESPONSE {opcode} on {streamId}, got {reply}");
        return reply.Decode<T>();
    }

    private static async Task<KeyCreateResponse> CreateKey(RawClient admin, uint streamId, string tenant, string name, params string[] roles) =>
        await Call<KeyCreateResponse>(admin, Opcode.KeyCreate, streamId, new KeyCreateRequest { TenantId = tenant, Name = name, Roles = roles });

    [Fact]
    public async Task Tenants_and_keys_end_to_end()
    {
        await using var server = await TestServer.StartAsync();
        await using var admin = await server.ConnectAsync();

        var acme = await Call<TenantInfoDto>(admin, Opcode.TenantCreate, 1, new TenantCreateRequest { TenantId = "acme", DisplayName = "Acme Corp" });
        Assert.Equal(("acme", "Acme Corp"), (acme.TenantId, acme.DisplayName));
        await admin.SendAsync(RawClient.MessageFrame(FrameType.Request, Opcode.TenantCreate, 2, new TenantCreateRequest { TenantId = "acme" }));
        await admin.ExpectErrorAsync(ErrorCode.TenantExists, 2);
        await admin.SendAsync(RawClient.MessageFrame(FrameType.Request, Opcode.TenantCreate, 3, new TenantCreateRequest { TenantId = "Not Valid!" }));
        await admin.ExpectErrorAsync(ErrorCode.InvalidArgument, 3);

        var tenants = await Call<TenantListResponse>(admin, Opcode.TenantList, 4, null);
        Assert.Equal(["acme", "system"], tenants.Tenants.Select(t => t.TenantId).Order(StringComparer.Ordinal));

        var key = await CreateKey(admin, 5, "acme", "ci", "developer");
        Assert.StartsWith("wyk_", key.Secret, StringComparison.Ordinal);
        Assert.Equal(("acme", "ci", false), (key.Key.TenantId, key.Key.Name, key.Key.Revoked));

        var keys = await Call<KeyListResponse>(admin, Opcode.KeyList, 6, new KeyListRequest { TenantId = "acme" });
        Assert.Equal(key.Key.KeyId, Assert.Single(keys.Keys).KeyId);

        await admin.SendAsync(RawClient.MessageFrame(FrameType.Request, Opcode.KeyCreate, 7, new KeyCreateRequest { TenantId = "nope", Name = "x", Roles = ["viewer"] }));
        await admin.ExpectErrorAsync(ErrorCode.TenantNotFound, 7);

        var revoked = await Call<ApiKeyInfoDto>(admin, Opcode.KeyRevoke, 8, new KeyRevokeRequest { KeyId = key.Key.KeyId });
        Assert.True(revoked.Revoked);
        await admin.SendAsync(RawClient.MessageFrame(FrameType.Request, Opcode.KeyRevoke, 9, new KeyRevokeRequest { KeyId = "doesnotexist0000" }));
        await admin.ExpectErrorAsync(ErrorCode.KeyNotFound, 9);
    }

    [Fact]
    public async Task Non_admin_keys_are_denied_and_tenant_admins_stay_in_their_tenant()
    {
        await using var server = await TestServer.StartAsync();
        await using var admin = await server.ConnectAsync();
        await Call<TenantInfoDto>(admin, Opcode.TenantCreate, 1, new TenantCreateRequest { TenantId = "acme" });
        await Call<TenantInfoDto>(admin, Opcode.TenantCreate, 2, new TenantCreateRequest { TenantId = "beta" });
        var developer = await CreateKey(admin, 3, "acme", "dev", "developer");
        var acmeAdmin = await CreateKey(admin, 4, "acme", "admin", "tenant-admin");
        var betaKey = await CreateKey(admin, 5, "beta", "svc", "viewer");

        await using (var dev = await server.ConnectAsync(developer.Secret))
        {
            await dev.PingAsync(1);
            await dev.SendAsync(FrameType.Request, Opcode.TenantList, 2);
            await dev.ExpectErrorAsync(ErrorCode.PermissionDenied, 2);
            await dev.SendAsync(RawClient.MessageFrame(FrameType.Request, Opcode.KeyList, 3, new KeyListRequest()));
            await dev.ExpectErrorAsync(ErrorCode.PermissionDenied, 3);
            await dev.SendAsync(RawClient.MessageFrame(FrameType.Request, Opcode.KeyRevoke, 4, new KeyRevokeRequest { KeyId = developer.Key.KeyId }));
            await dev.ExpectErrorAsync(ErrorCode.PermissionDenied, 4);
        }

        await using var tenantAdmin = await server.ConnectAsync(acmeAdmin.Secret);
        // Own tenant: allowed (empty tenant id means the caller's own).
        var own = await Call<KeyListResponse>(tenantAdmin, Opcode.KeyList, 1, new KeyListRequest());
        Assert.Equal(2, own.Keys.Length);
        var minted = await CreateKey(tenantAdmin, 2, "", "minted", "viewer");
        Assert.Equal("acme", minted.Key.TenantId);
        // Platform operations and other tenants: denied.
        await tenantAdmin.SendAsync(RawClient.MessageFrame(FrameType.Request, Opcode.TenantCreate, 3, new TenantCreateRequest { TenantId = "evil" }));
        await tenantAdmin.ExpectErrorAsync(ErrorCode.PermissionDenied, 3);
        await tenantAdmin.SendAsync(RawClient.MessageFrame(FrameType.Request, Opcode.KeyList, 4, new KeyListRequest { TenantId = "beta" }));
        await tenantAdmin.ExpectErrorAsync(ErrorCode.PermissionDenied, 4);
        await tenantAdmin.SendAsync(RawClient.MessageFrame(FrameType.Request, Opcode.KeyCreate, 5, new KeyCreateRequest { TenantId = "beta", Name = "x", Roles = ["viewer"] }));
        await tenantAdmin.ExpectErrorAsync(ErrorCode.PermissionDenied, 5);
        // A foreign key id answers exactly like a missing one.
        await tenantAdmin.SendAsync(RawClient.MessageFrame(FrameType.Request, Opcode.KeyRevoke, 6, new KeyRevokeRequest { KeyId = betaKey.Key.KeyId }));
        await tenantAdmin.ExpectErrorAsync(ErrorCode.KeyNotFound, 6);
        // A tenant admin cannot mint platform admins.
        await tenantAdmin.SendAsync(RawClient.MessageFrame(FrameType.Request, Opcode.KeyCreate, 7, new KeyCreateRequest { Name = "up", Roles = ["platform-admin"] }));
        var escalation = await tenantAdmin.ExpectFrameAsync();
        Assert.Equal(FrameType.Error, escalation.Type);

        // The foreign key is untouched.
        await using var beta = await server.ConnectAsync(betaKey.Secret);
        await beta.PingAsync(1);
    }

    [Fact]
    public async Task Keys_survive_a_restart_on_the_same_directory()
    {
        var dir = TestServer.NewDataDirectory();
        string adminKey;
        string secret;
        await using (var first = await TestServer.StartAsync(dataDirectory: dir))
        {
            adminKey = first.AdminKey;
            await using var admin = await first.ConnectAsync();
            await Call<TenantInfoDto>(admin, Opcode.TenantCreate, 1, new TenantCreateRequest { TenantId = "acme" });
            secret = (await CreateKey(admin, 2, "acme", "durable", "viewer")).Secret;
            await first.Server.StopAsync();
        }

        try
        {
            await using var second = await TestServer.StartAsync(dataDirectory: dir, adminKey: adminKey);
            Assert.Null(second.Server.BootstrapAdminKey);
            await using var client = await second.ConnectAsync(secret);
            await client.PingAsync(1);
            await using var admin = await second.ConnectAsync(adminKey);
            var keys = await Call<KeyListResponse>(admin, Opcode.KeyList, 1, new KeyListRequest { TenantId = "acme" });
            Assert.Equal("durable", Assert.Single(keys.Keys).Name);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
