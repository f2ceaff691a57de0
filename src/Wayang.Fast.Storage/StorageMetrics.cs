using System.Diagnostics;

namespace Wayang.Fast.Storage;

// Counters the server's /metrics exports. Cheap to update (one Interlocked per field on the commit loop, which
// runs once per group commit, not once per write). CommitObserved/CheckpointObserved are for histograms
// (HdrHistogram in the server); they run on the commit/checkpoint loop, so keep them short and non-blocking.
public sealed class StorageMetrics
{
    private long _appendCount;
    private long _commitCount;
    private long _lastCommitTicks;
    private long _totalCommitTicks;
    private long _checkpointCount;
    private long _lastCheckpointTicks;
    private long _lastCheckpointAddress;
    private long _compactionCount;
    private long _admissionQueued;
    private long _compactedBytes;
    private long _expiredRecords;

    public Action<TimeSpan>? CommitObserved { get; set; }
    public Action<TimeSpan>? CheckpointObserved { get; set; }

    // Journal entries enqueued (durable or not).
    public long AppendCount => Volatile.Read(ref _appendCount);
    // Group commits completed; AppendCount / CommitCount is the average batch size.
    public long CommitCount => Volatile.Read(ref _commitCount);
    public TimeSpan LastCommitLatency => TimeSpan.FromTicks(Volatile.Read(ref _lastCommitTicks));
    public TimeSpan TotalCommitLatency => TimeSpan.FromTicks(Volatile.Read(ref _totalCommitTicks));
    public long CheckpointCount => Volatile.Read(ref _checkpointCount);
    public TimeSpan LastCheckpointDuration => TimeSpan.FromTicks(Volatile.Read(ref _lastCheckpointTicks));
    // Journal address the latest checkpoint covers (everything before it is in the checkpoint).
    public long LastCheckpointAddress => Volatile.Read(ref _lastCheckpointAddress);

    // Store (FasterKV hybrid log) compactions run before a checkpoint, and the log bytes they moved BeginAddress past.
    public long CompactionCount => Volatile.Read(ref _compactionCount);
    // Writes that waited for room in the journal's memory (FasterStateStore admission) instead of spinning.
    public long AdmissionQueued => Volatile.Read(ref _admissionQueued);
    public long CompactedBytes => Volatile.Read(ref _compactedBytes);

    // Records dropped by compaction because their owner's expiry check said so (IExpiringStateStore).
    public long ExpiredRecords => Volatile.Read(ref _expiredRecords);

    internal void OnCompactionExpired(long records) => Interlocked.Add(ref _expiredRecords, records);

    internal void OnCompaction(long reclaimedBytes)
    {
        Interlocked.Add(ref _compactedBytes, reclaimedBytes);
        Interlocked.Increment(ref _compactionCount);
    }

    internal void OnAppend() => Interlocked.Increment(ref _appendCount);

    internal void OnCommit(long startTimestamp)
    {
        var elapsed = Stopwatch.GetElapsedTime(startTimestamp);
        Volatile.Write(ref _lastCommitTicks, elapsed.Ticks);
        Interlocked.Add(ref _totalCommitTicks, elapsed.Ticks);
        Interlocked.Increment(ref _commitCount);
        CommitObserved?.Invoke(elapsed);
    }

    internal void OnRecoveredCheckpoint(long coveredAddress) => Volatile.Write(ref _lastCheckpointAddress, coveredAddress);

    internal void OnCheckpoint(long startTimestamp, long coveredAddress)
    {
        var elapsed = Stopwatch.GetElapsedTime(startTimestamp);
        Volatile.Write(ref _lastCheckpointTicks, elapsed.Ticks);
        Volatile.Write(ref _lastCheckpointAddress, coveredAddress);
        Interlocked.Increment(ref _checkpointCount);
        CheckpointObserved?.Invoke(elapsed);
    }

    internal void OnAdmissionQueued() => Interlocked.Increment(ref _admissionQueued);
}
