using System.Text;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Secrets;
using Wayang.Fast.Storage;
using Wayang.Fast.Storage.Tests;

namespace Wayang.Fast.Control.Tests.Secrets;

public sealed class LocalKeyProviderTests
{
    private static readonly Dictionary<string, string> Context = new() { ["tenant"] = "acme", ["path"] = "k" };

    [Fact]
    public async Task The_keyring_is_created_owner_only_on_first_use()
    {
        using var dir = new TempDirectory("secrets");
        var provider = new LocalKeyProvider(dir.Path);
        Assert.False(File.Exists(provider.KeyringPath));
        var key = await provider.GenerateDataKeyAsync(Context, default);
        Assert.True(File.Exists(provider.KeyringPath));
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(provider.KeyringPath));
        Assert.Equal(["master.keys"], Directory.GetFiles(dir.Path).Select(Path.GetFileName));

        // Another instance over the same file unwraps it.
        Assert.Equal(key.Plaintext, await new LocalKeyProvider(dir.Path).DecryptDataKeyAsync(key.Wrapped, Context, default));
    }

    [Fact]
    public async Task A_wrapped_key_is_bound_to_its_context_and_key_id()
    {
        using var dir = new TempDirectory("secrets");
        var provider = new LocalKeyProvider(dir.Path);
        var key = await provider.GenerateDataKeyAsync(Context, default);
        await TestData.ThrowsWayangAsync(ErrorCode.SecretIntegrity,
            async () => await provider.DecryptDataKeyAsync(key.Wrapped, new Dictionary<string, string> { ["tenant"] = "globex", ["path"] = "k" }, default));
        var tampered = key.Wrapped.Ciphertext.ToArray();
        tampered[20] ^= 1;
        await TestData.ThrowsWayangAsync(ErrorCode.SecretIntegrity, async () => await provider.DecryptDataKeyAsync(key.Wrapped with { Ciphertext = tampered }, Context, default));

        await provider.RotateMasterKeyAsync();
        // Relabelled with the other key's id: refused, not decrypted under the wrong key.
        await TestData.ThrowsWayangAsync(ErrorCode.SecretIntegrity, async () => await provider.DecryptDataKeyAsync(key.Wrapped with { KeyId = "local-2" }, Context, default));
        var unknown = await TestData.ThrowsWayangAsync(ErrorCode.KmsUnavailable, async () => await provider.DecryptDataKeyAsync(key.Wrapped with { KeyId = "local-9" }, Context, default));
        Assert.Contains("local", unknown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Master_key_rotation_loses_nothing()
    {
        using var h = new SecretHarness();
        for (int i = 0; i < 20; i++)
        {
            await h.PutAsync("k" + (i % 5), "value" + i);
        }
        Assert.Equal("local-2", await h.Local.RotateMasterKeyAsync());
        Assert.Equal(["local-1"], h.Secrets.KeyIdsInUse());
        await h.PutAsync("new", "after");
        Assert.Equal(["local-1", "local-2"], h.Secrets.KeyIdsInUse().Order());

        // The old key is still in use: retiring it is refused, and so is retiring the current one.
        await TestData.ThrowsWayangAsync(ErrorCode.InvalidArgument, async () => await h.Local.RetireAsync("local-1", h.Secrets.KeyIdsInUse()));
        await TestData.ThrowsWayangAsync(ErrorCode.InvalidArgument, async () => await h.Local.RetireAsync("local-2", h.Secrets.KeyIdsInUse()));

        Assert.Equal(21, await h.Secrets.RewrapAllAsync());
        Assert.Equal(["local-2"], h.Secrets.KeyIdsInUse());
        await h.Local.RetireAsync("local-1", h.Secrets.KeyIdsInUse());
        Assert.Equal(["local-2"], await h.Local.KeyIdsAsync());

        // A fresh process (new provider over the keyring file, new store, cold cache) reads every version.
        var store = new SecretStore(h.State, new LocalKeyProvider(h.Directory));
        for (int i = 0; i < 20; i++)
            Assert.Equal("value" + i, Encoding.UTF8.GetString((await store.GetAsync("acme", "k" + (i % 5), (i / 5) + 1)).Value));
    }

    [Fact]
    public async Task Reads_go_on_during_rewrap()
    {
        using var h = new SecretHarness(new SecretStoreOptions { DataKeyCacheEntries = 0 });
        for (int i = 0; i < 50; i++)
            await h.PutAsync("k" + i, "value" + i);
        await h.Local.RotateMasterKeyAsync();

        var rewrap = Task.Run(() => h.Secrets.RewrapAllAsync());
        int reads = 0;
        // Reads through the provider (no cache) while the rewrap replaces wrapped keys underneath; at least one
        // full pass even if the rewrap wins the race.
        do
        {
            for (int i = 0; i < 50; i++, reads++)
                Assert.Equal("value" + i, await h.ReadAsync("k" + i));
        }
        while (!rewrap.IsCompleted);
        Assert.Equal(50, await rewrap);
        Assert.True(reads >= 50);
        Assert.Equal(["local-2"], h.Secrets.KeyIdsInUse());
    }

    [Fact]
    public async Task Plain_text_never_reaches_the_data_directory()
    {
        using var dir = new TempDirectory("secrets");
        string[] values = ["correct-horse-battery-staple-0001", "sk_live_51HxYzAbCdEfGhIjKlMnOp", "-----BEGIN PRIVATE KEY-----MIIEvQIBADANBgkq"];
        var options = TestData.SmallOptions(dir.Path);
        await using (var store = await FasterStateStore.OpenAsync(options, logger: null))
        {
            var secrets = new SecretStore(store, new LocalKeyProvider(dir.Path));
            foreach (var value in values)
            {
                await secrets.PutAsync("acme", "app/" + value.Length, Encoding.UTF8.GetBytes(value), null, "alice");
                await secrets.RotateAsync("acme", "app/" + value.Length, Encoding.UTF8.GetBytes(value + "-v2"), null, "alice");
                Assert.Equal(value, Encoding.UTF8.GetString((await secrets.GetAsync("acme", "app/" + value.Length, 1)).Value));
            }
        }

        var files = Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories);
        Assert.Contains(files, f => Path.GetFileName(f) == LocalKeyProvider.FileName);
        Assert.True(files.Length > 2, string.Join(", ", files));
        var contents = files.Select(File.ReadAllBytes).ToArray();
        // The stored records are there (so the scan looks at the right bytes)...
        Assert.Contains(contents, c => c.AsSpan().IndexOf("secret/acme/app/"u8) >= 0);
        Assert.Contains(contents, c => c.AsSpan().IndexOf("secret-v/acme/app/"u8) >= 0);
        // ...and no value in any form.
        foreach (var value in values)
        {
            foreach (var form in new[] { Encoding.UTF8.GetBytes(value), Encoding.UTF8.GetBytes(Convert.ToBase64String(Encoding.UTF8.GetBytes(value))), Encoding.Unicode.GetBytes(value) })
            {
                Assert.All(contents, c => Assert.True(c.AsSpan().IndexOf(form) < 0, $"'{value}' found on disk"));
            }
        }
    }
}
