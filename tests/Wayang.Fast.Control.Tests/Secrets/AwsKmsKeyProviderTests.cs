using Amazon.KeyManagementService.Model;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Secrets;
using Wayang.Fast.Storage.Tests;

namespace Wayang.Fast.Control.Tests.Secrets;

public sealed class AwsKmsKeyProviderTests(MotoFixture moto) : IClassFixture<MotoFixture>
{
    private static readonly Dictionary<string, string> Context = new() { ["tenant"] = "acme", ["path"] = "db/password" };

    private AwsKmsKeyProvider Provider(string? keyId = null) => new(new AwsKmsOptions
    {
        KeyId = keyId ?? moto.KeyId,
        ServiceUrl = moto.ServiceUrl.ToString(),
        Credentials = moto.Credentials,
    });

    [MotoFact]
    public async Task Data_keys_unwrap_only_under_their_context()
    {
        using var provider = Provider();
        var key = await provider.GenerateDataKeyAsync(Context, default);
        Assert.Equal(32, key.Plaintext.Length);
        Assert.Equal(moto.KeyId, key.Wrapped.KeyId);
        Assert.Equal(key.Plaintext, await provider.DecryptDataKeyAsync(key.Wrapped, Context, default));
        await TestData.ThrowsWayangAsync(ErrorCode.SecretIntegrity,
            async () => await provider.DecryptDataKeyAsync(key.Wrapped, new Dictionary<string, string> { ["tenant"] = "globex", ["path"] = "db/password" }, default));
    }

    [MotoFact]
    public async Task A_secret_store_on_kms_round_trips_and_rewraps_to_a_new_key()
    {
        using var provider = Provider();
        var state = new InMemoryStateStore();
        var store = new SecretStore(state, provider, new SecretStoreOptions { DataKeyCacheEntries = 0 });
        await store.PutAsync("acme", "db/password", "hunter2"u8.ToArray(), null, "alice");
        await store.PutAsync("acme", "db/password", "hunter3"u8.ToArray(), 1, "alice");
        Assert.Equal("hunter2"u8.ToArray(), (await store.GetAsync("acme", "db/password", 1)).Value);
        Assert.Equal("aws-kms", store.GetMetadata("acme", "db/password").Versions[0].Provider);

        // Moving to another KMS key: ReEncrypt every data key, then the new store reads everything through it.
        using var kms = moto.Client();
        var newKey = (await kms.CreateKeyAsync(new CreateKeyRequest())).KeyMetadata.Arn;
        using var moved = Provider(newKey);
        var rewrapping = new SecretStore(state, moved, new SecretStoreOptions { DataKeyCacheEntries = 0 });
        Assert.Equal(2, await rewrapping.RewrapAllAsync());
        Assert.Equal([newKey], rewrapping.KeyIdsInUse());
        Assert.Equal("hunter3"u8.ToArray(), (await rewrapping.GetAsync("acme", "db/password", 0)).Value);
    }

    [MotoFact]
    public async Task Kms_failures_name_the_provider()
    {
        using var provider = Provider("arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000");
        var error = await TestData.ThrowsWayangAsync(ErrorCode.KmsUnavailable, async () => await provider.GenerateDataKeyAsync(Context, default));
        Assert.Contains("aws-kms", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreachable_endpoint_is_unavailability()
    {
        using var provider = new AwsKmsKeyProvider(new AwsKmsOptions
        {
            KeyId = "alias/none",
            ServiceUrl = "http://127.0.0.1:9",
            Credentials = new Amazon.Runtime.BasicAWSCredentials("a", "b"),
            MaxErrorRetry = 0,
        });
        await TestData.ThrowsWayangAsync(ErrorCode.KmsUnavailable, async () => await provider.GenerateDataKeyAsync(Context, default));
    }
}
