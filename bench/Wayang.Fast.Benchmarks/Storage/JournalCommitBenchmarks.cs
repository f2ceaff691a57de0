using BenchmarkDotNet.Attributes;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Benchmarks.Storage;

// Durable appends (Fsync mode): each invocation starts Writers concurrent AppendAsync calls and waits for all of
// them, so Mean is the latency of one round of Writers concurrent durable writes, which group commit turns into
// one or two commits. Writers / Mean is the durable write throughput at that concurrency.
[MemoryDiagnoser]
public class JournalCommitBenchmarks
{
    private string _dir = "";
    private Journal _journal = null!;
    private readonly byte[] _payload = new byte[128];
    private Task[] _tasks = [];

    [Params(1, 16)]
    public int Writers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _dir = StorageBenchDirectory.Create("journal-commit");
        _journal = Journal.Open(_dir, new StorageOptions { DataDirectory = _dir, Durability = DurabilityMode.Fsync });
        _tasks = new Task[Writers];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _journal.DisposeAsync().AsTask().GetAwaiter().GetResult();
        StorageBenchDirectory.Delete(_dir);
    }

    [Benchmark]
    public async Task JournalAppendDurable()
    {
        for (int i = 0; i < _tasks.Length; i++)
            _tasks[i] = _journal.AppendAsync(JournalRecordType.Put, _payload).AsTask();
        await Task.WhenAll(_tasks);
    }
}
