namespace Wayang.Fast.Storage;

// Persisted in the data directory's manifest and documented in the README: explicit and append-only.
public enum DurabilityMode
{
    // A write is acknowledged after its group commit is fsynced. Survives kill -9 and power loss.
    Fsync = 0,
    // Commits run on an interval; an acknowledged write survives kill -9 of the process once the OS has it,
    // but up to RelaxedCommitInterval of writes can be lost on power loss.
    Relaxed = 1,
}

public sealed class StorageOptions
{
    public string DataDirectory { get; set; } = "data";
    public DurabilityMode Durability { get; set; } = DurabilityMode.Fsync;
    public TimeSpan RelaxedCommitInterval { get; set; } = TimeSpan.FromMilliseconds(5);
    public TimeSpan CheckpointInterval { get; set; } = TimeSpan.FromMinutes(1);
    // Take a checkpoint early once this many journal bytes have accumulated since the last one.
    public long CheckpointJournalBytes { get; set; } = 64L * 1024 * 1024;
    public int JournalMemoryBits { get; set; } = 24;
    public int JournalPageBits { get; set; } = 22;
    public long IndexBuckets { get; set; } = 1L << 16;
    public int StoreMemoryBits { get; set; } = 26;
    // Tests: remove the files when the store is disposed.
    public bool DeleteOnClose { get; set; }
}
