using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using FASTER.core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Wayang.Fast.Common;
using Wayang.Fast.Common.Errors;
using Session = FASTER.core.ClientSession<FASTER.core.SpanByte, FASTER.core.SpanByte, FASTER.core.SpanByte, byte[], FASTER.core.Empty, Wayang.Fast.Storage.StoreFunctions>;

namespace Wayang.Fast.Storage;

// IStateStore on FasterKV<SpanByte, SpanByte>, made durable by the Journal.
//
// Write path: under the key's stripe lock, enqueue the journal entry and apply it to FasterKV; then (outside
// the lock) await the entry's group commit. The stripe lock makes journal order and apply order agree per key,
// so replaying the journal rebuilds exactly the state that readers saw.
//
// Checkpoints: take every stripe lock for a moment and read the journal tail A (now every entry before A is
// applied), force a journal commit through A, then take a full FasterKV checkpoint (index + fold-over log)
// whose commit cookie records A, and truncate the journal to A. Recovery restores the latest checkpoint and
// replays the committed journal from its A, so its cost is bounded by the journal written since the last
// checkpoint (CheckpointInterval / CheckpointJournalBytes), not by the journal's whole history.
//
// Compaction: fold-over checkpoints make every later update append, so the hybrid log's segment files would grow
// forever. Before a (non-dispose) checkpoint, when the log below the read-only address holds enough bytes, FASTER
// copies the live records below it to the tail and shifts BeginAddress in memory only (no file is deleted). The
// checkpoint that follows persists the new BeginAddress, and only after it completes are the segment files below
// it deleted. A crash anywhere before that recovers from the previous checkpoint, whose segments still exist.
public sealed partial class FasterStateStore : IExpiringStateStore, IAsyncDisposable
{
    public const int FormatVersion = StorageDirectory.CurrentFormatVersion;

    private const int StripeCount = 64;
    private const int CookieVersion = 1;

