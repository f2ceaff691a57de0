using System.Buffers;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Control.Audit;

// The tamper-evident audit log: a hash chain of records in its own Journal (protocol-spec/audit.md).
//
// Appends take one short lock that assigns the sequence, stamps the time, chains the hash and enqueues into the
// journal, so log order == sequence order; the durable wait happens outside it and shares the journal's group
// commit with every other append. Memory holds only a 40-byte index entry per record plus the records not yet
// committed; query bodies are read back from the journal (see Query).
public sealed class AuditLog : IAsyncDisposable
{
    private readonly Journal _journal;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly AuditIndex _index = new();
    // Appended records whose journal address is not yet committed, ascending: the journal can read back only
    // committed entries, so queries take these from here. Pruned as commits pass them (bounded by the journal's
    // uncommitted tail).
    private readonly List<(long Address, AuditRecord Record)> _pending = [];
    private long _headSequence;
    private byte[] _headHash;
    private AuditHead _head;

    private AuditLog(Journal journal, TimeProvider time, ILogger logger)
    {
        _journal = journal;
        _time = time;
        _logger = logger;
        _headHash = AuditRecordFormat.GenesisHash.ToArray();
        Load();
        _head = new AuditHead(_headSequence, _headHash);
        AuditLogMessages.Opened(_logger, journal.Directory, _index.Count, _headSequence);
    }

