using System.Buffers.Binary;
using FASTER.core;

namespace Wayang.Fast.Storage;

// Where FasterKV keeps its checkpoints: FASTER's own layout and reader (DeviceLogCommitCheckpointManager, the
// manager FasterKV builds from CheckpointDir), except that the two small metadata files of a checkpoint (the log's
// and the index's info.dat) are written on the calling thread.
//
// Why: FASTER writes those files inside a global state transition of its checkpoint state machine, while every
// other thread that enters the store waits, spinning, for the transition to end. The default manager issues the
// write through a device that performs it as a thread-pool work item and blocks on a semaphore until then. Under
// load the pool's queue holds thousands of items, so the 512-byte write waited its turn behind them, with all
// writers spinning: checkpoints of 2-27 s and store-wide stalls of the same length (the transition to
// PERSISTENCE_CALLBACK alone took 1.7 s in one run at 12,000 tasks/s). Written here through a write-through
// handle, the transition takes one synced write of one sector.
//
// Files are byte for byte what the default manager writes ([length i32][metadata], zero-padded to 512 bytes,
// in <dir>/<token>/info.dat.0), so directories written before this class open unchanged, and reads go to FASTER's
// manager. Outdated checkpoints are deleted as FASTER's manager does with removeOutdated: after a commit, the
// previous log checkpoint and the index checkpoint before the previous one.
internal sealed class InlineCheckpointManager : ICheckpointManager
{
    private const int SectorBytes = 512;
    // The device FASTER's factory creates for a file name writes its segment 0 under this suffix.
    private const string SegmentSuffix = ".0";

    private readonly string _baseDirectory;
    private readonly INamedDeviceFactory _devices;
    private readonly ICheckpointNamingScheme _naming;
    private readonly DeviceLogCommitCheckpointManager _reader;
    private readonly Lock _gate = new();
    private Guid _previousLog;
    private readonly Guid[] _previousIndexes = new Guid[2];
    private int _nextIndexSlot;
    private Exception? _failure;

    public InlineCheckpointManager(string baseDirectory)
    {
        _baseDirectory = new DirectoryInfo(baseDirectory).FullName;
        _devices = new LocalStorageNamedDeviceFactory();
        _naming = new DefaultCheckpointNamingScheme(_baseDirectory);
        // removeOutdated off: the reader never commits, and deletions are this class's (see OnRecovery).
        _reader = new DeviceLogCommitCheckpointManager(_devices, _naming, removeOutdated: false);
    }

    public void CommitLogCheckpoint(Guid logToken, byte[] commitMetadata)
    {
        if (!TryWriteMetadata(_naming.LogCheckpointMetadata(logToken), _naming.LogCheckpointBase(logToken), commitMetadata))
            return;
        Guid prior;
        lock (_gate)
        {
            prior = _previousLog;
            _previousLog = logToken;
        }
        if (prior != default && prior != logToken)
            TryDelete(_naming.LogCheckpointBase(prior));
    }

    public void CommitIndexCheckpoint(Guid indexToken, byte[] commitMetadata)
    {
        if (!TryWriteMetadata(_naming.IndexCheckpointMetadata(indexToken), _naming.IndexCheckpointBase(indexToken), commitMetadata))
            return;
        // Two index checkpoints are kept, as FASTER's manager does: recovery may pair the latest log checkpoint
        // with the index checkpoint before the latest.
        Guid prior;
        lock (_gate)
        {
            prior = _previousIndexes[_nextIndexSlot];
            _previousIndexes[_nextIndexSlot] = indexToken;
            _nextIndexSlot = (_nextIndexSlot + 1) % _previousIndexes.Length;
        }
        if (prior != default && prior != indexToken)
            TryDelete(_naming.IndexCheckpointBase(prior));
    }

    // The first metadata write that failed since the last call: the store's checkpoint then counts as not taken (it
    // keeps the journal it would have truncated), and recovery uses the previous checkpoint, which is kept.
    public Exception? TakeFailure() => Interlocked.Exchange(ref _failure, null);

    // Never throws: FASTER calls the Commit methods inside a state transition that every other thread waits on, and
    // an exception there would leave the transition unfinished and the store's writers spinning for good. (FASTER's
    // own manager logs a failed write and goes on.) A failed checkpoint's directory is removed, best effort, so that
    // recovery does not pick its torn metadata.
    private bool TryWriteMetadata(FileDescriptor file, FileDescriptor checkpointDirectory, byte[] metadata)
    {
        try
        {
            WriteMetadata(file, metadata);
            return true;
        }
        catch (Exception ex)
        {
            Interlocked.CompareExchange(ref _failure, ex, null);
            TryDelete(checkpointDirectory);
            return false;
        }
    }

