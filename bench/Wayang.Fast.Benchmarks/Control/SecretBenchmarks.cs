using BenchmarkDotNet.Attributes;
using Wayang.Fast.Control.Secrets;
using Wayang.Fast.Testing;

namespace Wayang.Fast.Benchmarks.Control;

// One secret read: with the data key in SecretStore's cache (AES-GCM of the value only) against a cold path where
// every read unwraps the data key through LocalKeyProvider (a second AES-GCM plus the context encoding). With a
// remote KMS the cold path adds a network round trip, which is what the cache is for.
[MemoryDiagnoser]
public class SecretBenchmarks
{
    private string _directory = "";
    private SecretStore _cached = null!;
    private SecretStore _uncached = null!;

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), "wayang-bench-secrets-" + Guid.NewGuid().ToString("N"));
        var provider = new LocalKeyProvider(_directory);
        var state = new InMemoryStateStore();
        _cached = new SecretStore(state, provider);
        _cached.PutAsync("acme", "db/orders/password", new byte[64], null, "bench").GetAwaiter().GetResult();
        _uncached = new SecretStore(state, provider, new SecretStoreOptions { DataKeyCacheEntries = 0 });
    }

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(_directory, recursive: true);

    [Benchmark(Baseline = true)]
    public int GetCached() => _cached.GetAsync("acme", "db/orders/password", 0).GetAwaiter().GetResult().Value.Length;

    [Benchmark]
    public int GetUncached() => _uncached.GetAsync("acme", "db/orders/password", 0).GetAwaiter().GetResult().Value.Length;
}
