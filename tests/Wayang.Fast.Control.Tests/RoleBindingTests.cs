using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Rbac;
using Wayang.Fast.Control.Tenancy;

namespace Wayang.Fast.Control.Tests;

public sealed class RoleBindingTests
{
    private readonly InMemoryStateStore _store = new();

    private async Task<(TenantDirectory Directory, CreatedApiKey Key, Principal Principal)> KeyAsync(params string[] roles)
    {
        var directory = new TenantDirectory(_store);
        if (!directory.TenantExists("acme"))
            await directory.CreateTenantAsync("acme", "");
        var key = await directory.CreateKeyAsync("acme", "k" + Guid.NewGuid().ToString("N")[..8], roles);
        Assert.Equal(ErrorCode.None, directory.Authenticate(key.Secret, out var principal));
        return (directory, key, principal!);
    }

    [Fact]
    public async Task A_principal_holds_the_union_of_its_roles_permissions()
    {
        var (_, _, p) = await KeyAsync(Roles.Executor, Roles.Auditor);
        Assert.True(p.Has(Permission.ExecutorRun));
        Assert.True(p.Has(Permission.AuditRead));
        Assert.True(p.Has(Permission.Session));
        Assert.False(p.Has(Permission.RunsRead));
        Assert.False(p.IsPlatformAdmin);
    }

    [Fact]
    public async Task Binding_changes_apply_to_an_already_authenticated_principal()
    {
        var (directory, key, p) = await KeyAsync(Roles.Viewer);
        Assert.False(p.Has(Permission.RunsSubmit));

        await directory.SetBindingAsync(key.Info.KeyId, Roles.Operator, grant: true);
        Assert.True(p.Has(Permission.RunsSubmit));
        Assert.Equal([Roles.Viewer, Roles.Operator], p.Roles);

        await directory.SetBindingAsync(key.Info.KeyId, Roles.Operator, grant: false);
        Assert.False(p.Has(Permission.RunsSubmit));
        Assert.True(p.Has(Permission.RunsRead));

        await directory.RevokeKeyAsync(key.Info.KeyId);
        Assert.False(p.Has(Permission.Session));
    }

    [Fact]
    public async Task Bindings_survive_a_reload()
    {
        var (directory, key, _) = await KeyAsync(Roles.Viewer);
        await directory.SetBindingAsync(key.Info.KeyId, Roles.Developer, grant: true);

        var reloaded = new TenantDirectory(_store);
        Assert.Equal(ErrorCode.None, reloaded.Authenticate(key.Secret, out var p));
        Assert.True(p!.Has(Permission.DefinitionsWrite));
        Assert.Equal([Roles.Viewer, Roles.Developer], reloaded.ListBindings("acme").Single(b => b.KeyId == key.Info.KeyId).Roles);
    }

    [Fact]
    public async Task Tenant_roles_are_permission_sets_that_can_change_and_be_deleted_when_unbound()
    {
        var (directory, key, p) = await KeyAsync(Roles.Viewer);
        var role = await directory.PutRoleAsync("acme", "replayer", ["dlq.read", "dlq.manage"]);
        Assert.False(role.BuiltIn);
        Assert.Equal(["session", "dlq.read", "dlq.manage"], role.Permissions);

        await directory.SetBindingAsync(key.Info.KeyId, "replayer", grant: true);
        Assert.True(p.Has(Permission.DlqManage));

        // Changing the role changes every bound principal at once.
        await directory.PutRoleAsync("acme", "replayer", ["dlq.read"]);
        Assert.False(p.Has(Permission.DlqManage));

        Assert.Equal(ErrorCode.RoleInUse, (await Assert.ThrowsAsync<WayangException>(() => directory.DeleteRoleAsync("acme", "replayer").AsTask())).Code);
        await directory.SetBindingAsync(key.Info.KeyId, "replayer", grant: false);
        await directory.DeleteRoleAsync("acme", "replayer");
        Assert.DoesNotContain(directory.RoleCatalog.List("acme"), r => r.Name == "replayer");
        Assert.DoesNotContain(new TenantDirectory(_store).RoleCatalog.List("acme"), r => r.Name == "replayer");
    }