    // Deleting an outdated (or failed) checkpoint also runs inside FASTER's transition: a failure leaves the
    // directory for the next recovery's clean-up (OnRecovery deletes every checkpoint it did not use).
    private void TryDelete(FileDescriptor checkpointDirectory)
    {
        try
        {
            _devices.Delete(checkpointDirectory);
        }
        catch (Exception)
        {
            // See above: recovery uses the newest complete checkpoint, so an older one left behind is only disk space.
        }
    }

    private void WriteMetadata(FileDescriptor descriptor, byte[] metadata)
    {
        string path = Path.Combine(_baseDirectory, descriptor.directoryName, descriptor.fileName + SegmentSuffix);
        int length = (sizeof(int) + metadata.Length + SectorBytes - 1) / SectorBytes * SectorBytes;
        var buffer = new byte[length];
        BinaryPrimitives.WriteInt32LittleEndian(buffer, metadata.Length);
        metadata.CopyTo(buffer.AsSpan(sizeof(int)));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        // Write-through (O_SYNC): durable when Write returns, as the default device's writes are. The new file's
        // directory entry becomes durable with that sync on journaling file systems (see SlotCommitManager).
        using var file = File.OpenHandle(path, FileMode.Create, FileAccess.Write, FileShare.Read, FileOptions.WriteThrough);
        RandomAccess.Write(file, buffer, 0);
    }

    public void OnRecovery(Guid indexToken, Guid logToken)
    {
        lock (_gate)
        {
            if (indexToken != default)
            {
                _previousIndexes[_nextIndexSlot] = indexToken;
                _nextIndexSlot = (_nextIndexSlot + 1) % _previousIndexes.Length;
            }
            if (logToken != default)
                _previousLog = logToken;
        }
        // Deletes every checkpoint other than the two recovery used (FASTER's removeOutdated behaviour).
        foreach (var token in _reader.GetLogCheckpointTokens().Where(t => t != logToken).ToList())
            _devices.Delete(_naming.LogCheckpointBase(token));
        foreach (var token in _reader.GetIndexCheckpointTokens().Where(t => t != indexToken).ToList())
            _devices.Delete(_naming.IndexCheckpointBase(token));
    }

    public byte[] GetLogCheckpointMetadata(Guid logToken, DeltaLog deltaLog, bool scanDelta, long recoverTo) =>
        _reader.GetLogCheckpointMetadata(logToken, deltaLog, scanDelta, recoverTo);

    public byte[] GetIndexCheckpointMetadata(Guid indexToken) => _reader.GetIndexCheckpointMetadata(indexToken);

    public IEnumerable<Guid> GetLogCheckpointTokens() => _reader.GetLogCheckpointTokens();

    public IEnumerable<Guid> GetIndexCheckpointTokens() => _reader.GetIndexCheckpointTokens();

    public IDevice GetIndexDevice(Guid indexToken) => _reader.GetIndexDevice(indexToken);

    public IDevice GetSnapshotLogDevice(Guid token) => _reader.GetSnapshotLogDevice(token);

    public IDevice GetSnapshotObjectLogDevice(Guid token) => _reader.GetSnapshotObjectLogDevice(token);

    public IDevice GetDeltaLogDevice(Guid token) => _reader.GetDeltaLogDevice(token);

    // Incremental (delta) checkpoints are not used by this store; FASTER's manager handles them if they ever are.
    public void CommitLogIncrementalCheckpoint(Guid logToken, long version, byte[] commitMetadata, DeltaLog deltaLog) =>
        _reader.CommitLogIncrementalCheckpoint(logToken, version, commitMetadata, deltaLog);

    public void InitializeIndexCheckpoint(Guid indexToken) => _reader.InitializeIndexCheckpoint(indexToken);

    public void InitializeLogCheckpoint(Guid logToken) => _reader.InitializeLogCheckpoint(logToken);

    public void CheckpointVersionShift(long oldVersion, long newVersion) => _reader.CheckpointVersionShift(oldVersion, newVersion);

    public void Purge(Guid token) => _reader.Purge(token);

    public void PurgeAll() => _reader.PurgeAll();

    public void Dispose() => _reader.Dispose();
}