    private readonly StorageDirectory _directory;
    private readonly StorageOptions _options;
    private readonly ILogger _logger;
    private readonly IDevice _hlogDevice;
    private readonly InlineCheckpointManager _checkpoints;
    private readonly FasterKV<SpanByte, SpanByte> _kv;
    private readonly StoreFunctions _functions = new();
    // A lock-free queue, not a ConcurrentBag: pool threads rarely return a session on the thread that rented it, and the
    // bag's cross-thread stealing takes a lock that every durable write then contended for.
    private readonly ConcurrentQueue<Session> _sessions = new();
    private readonly Lock[] _stripes = new Lock[StripeCount];
    private readonly SemaphoreSlim _checkpointGate = new(1, 1);
    private readonly SemaphoreSlim _checkpointSignal = new(0, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Journal _journal;
    private Task _checkpointLoop = Task.CompletedTask;
    private long _mutations;
    private long _mutationsAtCheckpoint;
    private long _checkpointAddress;
    // Journal address from which written bytes count toward the next CheckpointJournalBytes trigger: the cut of the
    // latest checkpoint started (not completed), so writes during a checkpoint do not trigger another right after it.
    private long _triggerBase;
    private long _liveBytesEstimate;
    private bool _truncatePending;
    private int _checkpointSignalled;
    private int _disposed;

    private FasterStateStore(StorageDirectory directory, StorageOptions options, ILogger logger)
    {
        _directory = directory;
        _options = options;
        _logger = logger;
        for (int i = 0; i < _stripes.Length; i++)
            _stripes[i] = new Lock();

        var manifest = directory.Manifest;
        Directory.CreateDirectory(directory.StatePath);
        _hlogDevice = Devices.CreateLogDevice(Path.Combine(directory.StatePath, "hlog"), preallocateFile: false, deleteOnClose: false, recoverDevice: true);
        _checkpoints = new InlineCheckpointManager(Path.Combine(directory.StatePath, "checkpoints"));
        var kvSettings = new FasterKVSettings<SpanByte, SpanByte>
        {
            IndexSize = Math.Max(options.IndexBuckets, 64) * 64,
            LogDevice = _hlogDevice,
            PageSize = 1L << manifest.StorePageBits,
            SegmentSize = 1L << manifest.StoreSegmentBits,
            MemorySize = 1L << Math.Max(options.StoreMemoryBits, manifest.StorePageBits + 1),
            CheckpointManager = _checkpoints,
            TryRecoverLatest = false,
        };
        _kv = new FasterKV<SpanByte, SpanByte>(kvSettings);
        Metrics = new StorageMetrics();
        try
        {
            Recovery = RecoverState(out _journal);
        }
        catch
        {
            _kv.Dispose();
            _checkpoints.Dispose();
            _hlogDevice.Dispose();
            throw;
        }
    }

    public static FasterStateStore Open(StorageOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);
        logger ??= NullLogger.Instance;
        var directory = StorageDirectory.Open(options);
        try
        {
            var effective = ApplyManifest(options, directory.Manifest, logger);
            var store = new FasterStateStore(directory, effective, logger);
            store._checkpointLoop = Task.Run(store.CheckpointLoopAsync);
            StorageLog.Opened(logger, directory.Root, directory.Manifest.FormatVersion, options.Durability);
            return store;
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }

    // Open does blocking recovery I/O; this keeps it off the caller's thread.
    public static Task<FasterStateStore> OpenAsync(StorageOptions options, ILogger? logger = null, CancellationToken cancellationToken = default) =>
        Task.Run(() => Open(options, logger), cancellationToken);

    public string DataDirectory => _directory.Root;
    public Journal Journal => _journal;
    public StorageMetrics Metrics { get; }
    public StoreRecoveryInfo Recovery { get; }
    // Journal address the latest completed checkpoint covers.
    public long CheckpointAddress => Volatile.Read(ref _checkpointAddress);
    // The store's hybrid log: records below BeginAddress are gone (compacted); its segment files are deleted once a
    // checkpoint has recorded it.
    public long StoreLogBeginAddress => _kv.Log.BeginAddress;
    public long StoreLogTailAddress => _kv.Log.TailAddress;

    public ValueTask PutAsync(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
            return ValueTask.FromCanceled(cancellationToken);
        CheckKey(key.Span);
        if (value.Length > _options.MaxValueBytes)
            ThrowHelper.ThrowWayang(ErrorCode.InvalidArgument, $"Value is {value.Length} bytes; the limit is {_options.MaxValueBytes}.");
        ThrowIfDisposed();
        if (MustQueue())
            return Queue(key, value, delete: false, cancellationToken);
        return PutNow(key.Span, value.Span, cancellationToken);
    }

    private ValueTask PutNow(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, CancellationToken cancellationToken)
    {
        long address;
        var stripe = StripeFor(key);
        stripe.Enter();
        try
        {
            address = _journal.EnqueuePut(key, value);
            ApplyPut(key, value);
        }
        finally
        {
            stripe.Exit();
        }
        AfterMutation(address);
        return _journal.WaitForCommitAsync(address, cancellationToken);
    }

    public ValueTask DeleteAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
            return ValueTask.FromCanceled(cancellationToken);
        CheckKey(key.Span);
        ThrowIfDisposed();
        if (MustQueue())
            return Queue(key, ReadOnlyMemory<byte>.Empty, delete: true, cancellationToken);
        return DeleteNow(key.Span, cancellationToken);
    }

    private ValueTask DeleteNow(ReadOnlySpan<byte> key, CancellationToken cancellationToken)
    {
        long address;
        var stripe = StripeFor(key);
        stripe.Enter();
        try
        {
            address = _journal.Enqueue(JournalRecordType.Delete, key);
            ApplyDelete(key);
        }
        finally
        {
            stripe.Exit();
        }
        AfterMutation(address);
        return _journal.WaitForCommitAsync(address, cancellationToken);
    }

    public unsafe bool TryGet(ReadOnlySpan<byte> key, out byte[] value)
    {
        ThrowIfDisposed();
        var session = RentSession();
        try
        {
            byte[] output = null!;
            Status status;
            fixed (byte* k = key)
            {
                var keySpan = SpanByte.FromPointer(k, key.Length);
                status = session.Read(ref keySpan, ref output);
                if (status.IsPending)
                {
                    // The record is on disk: wait for this one read (FASTER sessions complete their own I/O).
                    session.CompletePendingWithOutputs(out var completed, wait: true);
                    using (completed)
                    {
                        while (completed.Next())
                        {
                            status = completed.Current.Status;
                            output = completed.Current.Output;
                        }
                    }
                }
            }
            if (status.Found && output is not null)
            {
                value = output;
                return true;
            }
            value = [];
            return false;
        }
        finally
        {
            ReturnSession(session);
        }
    }

