using System.Text;
using BenchmarkDotNet.Attributes;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Benchmarks.Storage;

// FasterStateStore reads: TryGet of a present key (index lookup + copy of a 256-byte value into a new array) and
// of a missing one, over 10,000 keys that all sit in memory. Plus one durable PutAsync (journal + FasterKV + fsync).
[MemoryDiagnoser]
public class StateStoreBenchmarks
{
    private const int Keys = 10_000;
    private string _dir = "";
    private FasterStateStore _store = null!;
    private byte[][] _keys = [];
    private readonly byte[] _missing = Encoding.UTF8.GetBytes("bench/missing");
    private readonly byte[] _value = new byte[256];
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        _dir = StorageBenchDirectory.Create("state-store");
        _store = FasterStateStore.Open(new StorageOptions { DataDirectory = _dir, DeleteOnClose = true, CheckpointOnDispose = false });
        _keys = Enumerable.Range(0, Keys).Select(i => Encoding.UTF8.GetBytes("bench/key/" + i)).ToArray();
        // Load through the durable path with 16 writers at once, so group commit keeps setup to a few hundred commits.
        Task.WhenAll(Enumerable.Range(0, 16).Select(w => Task.Run(async () =>
        {
            for (int i = w; i < Keys; i += 16)
                await _store.PutAsync(_keys[i], _value);
        }))).GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _store.DisposeAsync().AsTask().GetAwaiter().GetResult();
        StorageBenchDirectory.Delete(_dir);
    }

    [Benchmark]
    public int StateStoreTryGetHit()
    {
        var key = _keys[_next++ % Keys];
        return _store.TryGet(key, out var value) ? value.Length : -1;
    }

    [Benchmark]
    public bool StateStoreTryGetMiss() => _store.TryGet(_missing, out _);

    [Benchmark]
    public ValueTask StateStorePutDurable() => _store.PutAsync(_keys[_next++ % Keys], _value);
}
