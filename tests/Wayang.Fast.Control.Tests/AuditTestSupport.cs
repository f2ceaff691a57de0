using Microsoft.Extensions.Logging;
using Wayang.Fast.Common.Audit;
using Wayang.Fast.Control.Audit;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Control.Tests;

internal static class AuditTestSupport
{
    // Small pages and segments so a few hundred records cross page boundaries.
    public static StorageOptions Options(string dir, DurabilityMode durability = DurabilityMode.Fsync) => new()
    {
        DataDirectory = dir,
        Durability = durability,
        RelaxedCommitInterval = durability == DurabilityMode.Relaxed ? TimeSpan.FromHours(1) : TimeSpan.FromMilliseconds(5),
        JournalPageBits = 16,
        JournalMemoryBits = 18,
        JournalSegmentBits = 20,
    };

    public static AuditEvent Event(string tenant = "acme", string principal = "key1", ushort opcode = 0x0201, AuditOutcome outcome = AuditOutcome.Allowed, string resource = "") => new()
    {
        TenantId = tenant,
        PrincipalId = principal,
        PrincipalTenantId = tenant,
        Opcode = opcode,
        Operation = "Op" + opcode.ToString("X4", System.Globalization.CultureInfo.InvariantCulture),
        Resource = resource,
        Outcome = outcome,
        Reason = outcome == AuditOutcome.Denied ? "PERMISSION_DENIED" : "",
        ConnectionId = 7,
    };

    // Every record matching the query, following NextAfterSequence page by page.
    public static List<AuditRecord> QueryAll(AuditLog log, AuditQuery query)
    {
        var all = new List<AuditRecord>();
        long after = query.AfterSequence;
        while (true)
        {
            var page = log.Query(query with { AfterSequence = after });
            all.AddRange(page.Records);
            if (page.NextAfterSequence is not { } next)
                return all;
            Assert.Equal(page.Records[^1].Sequence, next);
            after = next;
        }
    }

    public static void AssertChained(IReadOnlyList<AuditRecord> records)
    {
        var previous = AuditRecordFormat.GenesisHash.ToArray();
        for (int i = 0; i < records.Count; i++)
        {
            Assert.Equal(i + 1, records[i].Sequence);
            Assert.Equal(previous, records[i].PreviousHash.ToArray());
            Assert.Equal(AuditRecordFormat.ComputeHash(previous, AuditRecordFormat.EncodeCanonical(records[i])), records[i].Hash.ToArray());
            previous = records[i].Hash.ToArray();
        }
    }
}

internal sealed class ListLogger : ILogger
{
    private readonly List<(EventId Id, LogLevel Level, string Message)> _entries = [];

    public IReadOnlyList<(EventId Id, LogLevel Level, string Message)> Entries
    {
        get
        {
            lock (_entries)
                return [.. _entries];
        }
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_entries)
            _entries.Add((eventId, logLevel, formatter(state, exception)));
    }
}
