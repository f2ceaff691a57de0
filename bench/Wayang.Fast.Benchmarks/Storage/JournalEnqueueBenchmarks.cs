using BenchmarkDotNet.Attributes;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Benchmarks.Storage;

// Journal.Enqueue alone: copy into FasterLog's in-memory tail, no commit requested or awaited (FasterLog still
// flushes full pages in the background). The cost every write pays before it waits for its group commit.
[MemoryDiagnoser]
public class JournalEnqueueBenchmarks
{
    private const int Batch = 1000;
    private string _dir = "";
    private Journal _journal = null!;
    private byte[] _payload = [];

    [Params(64, 1024)]
    public int PayloadBytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _dir = StorageBenchDirectory.Create("journal-enqueue");
        _journal = Journal.Open(_dir, new StorageOptions { DataDirectory = _dir });
        _payload = new byte[PayloadBytes];
        Random.Shared.NextBytes(_payload);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _journal.DisposeAsync().AsTask().GetAwaiter().GetResult();
        StorageBenchDirectory.Delete(_dir);
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public long JournalEnqueue()
    {
        long address = 0;
        for (int i = 0; i < Batch; i++)
            address = _journal.Enqueue(JournalRecordType.Put, _payload);
        return address;
    }
}
