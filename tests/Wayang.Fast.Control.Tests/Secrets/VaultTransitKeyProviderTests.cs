using System.Net;
using System.Text;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Secrets;
using Wayang.Fast.Storage.Tests;

namespace Wayang.Fast.Control.Tests.Secrets;

public sealed class VaultTransitKeyProviderTests : IDisposable
{
    private static readonly Dictionary<string, string> Context = new() { ["tenant"] = "acme", ["path"] = "db/password" };

    private readonly FakeVaultServer _vault = new("s.token", "team-a");

    public void Dispose() => _vault.Dispose();

    private VaultTransitKeyProvider Provider(string? token = null) => new(new VaultTransitOptions
    {
        Address = _vault.Address,
        Token = token ?? _vault.Token,
        Namespace = _vault.Namespace,
        KeyName = _vault.Key,
    });

    [Fact]
    public async Task Secrets_round_trip_and_rewrap_after_a_key_rotation()
    {
        using var provider = Provider();
        var store = new SecretStore(new InMemoryStateStore(), provider, new SecretStoreOptions { DataKeyCacheEntries = 0 });
        await store.PutAsync("acme", "db/password", "hunter2"u8.ToArray(), null, "alice");
        Assert.Equal("hunter2"u8.ToArray(), (await store.GetAsync("acme", "db/password", 0)).Value);
        Assert.Equal(["transit/wayang:v1"], store.KeyIdsInUse());
        Assert.Equal("vault-transit", store.GetMetadata("acme", "db/password").Versions[0].Provider);

        _vault.RotateKey();
        Assert.Equal(1, await store.RewrapAllAsync());
        Assert.Equal(["transit/wayang:v2"], store.KeyIdsInUse());
        Assert.Equal("hunter2"u8.ToArray(), (await store.GetAsync("acme", "db/password", 0)).Value);
    }

    [Fact]
    public async Task The_context_is_authenticated_as_associated_data()
    {
        using var provider = Provider();
        var key = await provider.GenerateDataKeyAsync(Context, default);
        Assert.StartsWith("vault:v1:", Encoding.UTF8.GetString(key.Wrapped.Ciphertext), StringComparison.Ordinal);
        Assert.Equal(key.Plaintext, await provider.DecryptDataKeyAsync(key.Wrapped, Context, default));
        await TestData.ThrowsWayangAsync(ErrorCode.SecretIntegrity,
            async () => await provider.DecryptDataKeyAsync(key.Wrapped, new Dictionary<string, string> { ["tenant"] = "globex", ["path"] = "db/password" }, default));
    }

    [Fact]
    public async Task Tampered_ciphertext_is_an_integrity_failure()
    {
        using var provider = Provider();
        var key = await provider.GenerateDataKeyAsync(Context, default);
        var text = Encoding.UTF8.GetString(key.Wrapped.Ciphertext);
        var blob = Convert.FromBase64String(text["vault:v1:".Length..]);
        blob[^1] ^= 1;
        var tampered = key.Wrapped with { Ciphertext = Encoding.UTF8.GetBytes("vault:v1:" + Convert.ToBase64String(blob)) };
        await TestData.ThrowsWayangAsync(ErrorCode.SecretIntegrity, async () => await provider.DecryptDataKeyAsync(tampered, Context, default));
    }

    [Fact]
    public async Task A_bad_token_is_permission_denied()
    {
        using var provider = Provider("s.wrong");
        var error = await TestData.ThrowsWayangAsync(ErrorCode.KmsUnavailable, async () => await provider.GenerateDataKeyAsync(Context, default));
        Assert.Contains("permission denied", error.Message, StringComparison.Ordinal);
        Assert.Contains("vault-transit", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("s.wrong", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_errors_and_throttling_are_unavailability()
    {
        using var provider = Provider();
        var key = await provider.GenerateDataKeyAsync(Context, default);
        _vault.FailNext = HttpStatusCode.InternalServerError;
        var error = await TestData.ThrowsWayangAsync(ErrorCode.KmsUnavailable, async () => await provider.DecryptDataKeyAsync(key.Wrapped, Context, default));
        Assert.Contains("500", error.Message, StringComparison.Ordinal);
        _vault.FailNext = HttpStatusCode.TooManyRequests;
        await TestData.ThrowsWayangAsync(ErrorCode.KmsUnavailable, async () => await provider.GenerateDataKeyAsync(Context, default));
        // A 500 on decrypt is not mistaken for tampering, and the next call works again.
        Assert.Equal(key.Plaintext, await provider.DecryptDataKeyAsync(key.Wrapped, Context, default));
    }

    [Fact]
    public async Task The_namespace_header_is_sent()
    {
        using var wrongNamespace = new VaultTransitKeyProvider(new VaultTransitOptions { Address = _vault.Address, Token = _vault.Token, KeyName = _vault.Key });
        await TestData.ThrowsWayangAsync(ErrorCode.KmsUnavailable, async () => await wrongNamespace.GenerateDataKeyAsync(Context, default));
    }

    [Fact]
    public async Task An_unreachable_vault_is_unavailability_through_the_store()
    {
        var address = _vault.Address;
        _vault.Dispose();
        using var provider = new VaultTransitKeyProvider(new VaultTransitOptions { Address = address, Token = "t", KeyName = "k" });
        var store = new SecretStore(new InMemoryStateStore(), provider);
        var error = await TestData.ThrowsWayangAsync(ErrorCode.KmsUnavailable, () => store.PutAsync("acme", "x", "v"u8.ToArray(), null, "alice"));
        Assert.Contains("vault-transit", error.Message, StringComparison.Ordinal);
        Assert.Empty(store.List("acme", ""));
    }
}
