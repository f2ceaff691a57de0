namespace Wayang.Fast.Storage;

// Persisted in the data directory's manifest and documented in the README: explicit and append-only.
public enum DurabilityMode
{
    // A write is acknowledged after the group commit that holds it has been written with O_SYNC/O_DIRECT
    // (FASTER's local device) and its commit record is on disk. Survives kill -9 and power loss.
    Fsync = 0,
    // A write is acknowledged once its journal entry is in the log's in-memory buffer; commits run every
    // RelaxedCommitInterval. Up to RelaxedCommitInterval (plus one commit's duration) of acknowledged writes
    // can be lost on kill -9 or power loss; a clean dispose commits everything. See README.md.
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
    // Compact the store's hybrid log before a background checkpoint once the log between its BeginAddress and
    // its read-only address exceeds this many bytes (and twice the live data the previous compaction copied).
    // 0 or less disables compaction. See README.md, "Checkpoints, compaction, truncation and recovery".
    public long CompactionMinLogBytes { get; set; } = 64L * 1024 * 1024;
    public int JournalMemoryBits { get; set; } = 24;
    public int JournalPageBits { get; set; } = 22;
    public long IndexBuckets { get; set; } = 1L << 16;
    public int StoreMemoryBits { get; set; } = 26;
    // Tests: remove the files when the store is disposed.
    public bool DeleteOnClose { get; set; }

    // Geometry below is fixed when a data directory is created (recorded in MANIFEST.json); reopening uses
    // the manifest's values, because FASTER's on-disk addresses depend on the page and segment sizes.
    public int JournalSegmentBits { get; set; } = 28;
    public int StorePageBits { get; set; } = 22;
    public int StoreSegmentBits { get; set; } = 30;

    // Limits checked before anything is journaled; both must fit in one journal and one store page.
    public int MaxKeyBytes { get; set; } = 4 * 1024;
    public int MaxValueBytes { get; set; } = 1024 * 1024;

    // A clean dispose takes a final checkpoint so the next open replays nothing.
    public bool CheckpointOnDispose { get; set; } = true;
}
