using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using FASTER.core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Wayang.Fast.Common;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Storage;

// The write-ahead journal: FasterLog plus one dedicated group-commit loop.
//
// Enqueue copies an entry into the log's in-memory tail (no I/O). Durable waiters hang on the current
// CommitBatch; the loop swaps in a fresh batch, commits everything enqueued so far (one FasterLog commit:
// data pages written through O_SYNC/O_DIRECT by FASTER's local device, then the commit metadata in place by
// SlotCommitManager), then completes
// the old batch with the committed address. So N concurrent writers cost one commit, not N, and each waiter
// is released by the first commit that started after its enqueue returned.
//
// Fsync: a write's task completes after its commit. Relaxed: it completes once enqueued, and the loop commits
// every RelaxedCommitInterval (see README.md for what a crash can lose).
//
// The journal does not lock its directory; FasterStateStore does (the journal lives inside its data directory).
public sealed class Journal : IAsyncDisposable
{
    private readonly FasterLog _log;
    private readonly IDevice _device;
    private readonly SlotCommitManager _commits;
    private readonly DurabilityMode _durability;
    private readonly TimeSpan _relaxedInterval;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _signal = new(0, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly int _maxEntryBytes;
    private readonly long _admitBytes;
    private CommitBatch _batch = new();
    private int _signalled;
    private long _committedUntil;
    private long _committedBegin;
    private Exception? _fault;
    private int _disposed;

    private Journal(string directory, StorageOptions options, StorageMetrics metrics, ILogger logger)
    {
        Directory = directory;
        _durability = options.Durability;
        _relaxedInterval = options.RelaxedCommitInterval > TimeSpan.Zero ? options.RelaxedCommitInterval : TimeSpan.FromMilliseconds(5);
        _logger = logger;
        Metrics = metrics;
        System.IO.Directory.CreateDirectory(directory);

        // recoverDevice: learn which segment files exist so truncation deletes the right ones after a restart.
        _device = Devices.CreateLogDevice(Path.Combine(directory, "log"), preallocateFile: false, deleteOnClose: false, recoverDevice: true);
        try
        {
            _commits = new SlotCommitManager(directory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _device.Dispose();
            throw new WayangException(new WayangError(ErrorCode.StorageIo, $"The journal's commit file in '{directory}' could not be opened: {ex.Message}"), ex);
        }
        var settings = new FasterLogSettings
        {
            LogDevice = _device,
            PageSizeBits = options.JournalPageBits,
            MemorySizeBits = options.JournalMemoryBits,
            SegmentSizeBits = options.JournalSegmentBits,
            LogCommitManager = _commits,
            // FASTER verifies this for entries read from disk pages; our own CRC covers the in-memory tail too.
            LogChecksum = LogChecksumType.PerEntry,
            TryRecoverLatest = true,
            // Off: a fast commit is found on recovery by scanning forward, which would stop silently at a corrupt
            // entry instead of letting replay report it. A commit here is one metadata write after the data.
            FastCommitMode = false,
            AutoRefreshSafeTailAddress = false,
        };
        try
        {
            _log = new FasterLog(settings, logger);
        }
        catch (Exception ex)
        {
            _device.Dispose();
            _commits.Dispose();
            throw new WayangException(new WayangError(ErrorCode.StorageCorrupt, $"The journal in '{directory}' could not be recovered: {ex.Message}"), ex);
        }

        // Largest entry FasterLog accepts: one page, less its 12-byte entry header.
        _maxEntryBytes = (1 << options.JournalPageBits) - 12;
        // FasterLog.Enqueue spins on its caller's thread while the in-memory tail is full, and what frees the tail
        // (page-flush completions) needs pool threads too: under overload, writers spinning there starved the pool.
        // The store admits writes through WaitForRoomAsync instead once the unflushed tail passes this, leaving two
        // pages of margin for writers already past the check.
        _admitBytes = Math.Max(1L << options.JournalPageBits, (1L << options.JournalMemoryBits) - 2 * (1L << options.JournalPageBits));
        _committedUntil = _log.CommittedUntilAddress;
        _committedBegin = _log.CommittedBeginAddress;
        _loop = Task.Factory.StartNew(CommitLoopAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    public static Journal Open(string directory, StorageOptions options, StorageMetrics? metrics = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(options);
        return new Journal(directory, options, metrics ?? new StorageMetrics(), logger ?? NullLogger.Instance);
    }

    public string Directory { get; }
    public DurabilityMode Durability => _durability;
    public StorageMetrics Metrics { get; }
    public long BeginAddress => _log.BeginAddress;
    public long TailAddress => _log.TailAddress;
    // Everything below this address is durable.
    public long CommittedUntilAddress => Volatile.Read(ref _committedUntil);
    public int MaxPayloadBytes => _maxEntryBytes - JournalEntryFormat.HeaderBytes;

    // Appends and returns the entry's address once it is durable per the durability mode.
    public async ValueTask<long> AppendAsync(JournalRecordType type, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        long address = Enqueue(type, payload.Span);
        await WaitForCommitAsync(address, cancellationToken).ConfigureAwait(false);
        return address;
    }

    // Copies the entry into the log's memory and returns its address; no commit is requested or awaited.
    // Blocks (spinning inside FasterLog) only while the in-memory log is full and waiting for a flush.
    public unsafe long Enqueue(JournalRecordType type, ReadOnlySpan<byte> payload)
    {
        ThrowIfUnusable();
        if (payload.Length > MaxPayloadBytes)
            ThrowHelper.ThrowArgument(nameof(payload), $"A journal payload is limited to {MaxPayloadBytes} bytes (one journal page); got {payload.Length}.");
        long address;
        fixed (byte* p = payload)
            address = _log.Enqueue(new RawJournalEntry(type, p, payload.Length));
        Metrics.OnAppend();
        return address;
    }

    internal unsafe long EnqueuePut(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        ThrowIfUnusable();
        long address;
        fixed (byte* k = key)
        fixed (byte* v = value)
            address = _log.Enqueue(new PutJournalEntry(k, key.Length, v, value.Length));
        Metrics.OnAppend();
        return address;
    }

    // True when the log's unflushed tail is close to filling its memory (see _admitBytes).
    public bool NearlyFull => _log.TailAddress - _log.FlushedUntilAddress > _admitBytes;

    // Completes once the tail has room again: asks for a commit (which flushes the tail) and awaits it, holding no
    // thread meanwhile.
    public ValueTask WaitForRoomAsync(CancellationToken cancellationToken = default) =>
        NearlyFull ? WaitForRoomSlowAsync(cancellationToken) : default;

    // Committing the current tail flushes it (committed never passes flushed), which frees the memory.
    private async ValueTask WaitForRoomSlowAsync(CancellationToken cancellationToken)
    {
        while (NearlyFull)
            await WaitCommittedAsync(_log.TailAddress, cancellationToken).ConfigureAwait(false);
        // The store's drainer goes on with a queue of writes: not on the commit's release item (see CommitBatch).
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
    }

    // Completes when the entry at address is durable per the durability mode: after its group commit (Fsync),
    // or at once (Relaxed: the entry is already in the log's memory). Cancelling stops the wait, not the write.
    public ValueTask WaitForCommitAsync(long address, CancellationToken cancellationToken = default)
    {
        if (_durability == DurabilityMode.Relaxed)
            return default;
        return WaitCommittedAsync(address + 1, cancellationToken);
    }

    // Forces a commit of everything enqueued so far, in either mode, and waits for it.
    public ValueTask CommitAsync(CancellationToken cancellationToken = default) => Apart(WaitCommittedAsync(_log.TailAddress, cancellationToken));

    // Drops entries before address (which must be an entry start or the tail at some moment) and waits for the
    // commit that persists the new begin address. FasterLog deletes whole segment files below it after that commit.
    public ValueTask TruncateUntilAsync(long address, CancellationToken cancellationToken = default)
    {
        ThrowIfUnusable();
        _log.TruncateUntil(address);
        return Apart(WaitCommittedAsync(0, cancellationToken, beginAtLeast: address));
    }

    // CommitAsync and TruncateUntilAsync serve checkpoints and exports, whose callers go on with long work: they
    // resume on a pool thread of their own, not on the commit's release item that the other waiters share.
    private static ValueTask Apart(ValueTask wait) => wait.IsCompletedSuccessfully ? wait : ResumeApartAsync(wait);

    private static async ValueTask ResumeApartAsync(ValueTask wait)
    {
        await wait.ConfigureAwait(false);
        await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
    }

    // Committed entries in [fromAddress, CommittedUntilAddress) in order. A checksum failure, an unknown record
    // type, or an entry FasterLog cannot frame throws StorageCorrupt naming the address.
    public IEnumerable<JournalRecord> ReadCommitted(long fromAddress) => ReadCommitted(fromAddress, tolerateDamage: false);

    // tolerateDamage: instead of throwing, yield a record with Damage set for each entry that fails its checksum or
    // has an unknown type, and go on with the next entry (the framing is intact). When FasterLog itself cannot read
    // (its own checksum or length check fails on a disk page), it skips to the next page: that is yielded as one
    // damaged record and reading resumes there; if FasterLog makes no progress, the damaged record ends the scan.
    // For logs that must stay readable past damage (the audit log); the state store's recovery stays strict.
    public IEnumerable<JournalRecord> ReadCommitted(long fromAddress, bool tolerateDamage)
    {
        long begin = Math.Max(fromAddress, _log.BeginAddress);
        long end = CommittedUntilAddress;
        if (begin >= end)
            yield break;
        using var iterator = _log.Scan(begin, end);
        while (true)
        {
            byte[] entry;
            int length;
            long address;
            long before = iterator.NextAddress;
            string? frameDamage = null;
            try
            {
                if (!iterator.GetNext(out entry, out length, out address, out _))
                    yield break;
            }
            catch (Exception ex) when (ex is not WayangException)
            {
                if (!tolerateDamage)
                    throw Corrupt($"FasterLog could not read the entry after address {iterator.CurrentAddress}: {ex.Message}", ex);
                frameDamage = $"FasterLog could not read the entry at or after address {before}: {ex.Message}";
                entry = [];
                length = 0;
                address = before;
            }
            if (frameDamage is not null)
            {
                yield return new JournalRecord(address, JournalRecordType.None, ReadOnlyMemory<byte>.Empty) { Damage = frameDamage };
                if (iterator.NextAddress <= before)
                    yield break;
                continue;
            }
            string? damage = TryDecode(entry, length, address, out var record);
            if (damage is null)
                yield return record;
            else if (tolerateDamage)
                yield return new JournalRecord(address, JournalRecordType.None, ReadOnlyMemory<byte>.Empty) { Damage = damage };
            else
                throw Corrupt(damage);
        }
    }

    private static string? TryDecode(byte[] entry, int length, long address, out JournalRecord record)
    {
        record = default;
        if (length < JournalEntryFormat.HeaderBytes)
            return $"Journal entry at address {address} is {length} bytes, shorter than its header.";
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(entry);
        uint actual = Crc32C.Compute(entry.AsSpan(sizeof(uint), length - sizeof(uint)));
        if (stored != actual)
            return $"Journal entry at address {address} fails its checksum (stored 0x{stored:X8}, computed 0x{actual:X8}).";
        var type = (JournalRecordType)entry[sizeof(uint)];
        if (type is not (JournalRecordType.Put or JournalRecordType.Delete or JournalRecordType.Checkpoint or JournalRecordType.Audit))
            return $"Journal entry at address {address} has unknown record type {(byte)type}.";
        record = new JournalRecord(address, type, entry.AsMemory(JournalEntryFormat.HeaderBytes, length - JournalEntryFormat.HeaderBytes));
        return null;
    }

    private WayangException Corrupt(string message, Exception? inner = null)
    {
        var error = new WayangError(ErrorCode.StorageCorrupt, $"Journal '{Directory}' is corrupt: {message}");
        return inner is null ? new WayangException(error) : new WayangException(error, inner);
    }

    private ValueTask WaitCommittedAsync(long untilAddress, CancellationToken cancellationToken, long beginAtLeast = 0)
    {
        if (Volatile.Read(ref _committedUntil) >= untilAddress && Volatile.Read(ref _committedBegin) >= beginAtLeast)
            return default;
        return WaitCommittedSlowAsync(untilAddress, beginAtLeast, cancellationToken);
    }

    private async ValueTask WaitCommittedSlowAsync(long untilAddress, long beginAtLeast, CancellationToken cancellationToken)
    {
        while (true)
        {
            ThrowIfUnusable();
            // Read the batch after the caller's enqueue returned and before signalling: the loop swaps the batch
            // before it reads the tail to commit, so this batch's commit covers the entry (or a later one does).
            var batch = Volatile.Read(ref _batch);
            RequestCommit();
            long committed = await batch.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (committed >= untilAddress && Volatile.Read(ref _committedBegin) >= beginAtLeast)
                return;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void RequestCommit()
    {
        if (Interlocked.Exchange(ref _signalled, 1) == 0)
            _signal.Release();
    }

    private async Task CommitLoopAsync()
    {
        var stopToken = _stop.Token;
        bool stopping = false;
        while (!stopping)
        {
            try
            {
                if (_durability == DurabilityMode.Relaxed)
                    await _signal.WaitAsync(_relaxedInterval, stopToken).ConfigureAwait(false);
                else
                    await _signal.WaitAsync(stopToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Dispose: one last commit so Relaxed writes acknowledged before it are kept.
                stopping = true;
            }
            Volatile.Write(ref _signalled, 0);

            var batch = Interlocked.Exchange(ref _batch, new CommitBatch());
            try
            {
                if (_log.TailAddress > Volatile.Read(ref _committedUntil) || _log.BeginAddress != Volatile.Read(ref _committedBegin))
                {
                    long start = Stopwatch.GetTimestamp();
                    await _log.CommitAsync(CancellationToken.None).ConfigureAwait(false);
                    Volatile.Write(ref _committedUntil, _log.CommittedUntilAddress);
                    Volatile.Write(ref _committedBegin, _log.CommittedBeginAddress);
                    Metrics.OnCommit(start);
                }
                batch.Complete(Volatile.Read(ref _committedUntil));
            }
            catch (Exception ex)
            {
                StorageLog.CommitFailed(_logger, ex);
                var fault = new WayangException(new WayangError(ErrorCode.StorageIo, $"Journal commit failed: {ex.Message}"), ex);
                Volatile.Write(ref _fault, fault);
                batch.Fail(fault);
                Volatile.Read(ref _batch).Fail(fault);
                return;
            }
        }
        Volatile.Read(ref _batch).Complete(Volatile.Read(ref _committedUntil));
    }

    private void ThrowIfUnusable()
    {
        var fault = Volatile.Read(ref _fault);
        if (fault is not null)
            ThrowFaulted(fault);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowFaulted(Exception fault) =>
        throw new WayangException(new WayangError(ErrorCode.StorageIo, "The journal is faulted after a failed commit; reopen the store."), fault);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        finally
        {
            _log.Dispose();
            _commits.Dispose();
            _device.Dispose();
            _stop.Dispose();
            _signal.Dispose();
        }
    }

    // One group commit's waiters share this task: one allocation per commit, not per write. Its waiters resume one
    // after another on a single pool work item, not one work item each: a commit releases hundreds of writers at
    // once, and waking a pool thread for each costs more on a few cores than the work they resume (closed fsync
    // load: 28-33k against 25-28k tasks/s). The commit loop never runs them itself (it goes on with the next
    // commit). So what a waiter does before its next await delays the waiters after it: WaitForCommitAsync's
    // callers reply and dispatch; the waits whose callers do long work resume apart (see Apart).
    private sealed class CommitBatch
    {
        private readonly TaskCompletionSource<long> _tcs = new();
        private long _result;
        private Exception? _fault;

        public Task<long> Task => _tcs.Task;

        public void Complete(long committedUntil)
        {
            _result = committedUntil;
            ThreadPool.UnsafeQueueUserWorkItem(static b => b.Release(), this, preferLocal: false);
        }

        public void Fail(Exception ex)
        {
            _fault = ex;
            ThreadPool.UnsafeQueueUserWorkItem(static b => b.Release(), this, preferLocal: false);
        }

        private void Release()
        {
            if (_fault is { } fault)
                _tcs.TrySetException(fault);
            else
                _tcs.TrySetResult(_result);
        }
    }
}