    // The journal's page and segment sizes come from options and must stay the same for a directory (FasterLog's
    // addresses depend on them); the journal does not lock its directory, so one AuditLog per directory.
    public static AuditLog Open(string directory, StorageOptions options, TimeProvider? time = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(options);
        logger ??= NullLogger.Instance;
        var journal = Journal.Open(directory, options, logger: logger);
        try
        {
            return new AuditLog(journal, time ?? TimeProvider.System, logger);
        }
        catch
        {
            journal.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    public string Directory => _journal.Directory;

    // The latest appended record (its append may still be waiting for its commit). For an anchor that is surely on
    // disk use VerifyAsync's head, which commits first.
    public AuditHead Head => Volatile.Read(ref _head);

    public int RecordCount => _index.Count;

    // Completes once the record is durable per the journal's DurabilityMode. Cancelling stops the wait, not the
    // append: a record that got its sequence is in the chain.
    public ValueTask<AuditRecord> AppendAsync(AuditEvent auditEvent, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(auditEvent);
        cancellationToken.ThrowIfCancellationRequested();
        var record = Enqueue(auditEvent, out long address);
        var wait = _journal.WaitForCommitAsync(address, cancellationToken);
        if (wait.IsCompletedSuccessfully)
        {
            wait.GetAwaiter().GetResult();
            return new ValueTask<AuditRecord>(record);
        }
        return AwaitCommitAsync(wait, record);
    }

    private static async ValueTask<AuditRecord> AwaitCommitAsync(ValueTask wait, AuditRecord record)
    {
        await wait.ConfigureAwait(false);
        return record;
    }

    private AuditRecord Enqueue(AuditEvent e, out long address)
    {
        var fields = AuditFields.From(e);
        var details = fields.DetailsMap(e.Details);
        int canonicalLength = AuditRecordFormat.CanonicalLength(fields);
        long entryLength = 2L * AuditRecordFormat.HashBytes + canonicalLength;
        if (entryLength > _journal.MaxPayloadBytes)
            throw new WayangException(ErrorCode.InvalidArgument, $"An audit record is limited to {_journal.MaxPayloadBytes} bytes (one journal page); this one is {entryLength}.");

        var buffer = ArrayPool<byte>.Shared.Rent((int)entryLength);
        try
        {
            var entry = buffer.AsSpan(0, (int)entryLength);
            var canonical = entry.Slice(AuditRecordFormat.HashBytes, canonicalLength);
            // Everything but sequence, time and the chain is encoded outside the lock.
            AuditRecordFormat.WriteCanonical(canonical, 0, 0, fields);
            var hash = new byte[AuditRecordFormat.HashBytes];
            lock (_gate)
            {
                long sequence = _headSequence + 1;
                long timeMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
                AuditRecordFormat.PatchSequenceAndTime(canonical, sequence, timeMs);
                var previous = _headHash;
                previous.CopyTo(entry);
                SHA256.HashData(entry[..^AuditRecordFormat.HashBytes], hash);
                hash.CopyTo(entry[^AuditRecordFormat.HashBytes..]);
                // Throws (journal faulted or disposed) before any state below changes: the sequence is not used up.
                address = _journal.Enqueue(JournalRecordType.Audit, entry);

                var record = new AuditRecord
                {
                    Sequence = sequence,
                    TimeMs = timeMs,
                    TenantId = fields.TenantId,
                    PrincipalId = fields.PrincipalId,
                    PrincipalTenantId = fields.PrincipalTenantId,
                    Opcode = fields.Opcode,
                    Operation = fields.Operation,
                    Resource = fields.Resource,
                    Outcome = fields.Outcome,
                    Reason = fields.Reason,
                    ConnectionId = fields.ConnectionId,
                    Details = details,
                    // _headHash arrays are never written after they are published, so records can share them.
                    PreviousHash = previous,
                    Hash = hash,
                };
                _headSequence = sequence;
                _headHash = hash;
                Volatile.Write(ref _head, new AuditHead(sequence, hash));
                _index.Add(new AuditIndexEntry(sequence, timeMs, address, _index.Intern(fields.TenantId), _index.Intern(fields.PrincipalId), fields.Opcode, fields.Outcome));
                PrunePending();
                _pending.Add((address, record));
                return record;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // Caller holds _gate.
    private void PrunePending()
    {
        long committed = _journal.CommittedUntilAddress;
        int drop = 0;
        while (drop < _pending.Count && _pending[drop].Address < committed)
            drop++;
        if (drop > 0)
            _pending.RemoveRange(0, drop);
    }

    // Filters run over the in-memory index; only the page's bodies are read, from the pending list or by one forward
    // journal scan from the page's first committed record to its last. So a page costs the journal span its records
    // cover: small for an unfiltered page, larger for a sparse filter over a long log (still bounded reads of
    // committed pages, no growth in memory).
    public AuditPage Query(AuditQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        int limit = query.Limit <= 0 ? AuditQuery.DefaultLimit : Math.Min(query.Limit, AuditQuery.MaxLimit);
        int tenant = -1, principal = -1;
        if ((query.TenantId is not null && !_index.TryGetId(query.TenantId, out tenant))
            || (query.PrincipalId is not null && !_index.TryGetId(query.PrincipalId, out principal)))
            return new AuditPage([], null);

        int count = _index.Count;
        var matches = new List<AuditIndexEntry>(Math.Min(limit + 1, 64));
        for (int i = _index.FirstAfter(query.AfterSequence, count); i < count && matches.Count <= limit; i++)
        {
            ref readonly var e = ref _index[i];
            if ((query.TenantId is null || e.Tenant == tenant)
                && (query.PrincipalId is null || e.Principal == principal)
                && (query.Opcode is not { } opcode || e.Opcode == opcode)
                && (query.Outcome is not { } outcome || e.Outcome == outcome)
                && (query.FromMs is not { } from || e.TimeMs >= from)
                && (query.ToMs is not { } to || e.TimeMs < to))
                matches.Add(e);
        }
        long? next = null;
        if (matches.Count > limit)
        {
            matches.RemoveAt(limit);
            next = matches[^1].Sequence;
        }
        return new AuditPage(ReadBodies(matches), next);
    }

    private List<AuditRecord> ReadBodies(List<AuditIndexEntry> matches)
    {
        var records = new AuditRecord?[matches.Count];
        int fromJournal = 0;
        lock (_gate)
        {
            PrunePending();
            for (int i = 0; i < matches.Count; i++)
            {
                int at = FindPending(matches[i].Sequence);
                if (at >= 0)
                    records[i] = _pending[at].Record;
                else
                    fromJournal++;
            }
        }
        if (fromJournal > 0)
        {
            // Not pending means committed (pruning only drops committed entries), so the scan reaches them all.
            int next = Array.FindIndex(records, r => r is null);
            foreach (var entry in _journal.ReadCommitted(matches[next].Address, tolerateDamage: true))
            {
                while (next < matches.Count && (records[next] is not null || matches[next].Address < entry.Address))
                {
                    next++;
                }
                if (next == matches.Count)
                    break;
                if (matches[next].Address != entry.Address)
                    continue;
                // An entry damaged since it was indexed is left out of the page; VerifyAsync reports it.
                if (!entry.IsDamaged && AuditRecordFormat.TryDecodeEntry(entry.Payload.Span, out var record, out _))
                    records[next] = record;
                next++;
                if (next == matches.Count)
                    break;
            }
        }
        var page = new List<AuditRecord>(records.Length);
        foreach (var record in records)
        {
            if (record is not null)
                page.Add(record);
        }
        return page;
    }

    // Caller holds _gate. Binary search: pending records are in sequence order.
    private int FindPending(long sequence)
    {
        int lo = 0, hi = _pending.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            long s = _pending[mid].Record.Sequence;
            if (s == sequence)
                return mid;
            if (s < sequence)
                lo = mid + 1;
            else
                hi = mid - 1;
        }
        return -1;
    }

    // Commits everything appended so far, then re-reads every stored entry from the journal (not the index) and
    // recomputes the chain. An entry that cannot be read at all is a break at the sequence it should have had.
    public async ValueTask<AuditVerifyResult> VerifyAsync(CancellationToken cancellationToken = default)
    {
        await _journal.CommitAsync(cancellationToken).ConfigureAwait(false);
        return VerifyCommitted(cancellationToken);
    }

    private AuditVerifyResult VerifyCommitted(CancellationToken cancellationToken)
    {
        long expected = 1;
        var previous = AuditRecordFormat.GenesisHash.ToArray();
        var computed = new byte[AuditRecordFormat.HashBytes];
        long checkedCount = 0, headSequence = 0;
        long? broken = null;
        string? reason = null;

        void Break(long sequence, string why)
        {
            if (broken is null)
            {
                broken = sequence;
                reason = why;
            }
        }

        foreach (var entry in _journal.ReadCommitted(0, tolerateDamage: true))
        {
            if ((checkedCount & 1023) == 0)
                cancellationToken.ThrowIfCancellationRequested();
            if (entry.IsDamaged)
            {
                Break(expected, $"record unreadable: {entry.Damage}");
                expected++;
                continue;
            }
            var payload = entry.Payload.Span;
            if (entry.Type != JournalRecordType.Audit)
            {
                Break(expected, $"record unreadable: journal entry at address {entry.Address} has type {entry.Type}, not Audit");
                expected++;
                continue;
            }
            if (!AuditRecordFormat.TryReadSequence(payload, out long sequence))
            {
                Break(expected, $"record unreadable: journal entry at address {entry.Address} is not an audit record of format version {AuditRecordFormat.FormatVersion}");
                expected++;
                continue;
            }
            checkedCount++;
            if (sequence != expected)
                Break(expected, $"sequence gap: expected {expected}, found {sequence} at address {entry.Address}");
            else if (!payload[..AuditRecordFormat.HashBytes].SequenceEqual(previous))
                Break(sequence, $"previous-hash link broken at sequence {sequence} (address {entry.Address})");
            SHA256.HashData(payload[..^AuditRecordFormat.HashBytes], computed);
            if (!payload[^AuditRecordFormat.HashBytes..].SequenceEqual(computed))
                Break(sequence, $"hash mismatch at sequence {sequence} (address {entry.Address})");
            // Link the next record to what this one's bytes hash to, not to what it claims.
            (previous, computed) = (computed, previous);
            headSequence = sequence;
            expected = sequence + 1;
        }
        return new AuditVerifyResult(broken is null, checkedCount, broken, reason, headSequence, previous);
    }

    // Rebuilds the index and the head from every readable entry. Damage never fails the open: unreadable entries
    // are logged and skipped, and the chain continues from the last readable record. Only the links are checked
    // here (cheap); hashes are VerifyAsync's job.
    private void Load()
    {
        long expected = 1;
        long? firstBreak = null;
        string? breakReason = null;
        foreach (var entry in _journal.ReadCommitted(0, tolerateDamage: true))
        {
            AuditRecord? record = null;
            string? problem = entry.IsDamaged ? entry.Damage
                : entry.Type != JournalRecordType.Audit ? $"journal entry at address {entry.Address} has type {entry.Type}, not Audit"
                : AuditRecordFormat.TryDecodeEntry(entry.Payload.Span, out record, out var error) ? null
                : $"journal entry at address {entry.Address} is malformed: {error}";
            if (problem is not null || record is null)
            {
                AuditLogMessages.UnreadableEntry(_logger, entry.Address, problem ?? "undecodable");
                if (firstBreak is null)
                    (firstBreak, breakReason) = (expected, $"record unreadable: {problem}");
                expected++;
                continue;
            }
            if (record.Sequence <= _index.LastSequence)
            {
                // The index must stay ascending; a record that goes backwards is damage, reported by Verify.
                AuditLogMessages.UnreadableEntry(_logger, entry.Address, $"sequence {record.Sequence} does not follow {_index.LastSequence}");
                if (firstBreak is null)
                    (firstBreak, breakReason) = (expected, $"sequence gap: expected {expected}, found {record.Sequence}");
                continue;
            }
            if (firstBreak is null && record.Sequence != expected)
                (firstBreak, breakReason) = (expected, $"sequence gap: expected {expected}, found {record.Sequence}");
            else if (firstBreak is null && !record.PreviousHash.Span.SequenceEqual(_headHash))
                (firstBreak, breakReason) = (record.Sequence, "previous-hash link broken");
            _index.Add(new AuditIndexEntry(record.Sequence, record.TimeMs, entry.Address, _index.Intern(record.TenantId), _index.Intern(record.PrincipalId), record.Opcode, record.Outcome));
            _headSequence = record.Sequence;
            _headHash = record.Hash.ToArray();
            expected = record.Sequence + 1;
        }
        if (firstBreak is { } sequence)
            AuditLogMessages.ChainBroken(_logger, sequence, breakReason ?? "", _headSequence);
    }

    public ValueTask DisposeAsync() => _journal.DisposeAsync();
}
