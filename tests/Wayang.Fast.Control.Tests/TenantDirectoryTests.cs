using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Tenancy;

namespace Wayang.Fast.Control.Tests;

public sealed class TenantDirectoryTests
{
    private readonly InMemoryStateStore _store = new();

    [Fact]
    public async Task Bootstrap_creates_system_tenant_and_one_platform_admin_key_once()
    {
        var directory = new TenantDirectory(_store);
        var created = await directory.EnsureBootstrapAdminAsync();

        Assert.NotNull(created);
        Assert.Equal(TenantDirectory.SystemTenantId, created.Info.TenantId);
        Assert.Equal([Roles.PlatformAdmin], created.Info.Roles);
        Assert.Equal(ErrorCode.None, directory.Authenticate(created.Secret, out var principal));
        Assert.True(principal!.IsPlatformAdmin);

        Assert.Null(await directory.EnsureBootstrapAdminAsync());
        // A directory loaded from the same store sees the key and does not bootstrap again.
        Assert.Null(await new TenantDirectory(_store).EnsureBootstrapAdminAsync());
    }

    [Fact]
    public async Task Bootstrap_hands_out_the_key_before_its_record_is_written()
    {
        var directory = new TenantDirectory(_store);
        int writesWhenHandedOut = -1;
        var created = await directory.EnsureBootstrapAdminAsync(key =>
        {
            writesWhenHandedOut = _store.Writes;
            return ValueTask.CompletedTask;
        });

        // One write (the system tenant) happened before, the key's own record after the callback.
        Assert.Equal(1, writesWhenHandedOut);
        Assert.Equal(2, _store.Writes);
        Assert.Equal(ErrorCode.None, directory.Authenticate(created!.Secret, out _));
    }

    [Fact]
    public async Task A_failure_while_saving_the_bootstrap_key_commits_no_key_and_the_next_start_bootstraps_again()
    {
        var directory = new TenantDirectory(_store);
        await Assert.ThrowsAsync<IOException>(() => directory.EnsureBootstrapAdminAsync(_ => throw new IOException("disk full")).AsTask());

        var restarted = new TenantDirectory(_store);
        Assert.Empty(restarted.ListKeys(TenantDirectory.SystemTenantId));
        Assert.NotNull(await restarted.EnsureBootstrapAdminAsync());
    }

    [Fact]
    public async Task Stored_records_never_contain_the_secret()
    {
        var directory = new TenantDirectory(_store);
        await directory.CreateTenantAsync("acme", "Acme");
        var key = await directory.CreateKeyAsync("acme", "ci", [Roles.Developer]);
        var secretPart = key.Secret[(key.Secret.LastIndexOf('_') + 1)..];

        foreach (var (_, value) in _store.ScanPrefix([]))
            Assert.DoesNotContain(secretPart, System.Text.Encoding.UTF8.GetString(value), StringComparison.Ordinal);
        Assert.DoesNotContain(secretPart, key.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Keys_authenticate_until_revoked_and_revocation_survives_reload()
    {
        var directory = new TenantDirectory(_store);
        await directory.CreateTenantAsync("acme", "");
        var key = await directory.CreateKeyAsync("acme", "ci", [Roles.Developer, Roles.Viewer]);

        Assert.Equal(ErrorCode.None, directory.Authenticate(key.Secret, out var principal));
        Assert.Equal("acme", principal!.TenantId);
        Assert.True(principal.HasRole(Roles.Viewer));
        Assert.False(principal.IsPlatformAdmin);

        var revoked = await directory.RevokeKeyAsync(key.Info.KeyId);
        Assert.True(revoked.Revoked);
        Assert.Equal(ErrorCode.KeyRevoked, directory.Authenticate(key.Secret, out _));
        Assert.Equal(ErrorCode.KeyRevoked, new TenantDirectory(_store).Authenticate(key.Secret, out _));
    }

    [Theory]
    [InlineData("")]
    [InlineData("wyk_")]
    [InlineData("not-a-key")]
    [InlineData("wyk_0123456789abcdef_0123456789abcdef0123456789abcdef")]
    public async Task Malformed_or_unknown_keys_are_unauthenticated(string presented)
    {
        var directory = new TenantDirectory(_store);
        await directory.EnsureBootstrapAdminAsync();
        Assert.Equal(ErrorCode.Unauthenticated, directory.Authenticate(presented, out var principal));
        Assert.Null(principal);
    }

    [Fact]
    public async Task Wrong_secret_for_a_real_key_id_is_unauthenticated()
    {
        var directory = new TenantDirectory(_store);
        var admin = (await directory.EnsureBootstrapAdminAsync())!;
        var tampered = admin.Secret[..^1] + (admin.Secret[^1] == 'a' ? 'b' : 'a');
        Assert.Equal(ErrorCode.Unauthenticated, directory.Authenticate(tampered, out _));
    }

    [Fact]
    public async Task Invalid_input_gets_stable_codes()
    {
        var directory = new TenantDirectory(_store);
        await directory.CreateTenantAsync("acme", "Acme");

        Assert.Equal(ErrorCode.TenantExists, (await Assert.ThrowsAsync<WayangException>(() => directory.CreateTenantAsync("acme", "again").AsTask())).Code);
        Assert.Equal(ErrorCode.InvalidArgument, (await Assert.ThrowsAsync<WayangException>(() => directory.CreateTenantAsync("Bad Id", "").AsTask())).Code);
        Assert.Equal(ErrorCode.TenantNotFound, (await Assert.ThrowsAsync<WayangException>(() => directory.CreateKeyAsync("nope", "k", [Roles.Viewer]).AsTask())).Code);
        Assert.Equal(ErrorCode.RoleNotFound, (await Assert.ThrowsAsync<WayangException>(() => directory.CreateKeyAsync("acme", "k", ["wizard"]).AsTask())).Code);
        Assert.Equal(ErrorCode.InvalidArgument, (await Assert.ThrowsAsync<WayangException>(() => directory.CreateKeyAsync("acme", "k", []).AsTask())).Code);
        Assert.Equal(ErrorCode.InvalidArgument, (await Assert.ThrowsAsync<WayangException>(() => directory.CreateKeyAsync("acme", "k", [Roles.PlatformAdmin]).AsTask())).Code);
        Assert.Equal(ErrorCode.KeyNotFound, (await Assert.ThrowsAsync<WayangException>(() => directory.RevokeKeyAsync("missing").AsTask())).Code);
    }

    [Fact]
    public async Task Listings_are_scoped_to_a_tenant_and_ordered()
    {
        var directory = new TenantDirectory(_store);
        await directory.CreateTenantAsync("b-tenant", "");
        await directory.CreateTenantAsync("a-tenant", "");
        await directory.CreateKeyAsync("a-tenant", "one", [Roles.Viewer]);
        await directory.CreateKeyAsync("b-tenant", "two", [Roles.Viewer]);

        Assert.Equal(["a-tenant", "b-tenant"], directory.ListTenants().Select(t => t.TenantId));
        Assert.Equal(["one"], directory.ListKeys("a-tenant").Select(k => k.Name));
        Assert.Empty(directory.ListKeys("missing"));
    }

    [Fact]
    public async Task Concurrent_creates_of_one_tenant_yield_exactly_one_winner()
    {
        var directory = new TenantDirectory(_store);
        var attempts = Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
        {
            try
            {
                await directory.CreateTenantAsync("race", "");
                return true;
            }
            catch (WayangException ex) when (ex.Code == ErrorCode.TenantExists)
            {
                return false;
            }
        }));
        var results = await Task.WhenAll(attempts);
        Assert.Equal(1, results.Count(r => r));
    }
}