    [Fact]
    public async Task Tenant_roles_are_stored_and_scoped_to_their_tenant()
    {
        var (directory, _, _) = await KeyAsync(Roles.Viewer);
        await directory.CreateTenantAsync("beta", "");
        await directory.PutRoleAsync("acme", "reader", ["runs.read"]);

        var reloaded = new TenantDirectory(_store);
        Assert.Contains(reloaded.RoleCatalog.List("acme"), r => r.Name == "reader" && !r.BuiltIn);
        Assert.DoesNotContain(reloaded.RoleCatalog.List("beta"), r => r.Name == "reader");
        var betaKey = await reloaded.CreateKeyAsync("beta", "b", [Roles.Viewer]);
        Assert.Equal(ErrorCode.RoleNotFound, (await Assert.ThrowsAsync<WayangException>(() => reloaded.SetBindingAsync(betaKey.Info.KeyId, "reader", grant: true).AsTask())).Code);
    }

    [Fact]
    public async Task Bad_role_changes_get_stable_codes()
    {
        var (directory, key, _) = await KeyAsync(Roles.Viewer);
        async Task<ErrorCode> Code(Func<Task> call) => (await Assert.ThrowsAsync<WayangException>(call)).Code;

        Assert.Equal(ErrorCode.RoleBuiltIn, await Code(() => directory.PutRoleAsync("acme", Roles.Viewer, ["runs.read"]).AsTask()));
        Assert.Equal(ErrorCode.RoleBuiltIn, await Code(() => directory.DeleteRoleAsync("acme", Roles.Auditor).AsTask()));
        Assert.Equal(ErrorCode.RoleNotFound, await Code(() => directory.DeleteRoleAsync("acme", "nope").AsTask()));
        Assert.Equal(ErrorCode.InvalidArgument, await Code(() => directory.PutRoleAsync("acme", "x", ["runs.fly"]).AsTask()));
        Assert.Equal(ErrorCode.InvalidArgument, await Code(() => directory.PutRoleAsync("acme", "Bad Name", ["runs.read"]).AsTask()));
        // A tenant's role can never reach across tenants.
        Assert.Equal(ErrorCode.InvalidArgument, await Code(() => directory.PutRoleAsync("acme", "sneaky", ["tenants.manage"]).AsTask()));
        Assert.Equal(ErrorCode.InvalidArgument, await Code(() => directory.PutRoleAsync("acme", "sneaky", ["cross-tenant"]).AsTask()));
        Assert.Equal(ErrorCode.TenantNotFound, await Code(() => directory.PutRoleAsync("missing", "r", ["runs.read"]).AsTask()));
        Assert.Equal(ErrorCode.RoleNotFound, await Code(() => directory.SetBindingAsync(key.Info.KeyId, "nope", grant: true).AsTask()));
        Assert.Equal(ErrorCode.InvalidArgument, await Code(() => directory.SetBindingAsync(key.Info.KeyId, Roles.PlatformAdmin, grant: true).AsTask()));
        Assert.Equal(ErrorCode.KeyNotFound, await Code(() => directory.SetBindingAsync("missing", Roles.Viewer, grant: true).AsTask()));
        // The last role cannot be unbound: a key without roles is a revoked key.
        Assert.Equal(ErrorCode.InvalidArgument, await Code(() => directory.SetBindingAsync(key.Info.KeyId, Roles.Viewer, grant: false).AsTask()));
        // Binding twice or unbinding a role that is not bound changes nothing.
        var same = await directory.SetBindingAsync(key.Info.KeyId, Roles.Viewer, grant: true);
        Assert.Equal([Roles.Viewer], same.Roles);
    }

    [Fact]
    public void Platform_only_permissions_never_reach_another_tenant()
    {
        var catalog = new TenantDirectory(_store).RoleCatalog;
        Assert.True(catalog.Resolve(TenantDirectory.SystemTenantId, [Roles.PlatformAdmin]).Has(Permission.CrossTenant));
        // Even if a stored key of another tenant somehow named platform-admin, it grants nothing platform-wide.
        var set = catalog.Resolve("acme", [Roles.PlatformAdmin]);
        Assert.False(set.Has(Permission.CrossTenant));
        Assert.False(set.Has(Permission.TenantsManage));
        Assert.True(set.Has(Permission.RunsRead));
    }
}