    public IReadOnlyList<KeyValuePair<byte[], byte[]>> ScanPrefix(ReadOnlySpan<byte> prefix)
    {
        ThrowIfDisposed();
        // Walk the hybrid log for candidate keys, then read each through the index: the read is authoritative
        // (latest version, deleted keys absent). FASTER 2.6.5's deduplicating session.Iterate() returned mangled
        // SpanByte keys when a key had versions both below and above the read-only address (seen after recovery).
        var keys = new HashSet<byte[]>(ByteArrayComparer.Instance);
        var lookup = keys.GetAlternateLookup<ReadOnlySpan<byte>>();
        using (var scan = _kv.Log.Scan(_kv.Log.BeginAddress, _kv.Log.TailAddress))
        {
            while (scan.GetNext(out var recordInfo))
            {
                if (recordInfo.Invalid || recordInfo.Tombstone)
                    continue;
                var key = scan.GetKey().AsReadOnlySpan();
                if (key.StartsWith(prefix))
                    lookup.Add(key);
            }
        }
        var results = new List<KeyValuePair<byte[], byte[]>>(keys.Count);
        foreach (var key in keys)
        {
            if (TryGet(key, out var value))
                results.Add(new KeyValuePair<byte[], byte[]>(key, value));
        }
        return results;
    }

    // Takes a checkpoint now (the background loop calls this on CheckpointInterval / CheckpointJournalBytes) and
    // returns the journal address it covers. The journal before that address is truncated afterwards. Compacts the
    // store's log first when CompactionMinLogBytes says it is due.
    public ValueTask<long> CheckpointAsync(CancellationToken cancellationToken = default) =>
        CheckpointAsync(compact: true, cancellationToken);

