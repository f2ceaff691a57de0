using System.Text;
using Wayang.Fast.Execution.Runs;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Execution.Engine;

// Finished runs leave memory when they finish but stayed in the state store for ever, so the store, every compaction
// (which copies live records forward) and a restart's scan of runs grew with the whole history (bench/RESULTS.md,
// issue 3, ninth pass). With a store that can expire records, a run record is dropped at the first compaction after
// FinishedRunRetention has passed since the run finished, unless the run is active again (a dead-letter replay reopened
// it) or still has a dead-letter entry. Nothing is written for it: the check runs inside the store's compaction.
//
// Idempotency records past IdempotencyRetention go the same way. Reads already treat an old record as absent; the
// deletion only reclaims space, which the hourly sweep (a scan of the whole store) did before, and still does over a
// store that cannot expire records.
public sealed partial class ExecutionEngine
{
    private static readonly byte[] RunKeyPrefixBytes = Encoding.UTF8.GetBytes(RunKeyPrefix);
    private static readonly byte[] IdempotencyKeyPrefixBytes = Encoding.UTF8.GetBytes(IdempotencyKeyPrefix);

    // False when the store cannot expire records (the caller then sweeps idempotency keys itself).
    private bool RegisterRetention()
    {
        if (_store is not IExpiringStateStore expiring)
            return false;
        // Never before the idempotency key that may point at the run has expired (keys count from submission, runs from
        // their finish, so this keeps every run a remembered key can find).
        long retentionMs = (long)Math.Max(_options.FinishedRunRetention.TotalMilliseconds, _options.IdempotencyRetention.TotalMilliseconds);
        expiring.RegisterExpiry(RunKeyPrefixBytes, (key, value) => RunExpired(key, value, retentionMs));
        expiring.RegisterExpiry(IdempotencyKeyPrefixBytes, (_, value) => IdempotencyExpired(value));
        return true;
    }

    // A record that does not parse is kept (the sweep would delete it; here forgetting is only ever done on evidence).
    private bool IdempotencyExpired(ReadOnlySpan<byte> value) =>
        TryParseIdempotencyRecord(value) is { } record && !IsRemembered(record, NowMs);

    private bool RunExpired(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, long retentionMs)
    {
        // The codec reads from memory; a run record is a few hundred bytes, and this runs on the compaction thread.
        if (!RunRecordCodec.TryReadFinishedAt(value.ToArray(), out long finishedAtMs) || NowMs - finishedAtMs < retentionMs)
            return false;
        var runId = Encoding.UTF8.GetString(key[RunKeyPrefixBytes.Length..]);
        return !_runs.ContainsKey(runId) && !_deadLetters.HasRun(runId);
    }
}
