using System.Text;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Rbac;
using Wayang.Fast.Control.Secrets;
using Wayang.Fast.Control.Tenancy;

namespace Wayang.Fast.Control.Tests.Secrets;

public sealed class CredentialResolverTests
{
    private static Principal As(string tenant, params Permission[] permissions) =>
        new(tenant, "wyk_test", new PrincipalGrant(new GrantSnapshot(["custom"], PermissionSet.Of([Permission.Session, .. permissions]))));

    [Fact]
    public async Task References_resolve_in_the_callers_tenant_with_secrets_read()
    {
        using var h = new SecretHarness();
        await h.Secrets.PutAsync(SecretHarness.Tenant, "llm/openai-key", Encoding.UTF8.GetBytes("sk-live-1"), null, "wyk_writer");
        var resolver = new CredentialResolver(h.Secrets);

        var values = await resolver.ResolveAsync(As(SecretHarness.Tenant, Permission.SecretsRead), SecretHarness.Tenant, ["secret://llm/openai-key"]);

        Assert.Equal("sk-live-1", Encoding.UTF8.GetString(values["secret://llm/openai-key"].Value));
    }

    [Fact]
    public async Task Forbidden_malformed_and_missing_references_fail_with_codes_that_name_the_reference_and_never_the_value()
    {
        using var h = new SecretHarness();
        await h.Secrets.PutAsync(SecretHarness.Tenant, "llm/openai-key", Encoding.UTF8.GetBytes("sk-live-1"), null, "wyk_writer");
        var resolver = new CredentialResolver(h.Secrets);

        async Task<WayangException> Fails(ErrorCode code, Principal who, string tenant, string reference)
        {
            var ex = await Assert.ThrowsAsync<WayangException>(() => resolver.ResolveAsync(who, tenant, [reference]));
            Assert.Equal(code, ex.Code);
            Assert.Contains(reference, ex.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("sk-live", ex.Message, StringComparison.Ordinal);
            return ex;
        }

        // No secrets.read (a viewer's list permission is not enough), and another tenant's principal.
        await Fails(ErrorCode.PermissionDenied, As(SecretHarness.Tenant, Permission.SecretsList), SecretHarness.Tenant, "secret://llm/openai-key");
        await Fails(ErrorCode.PermissionDenied, As("other", Permission.SecretsRead), SecretHarness.Tenant, "secret://llm/openai-key");
        // In its own tenant the other principal finds nothing: the secret lives in acme.
        await Fails(ErrorCode.SecretNotFound, As("other", Permission.SecretsRead), "other", "secret://llm/openai-key");
        await Fails(ErrorCode.SecretInvalid, As(SecretHarness.Tenant, Permission.SecretsRead), SecretHarness.Tenant, "vault://llm/openai-key");
        await Fails(ErrorCode.SecretNotFound, As(SecretHarness.Tenant, Permission.SecretsRead), SecretHarness.Tenant, "secret://llm/missing");
    }
}