    private async ValueTask<long> CheckpointAsync(bool compact, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        await _checkpointGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (compact && TryCompactOrLog())
                _truncatePending = true;
            long covered = await CheckpointCoreAsync(cancellationToken).ConfigureAwait(false);
            // The checkpoint just taken records the new BeginAddress, so nothing can recover into the segments
            // below it any more (FASTER keeps only the latest checkpoint): delete them now. Pending also after a
            // failed checkpoint or a crash between a checkpoint and this deletion (set by recovery).
            if (_truncatePending)
            {
                _kv.Log.Truncate();
                _truncatePending = false;
            }
            return covered;
        }
        finally
        {
            _checkpointGate.Release();
        }
    }

    private async ValueTask<long> CheckpointCoreAsync(CancellationToken cancellationToken)
    {
        long start = Stopwatch.GetTimestamp();
        long mutations = Volatile.Read(ref _mutations);
        long covered = CutJournal();
        long previousBase = Interlocked.Exchange(ref _triggerBase, covered);
        try
        {
            return await CheckpointFromCutAsync(start, mutations, covered, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Not taken: the journal since the last completed checkpoint counts again, so the next trigger retries.
            Interlocked.CompareExchange(ref _triggerBase, previousBase, covered);
            throw;
        }
    }

    private async ValueTask<long> CheckpointFromCutAsync(long start, long mutations, long covered, CancellationToken cancellationToken)
    {
        // The checkpoint must never cover journal entries that a crash could still lose: if it did, recovery
        // would reopen the journal behind the checkpoint and later writes would land below the covered address.
        await _journal.CommitAsync(cancellationToken).ConfigureAwait(false);

        var cookie = new byte[sizeof(int) + sizeof(long)];
        BinaryPrimitives.WriteInt32LittleEndian(cookie, CookieVersion);
        BinaryPrimitives.WriteInt64LittleEndian(cookie.AsSpan(sizeof(int)), covered);
        _kv.CommitCookie = cookie;

        Guid token;
        // False while another checkpoint (none of ours: the gate serializes them) is in progress; wait it out.
        while (!_kv.TryInitiateFullCheckpoint(out token, CheckpointType.FoldOver))
            await WaitForCheckpointRestAsync(cancellationToken).ConfigureAwait(false);
        await WaitForCheckpointRestAsync(cancellationToken).ConfigureAwait(false);
        if (_checkpoints.TakeFailure() is { } failure)
            throw new IOException($"Checkpoint {token} was not written: {failure.Message}", failure);

        Volatile.Write(ref _checkpointAddress, covered);
        Volatile.Write(ref _mutationsAtCheckpoint, mutations);
        if (covered > _journal.BeginAddress)
            await _journal.TruncateUntilAsync(covered, cancellationToken).ConfigureAwait(false);

        Span<byte> marker = stackalloc byte[sizeof(long) + 16];
        BinaryPrimitives.WriteInt64LittleEndian(marker, covered);
        token.TryWriteBytes(marker[sizeof(long)..]);
        _journal.Enqueue(JournalRecordType.Checkpoint, marker);

        Metrics.OnCheckpoint(start, covered);
        StorageLog.CheckpointTaken(_logger, token, covered, (long)Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        return covered;
    }

    // Waits until FASTER's checkpoint state machine is back at REST (the checkpoint is then on disk). Not FASTER's
    // CompleteCheckpointAsync: while the state machine waits for every thread inside the epoch to pass a phase,
    // that method re-enters the epoch in a busy loop (only flush waits are awaited), which kept a core spinning for
    // the length of every checkpoint (9% of the server's CPU samples under load on 2 cores). Here a session of our
    // pool refreshes once a millisecond: under load the writers' own operations move the phases on, and when the
    // store is idle this refresh does.
    private async ValueTask WaitForCheckpointRestAsync(CancellationToken cancellationToken)
    {
        var session = RentSession();
        try
        {
            while (true)
            {
                session.Refresh();
                if (_kv.SystemState.Phase == Phase.REST)
                    return;
                await Task.Delay(1, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            ReturnSession(session);
        }
    }

    // Runs under the checkpoint gate, before the checkpoint. FASTER's Lookup compaction walks [BeginAddress,
    // until) and copies a record to the tail only if the hash chain holds no newer record of its key (and not at
    // all if a newer write lands meanwhile), so it is safe next to writers that hold only their stripe lock.
    // Tombstones and overwritten records are dropped. It reads the on-disk part through the index, so its memory
    // does not grow with the log, unlike Scan compaction's temporary store.
    private bool TryCompactOrLog()
    {
        try
        {
            return TryCompact();
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not ObjectDisposedException)
        {
            // A failed compaction changed no logical state (records it already copied are current values) and
            // did not move BeginAddress: the checkpoint still goes ahead, so the journal keeps being truncated.
            StorageLog.CompactionFailed(_logger, ex);
            return false;
        }
    }

    private bool TryCompact()
    {
        long threshold = _options.CompactionMinLogBytes;
        if (threshold <= 0)
            return false;
        long begin = _kv.Log.BeginAddress;
        long until = _kv.Log.SafeReadOnlyAddress;
        // Compacting copies all live data below `until`: wait until the log holds at least as much dead data as
        // live (as measured by the previous compaction), so the copying stays proportional to the garbage.
        if (until - begin < Math.Max(threshold, 2 * Volatile.Read(ref _liveBytesEstimate)))
            return false;

        long start = Stopwatch.GetTimestamp();
        long tailBefore = _kv.Log.TailAddress;
        long newBegin;
        var session = RentSession();
        var expiry = new ExpiringCompaction(Volatile.Read(ref _expiryRules));
        try
        {
            newBegin = session.Compact(until, CompactionType.Lookup, expiry);
        }
        finally
        {
            ReturnSession(session);
        }
        Metrics.OnCompactionExpired(expiry.Expired);
        // Concurrent writes also move the tail, so this overestimates the live data (compacting a bit later).
        Volatile.Write(ref _liveBytesEstimate, Math.Max(0, _kv.Log.TailAddress - tailBefore));
        Metrics.OnCompaction(newBegin - begin);
        StorageLog.Compacted(_logger, begin, newBegin, _liveBytesEstimate, (long)Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        return newBegin > begin;
    }

    // With every stripe held, no write sits between its journal enqueue and its FasterKV apply, so every entry
    // below the tail read here is already in FasterKV and will be in the checkpoint that starts after this.
    private long CutJournal()
    {
        int entered = 0;
        try
        {
            for (; entered < _stripes.Length; entered++)
                _stripes[entered].Enter();
            return _journal.TailAddress;
        }
        finally
        {
            for (int i = entered - 1; i >= 0; i--)
                _stripes[i].Exit();
        }
    }

    private async Task CheckpointLoopAsync()
    {
        var stopToken = _stop.Token;
        var interval = _options.CheckpointInterval > TimeSpan.Zero ? _options.CheckpointInterval : Timeout.InfiniteTimeSpan;
        while (!stopToken.IsCancellationRequested)
        {
            try
            {
                bool signalled = await _checkpointSignal.WaitAsync(interval, stopToken).ConfigureAwait(false);
                Volatile.Write(ref _checkpointSignalled, 0);
                // A write can signal between the flag's reset and the checkpoint's cut; the checkpoint then covers
                // what it signalled for, and the stale signal is dropped here instead of checkpointing again at once.
                if (signalled && _journal.TailAddress - Volatile.Read(ref _triggerBase) < _options.CheckpointJournalBytes)
                    continue;
                if (Volatile.Read(ref _mutations) != Volatile.Read(ref _mutationsAtCheckpoint))
                    await CheckpointAsync(stopToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopToken.IsCancellationRequested)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (Exception ex)
            {
                StorageLog.CheckpointFailed(_logger, ex);
            }
        }
    }

    private void AfterMutation(long address)
    {
        Interlocked.Increment(ref _mutations);
        if (address - Volatile.Read(ref _triggerBase) >= _options.CheckpointJournalBytes
            && Interlocked.Exchange(ref _checkpointSignalled, 1) == 0)
        {
            _checkpointSignal.Release();
        }
    }

    private StoreRecoveryInfo RecoverState(out Journal journal)
    {
        long start = Stopwatch.GetTimestamp();
        bool fromCheckpoint = false;
        long covered = 0;
        if (_kv.CheckpointManager.GetLogCheckpointTokens().Any())
        {
            try
            {
                _kv.Recover();
            }
            catch (Exception ex)
            {
                throw new WayangException(new WayangError(ErrorCode.StorageCorrupt, $"The state checkpoint in '{_directory.StatePath}' could not be recovered: {ex.Message}"), ex);
            }
            var cookie = _kv.RecoveredCommitCookie;
            if (cookie is null || cookie.Length < sizeof(int) + sizeof(long) || BinaryPrimitives.ReadInt32LittleEndian(cookie) != CookieVersion)
                throw new WayangException(ErrorCode.StorageCorrupt, $"The state checkpoint in '{_directory.StatePath}' does not record which journal address it covers.");
            covered = BinaryPrimitives.ReadInt64LittleEndian(cookie.AsSpan(sizeof(int)));
            fromCheckpoint = true;
            _truncatePending = true;
        }

        journal = Journal.Open(_directory.JournalPath, _options, Metrics, _logger);
        try
        {
            if (fromCheckpoint)
            {
                if (journal.BeginAddress > covered)
                    throw new WayangException(ErrorCode.StorageCorrupt, $"The journal starts at address {journal.BeginAddress}, after the address {covered} the checkpoint covers: entries in between are missing.");
                if (journal.CommittedUntilAddress < covered)
                    throw new WayangException(ErrorCode.StorageCorrupt, $"The journal is committed only until address {journal.CommittedUntilAddress}, behind the address {covered} the checkpoint covers.");
            }
            else if (journal.BeginAddress > FirstJournalAddress)
            {
                throw new WayangException(ErrorCode.StorageCorrupt, $"The journal was truncated to address {journal.BeginAddress} but no state checkpoint exists in '{_directory.StatePath}'.");
            }

            long replayed = 0;
            foreach (var record in journal.ReadCommitted(covered))
            {
                if (Replay(record))
                    replayed++;
            }
            // A store that replayed anything checkpoints at its next trigger (or dispose), not only after new writes.
            _mutations = replayed;
            Volatile.Write(ref _checkpointAddress, covered);
            Volatile.Write(ref _triggerBase, covered);
            Metrics.OnRecoveredCheckpoint(covered);
            var info = new StoreRecoveryInfo(fromCheckpoint, covered, replayed, journal.CommittedUntilAddress, Stopwatch.GetElapsedTime(start));
            StorageLog.Recovered(_logger, fromCheckpoint, covered, replayed, info.JournalCommittedUntil, (long)info.Duration.TotalMilliseconds);
            return info;
        }
        catch
        {
            journal.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    // FasterLog's first entry address (FASTER reserves the first 64 bytes of a log).
    private const long FirstJournalAddress = 64;

    private bool Replay(in JournalRecord record)
    {
        var payload = record.Payload.Span;
        switch (record.Type)
        {
            case JournalRecordType.Put:
                if (payload.Length < sizeof(uint))
                    throw CorruptRecord(record, "Put entry has no key length");
                uint keyLength = BinaryPrimitives.ReadUInt32LittleEndian(payload);
                if (keyLength == 0 || keyLength > payload.Length - sizeof(uint))
                    throw CorruptRecord(record, $"Put entry's key length {keyLength} does not fit its {payload.Length}-byte body");
                ApplyPut(payload.Slice(sizeof(uint), (int)keyLength), payload[(sizeof(uint) + (int)keyLength)..]);
                return true;
            case JournalRecordType.Delete:
                if (payload.IsEmpty)
                    throw CorruptRecord(record, "Delete entry has no key");
                ApplyDelete(payload);
                return true;
            case JournalRecordType.Checkpoint:
                return false;
            default:
                throw CorruptRecord(record, $"unknown record type {(byte)record.Type}");
        }
    }

    private WayangException CorruptRecord(in JournalRecord record, string what) =>
        new(ErrorCode.StorageCorrupt, $"Journal '{_directory.JournalPath}' is corrupt: entry at address {record.Address}: {what}.");

    private unsafe void ApplyPut(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        var session = RentSession();
        try
        {
            fixed (byte* k = key)
            fixed (byte* v = value)
            {
                var keySpan = SpanByte.FromPointer(k, key.Length);
                var valueSpan = SpanByte.FromPointer(v, value.Length);
                session.Upsert(ref keySpan, ref valueSpan);
            }
        }
        finally
        {
            ReturnSession(session);
        }
    }

    private unsafe void ApplyDelete(ReadOnlySpan<byte> key)
    {
        var session = RentSession();
        try
        {
            fixed (byte* k = key)
            {
                var keySpan = SpanByte.FromPointer(k, key.Length);
                session.Delete(ref keySpan);
            }
        }
        finally
        {
            ReturnSession(session);
        }
    }

    // FASTER sessions are single-threaded; a pool gives each concurrent caller its own. Operations here never
    // leave a session with pending work (reads complete before returning), so any thread may take any session.
    private Session RentSession() =>
        _sessions.TryDequeue(out var session) ? session : _kv.For(_functions).NewSession<StoreFunctions>();

    private void ReturnSession(Session session)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            session.Dispose();
            return;
        }
        _sessions.Enqueue(session);
    }

    private Lock StripeFor(ReadOnlySpan<byte> key) => _stripes[Crc32C.Compute(key) & (StripeCount - 1)];

    private void CheckKey(ReadOnlySpan<byte> key)
    {
        if (key.IsEmpty)
            ThrowHelper.ThrowWayang(ErrorCode.InvalidArgument, "A key must not be empty.");
        if (key.Length > _options.MaxKeyBytes)
            ThrowHelper.ThrowWayang(ErrorCode.InvalidArgument, $"Key is {key.Length} bytes; the limit is {_options.MaxKeyBytes}.");
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    private static void Validate(StorageOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.DataDirectory))
            ThrowHelper.ThrowArgument(nameof(options), "StorageOptions.DataDirectory is required.");
        if (options.MaxKeyBytes <= 0 || options.MaxValueBytes < 0)
            ThrowHelper.ThrowArgument(nameof(options), "MaxKeyBytes must be positive and MaxValueBytes non-negative.");
    }

    private static StorageOptions ApplyManifest(StorageOptions requested, DataManifest manifest, ILogger logger)
    {
        void Note(string name, int asked, int actual)
        {
            if (asked != actual)
                StorageLog.GeometryFromManifest(logger, name, asked, actual);
        }
        Note(nameof(StorageOptions.JournalPageBits), requested.JournalPageBits, manifest.JournalPageBits);
        Note(nameof(StorageOptions.JournalSegmentBits), requested.JournalSegmentBits, manifest.JournalSegmentBits);
        Note(nameof(StorageOptions.StorePageBits), requested.StorePageBits, manifest.StorePageBits);
        Note(nameof(StorageOptions.StoreSegmentBits), requested.StoreSegmentBits, manifest.StoreSegmentBits);

        var effective = new StorageOptions
        {
            DataDirectory = requested.DataDirectory,
            Durability = requested.Durability,
            RelaxedCommitInterval = requested.RelaxedCommitInterval,
            CheckpointInterval = requested.CheckpointInterval,
            CheckpointJournalBytes = requested.CheckpointJournalBytes,
            CompactionMinLogBytes = requested.CompactionMinLogBytes,
            JournalMemoryBits = Math.Max(requested.JournalMemoryBits, manifest.JournalPageBits + 1),
            JournalPageBits = manifest.JournalPageBits,
            JournalSegmentBits = manifest.JournalSegmentBits,
            IndexBuckets = requested.IndexBuckets,
            StoreMemoryBits = requested.StoreMemoryBits,
            StorePageBits = manifest.StorePageBits,
            StoreSegmentBits = manifest.StoreSegmentBits,
            DeleteOnClose = requested.DeleteOnClose,
            MaxKeyBytes = requested.MaxKeyBytes,
            MaxValueBytes = requested.MaxValueBytes,
            CheckpointOnDispose = requested.CheckpointOnDispose,
        };
        // One Put entry (header, key length, key, value) must fit in one journal page and one store page.
        long largest = JournalEntryFormat.HeaderBytes + JournalEntryFormat.PutBodyPrefixBytes + (long)effective.MaxKeyBytes + effective.MaxValueBytes + 64;
        if (largest > (1L << effective.JournalPageBits) || largest > (1L << effective.StorePageBits))
            ThrowHelper.ThrowWayang(ErrorCode.InvalidArgument,
                $"MaxKeyBytes + MaxValueBytes ({effective.MaxKeyBytes} + {effective.MaxValueBytes}) must fit in one journal page (2^{effective.JournalPageBits}) and one store page (2^{effective.StorePageBits}).");
        return effective;
    }

    public async ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref _disposed) != 0)
            return;
        await _stop.CancelAsync().ConfigureAwait(false);
        await _checkpointLoop.ConfigureAwait(false);
        try
        {
            if (_options.CheckpointOnDispose && Volatile.Read(ref _mutations) != Volatile.Read(ref _mutationsAtCheckpoint))
                await CheckpointAsync(compact: false, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The journal still holds everything; the next open replays it.
            StorageLog.CheckpointFailed(_logger, ex);
        }
        Volatile.Write(ref _disposed, 1);
        await _journal.DisposeAsync().ConfigureAwait(false);
        while (_sessions.TryDequeue(out var session))
            session.Dispose();
        _kv.Dispose();
        _checkpoints.Dispose();
        _hlogDevice.Dispose();
        _directory.Dispose();
        _stop.Dispose();
        _checkpointGate.Dispose();
        _checkpointSignal.Dispose();
        if (_options.DeleteOnClose)
        {
            try
            {
                Directory.Delete(_directory.Root, recursive: true);
            }
            catch (IOException)
            {
                // Best effort: tests use their own temp directories.
            }
        }
    }
}

// What Open found: whether a checkpoint was restored, the journal address it covers, and how much journal was
// replayed on top of it.
public readonly record struct StoreRecoveryInfo(bool FromCheckpoint, long CheckpointAddress, long ReplayedEntries, long JournalCommittedUntil, TimeSpan Duration);
