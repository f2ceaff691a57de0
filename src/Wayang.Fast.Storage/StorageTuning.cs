namespace Wayang.Fast.Storage;

// The store settings an operator may tune from configuration (section "Wayang:Server:Storage"); null keeps the
// StorageOptions default. The data directory and durability mode have their own server options, and the on-disk
// geometry (page and segment sizes) is fixed when a directory is created, so neither is here.
public sealed class StorageTuning
{
    // Time between background checkpoints; zero disables the timer (the journal-bytes trigger still applies).
    public TimeSpan? CheckpointInterval { get; set; }
    // Journal bytes written since the last checkpoint that trigger the next one early. At least 1 MiB.
    public long? CheckpointJournalBytes { get; set; }
    // Log bytes below the read-only address before a checkpoint compacts; zero or less disables compaction.
    public long? CompactionMinLogBytes { get; set; }
    // How often Relaxed durability commits.
    public TimeSpan? RelaxedCommitInterval { get; set; }
    // Memory of the store's hybrid log and of the journal's tail, as powers of two (20 = 1 MiB .. 36 = 64 GiB).
    public int? StoreMemoryBits { get; set; }
    public int? JournalMemoryBits { get; set; }
    // Hash index buckets (64 bytes each): a power of two from 2^10 to 2^30.
    public long? IndexBuckets { get; set; }

    public void Validate()
    {
        if (CheckpointInterval is { } interval && interval < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException("Storage.CheckpointInterval", interval, "Must not be negative.");
        if (CheckpointJournalBytes is < 1L << 20)
            throw new ArgumentOutOfRangeException("Storage.CheckpointJournalBytes", CheckpointJournalBytes, "Must be at least 1 MiB (1048576).");
        if (RelaxedCommitInterval is { } relaxed && (relaxed <= TimeSpan.Zero || relaxed > TimeSpan.FromSeconds(10)))
            throw new ArgumentOutOfRangeException("Storage.RelaxedCommitInterval", relaxed, "Must be more than zero and at most 10 seconds.");
        if (StoreMemoryBits is < 20 or > 36)
            throw new ArgumentOutOfRangeException("Storage.StoreMemoryBits", StoreMemoryBits, "Must be 20..36.");
        if (JournalMemoryBits is < 20 or > 36)
            throw new ArgumentOutOfRangeException("Storage.JournalMemoryBits", JournalMemoryBits, "Must be 20..36.");
        if (IndexBuckets is { } buckets && (buckets < 1L << 10 || buckets > 1L << 30 || (buckets & (buckets - 1)) != 0))
            throw new ArgumentOutOfRangeException("Storage.IndexBuckets", buckets, "Must be a power of two from 1024 to 1073741824.");
    }

    public void ApplyTo(StorageOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (CheckpointInterval is { } interval)
            options.CheckpointInterval = interval;
        if (CheckpointJournalBytes is { } journalBytes)
            options.CheckpointJournalBytes = journalBytes;
        if (CompactionMinLogBytes is { } compaction)
            options.CompactionMinLogBytes = compaction;
        if (RelaxedCommitInterval is { } relaxed)
            options.RelaxedCommitInterval = relaxed;
        if (StoreMemoryBits is { } store)
            options.StoreMemoryBits = store;
        if (JournalMemoryBits is { } journal)
            options.JournalMemoryBits = journal;
        if (IndexBuckets is { } buckets)
            options.IndexBuckets = buckets;
    }
}
