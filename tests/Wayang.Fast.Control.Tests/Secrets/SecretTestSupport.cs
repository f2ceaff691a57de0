using System.Text;
using Microsoft.Extensions.Time.Testing;
using Wayang.Fast.Control.Secrets;

namespace Wayang.Fast.Control.Tests.Secrets;

// Counts what reaches the provider, so tests can tell a cache hit from an unwrap.
internal sealed class CountingProvider(IKeyEncryptionProvider inner) : IKeyEncryptionProvider
{
    public int Generates;
    public int Decrypts;
    public int Rewraps;

    public string Name => inner.Name;

    public ValueTask<DataKey> GenerateDataKeyAsync(IReadOnlyDictionary<string, string> context, CancellationToken ct)
    {
        Interlocked.Increment(ref Generates);
        return inner.GenerateDataKeyAsync(context, ct);
    }

    public ValueTask<byte[]> DecryptDataKeyAsync(WrappedDataKey wrapped, IReadOnlyDictionary<string, string> context, CancellationToken ct)
    {
        Interlocked.Increment(ref Decrypts);
        return inner.DecryptDataKeyAsync(wrapped, context, ct);
    }

    public ValueTask<WrappedDataKey> RewrapAsync(WrappedDataKey wrapped, IReadOnlyDictionary<string, string> context, CancellationToken ct)
    {
        Interlocked.Increment(ref Rewraps);
        return inner.RewrapAsync(wrapped, context, ct);
    }
}

internal sealed class SecretHarness : IDisposable
{
    public const string Tenant = "acme";

    private readonly TempDirectory _dir = new("secrets");

    public SecretHarness(SecretStoreOptions? options = null)
    {
        Local = new LocalKeyProvider(_dir.Path, Time);
        Provider = new CountingProvider(Local);
        Options = options;
        Secrets = new SecretStore(State, Provider, options, Time);
    }

    public FakeTimeProvider Time { get; } = new(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));
    public InMemoryStateStore State { get; } = new();
    public LocalKeyProvider Local { get; }
    public CountingProvider Provider { get; }
    public SecretStoreOptions? Options { get; }
    public SecretStore Secrets { get; private set; }

    public string Directory => _dir.Path;

    // A new store over the same state and keyring: what a restart sees.
    public SecretStore Reopen(IKeyEncryptionProvider? provider = null) => Secrets = new SecretStore(State, provider ?? Provider, Options, Time);

    public Task<SecretVersionInfo> PutAsync(string path, string value, long? cas = null, string tenant = Tenant) =>
        Secrets.PutAsync(tenant, path, Encoding.UTF8.GetBytes(value), cas, "alice");

    // Where version's sealed value is stored (the metadata is under "secret/<tenant>/<path>").
    public static string SealedKey(string path, int version, string tenant = Tenant) => $"secret-v/{tenant}/{path}/{version:D10}";

    public async Task CopyRecordAsync(string from, string to)
    {
        Assert.True(State.TryGet(Encoding.UTF8.GetBytes(from), out var record), from);
        await State.PutAsync(Encoding.UTF8.GetBytes(to), record);
    }

    public async Task<string> ReadAsync(string path, int version = 0, string tenant = Tenant) =>
        Encoding.UTF8.GetString((await Secrets.GetAsync(tenant, path, version)).Value);

    public void Dispose() => _dir.Dispose();
}
