using System.Buffers.Binary;
using System.Numerics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Wayang.Fast.Control.Audit;
using static Wayang.Fast.Control.Tests.AuditTestSupport;

namespace Wayang.Fast.Control.Tests;

// Someone with access to the data directory edits a stored record. The journal's checksums catch a naive edit;
// an editor who also fixes them is caught by the hash chain. Either way the log still opens and keeps appending.
public sealed class AuditTamperTests
{
    // FasterLog's entry header with per-entry checksums: u64 checksum (XOR of the length field and the entry) |
    // i32 length. Then the journal's own header: u32 crc32c | u8 record type. Then the audit payload.
    private const int FasterHeaderBytes = 12;
    private const int JournalHeaderBytes = 5;
    private const int Victim = 13;

    private readonly FakeTimeProvider _time = new(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));

    [Fact]
    public async Task Flipped_bytes_in_a_stored_record_are_reported_at_its_sequence_and_the_log_still_opens_and_appends()
    {
        using var dir = new TempDirectory("audit-tests");
        var (victim, marker) = await WriteLogAsync(dir.Path);

        var (segment, bytes, at) = FindMarker(dir.Path, marker);
        bytes[at + 3] ^= 0x20;
        File.WriteAllBytes(segment, bytes);

        var logger = new ListLogger();
        await using var log = AuditLog.Open(dir.Path, Options(dir.Path), _time, logger);
        // The damaged record is skipped with a warning; the rest is indexed and the chain continues after the tail.
        Assert.Contains(logger.Entries, e => e.Id.Id == 2202 && e.Level == LogLevel.Warning);
        Assert.Contains(logger.Entries, e => e.Id.Id == 2203 && e.Level == LogLevel.Warning);
        Assert.Equal(29, log.Query(new AuditQuery()).Records.Count);
        Assert.DoesNotContain(log.Query(new AuditQuery()).Records, r => r.Sequence == Victim);
        Assert.Equal(30, log.Head.Sequence);
        var appended = await log.AppendAsync(Event(resource: "after-damage"));
        Assert.Equal(31, appended.Sequence);

        var result = await log.VerifyAsync();
        Assert.False(result.Ok);
        Assert.Equal(Victim, result.FirstBrokenSequence);
        Assert.StartsWith("record unreadable: ", result.Reason, StringComparison.Ordinal);
        Assert.Contains("checksum", result.Reason, StringComparison.Ordinal);
        Assert.Contains($"address {victim.Address}", result.Reason, StringComparison.Ordinal);
        Assert.Equal(30, result.RecordsChecked);
        Assert.Equal(appended.HashHex, result.HeadHashHex);
    }

    [Fact]
    public async Task An_edit_that_also_fixes_the_journal_checksums_is_caught_by_the_hash_chain()
    {
        using var dir = new TempDirectory("audit-tests");
        var (victim, marker) = await WriteLogAsync(dir.Path);

        var (segment, bytes, at) = FindMarker(dir.Path, marker);
        int entryStart = at - victim.MarkerOffset - JournalHeaderBytes - FasterHeaderBytes;
        int entryLength = JournalHeaderBytes + victim.PayloadLength;
        Assert.Equal(entryLength, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(entryStart + 8)));
        Assert.Equal(4, bytes[entryStart + FasterHeaderBytes + 4]);

        bytes[at + 3] ^= 0x20;
        // Re-seal both checksums so the entry reads back as valid.
        var journalEntry = bytes.AsSpan(entryStart + FasterHeaderBytes, entryLength);
        BinaryPrimitives.WriteUInt32LittleEndian(journalEntry, Crc32C(journalEntry[4..]));
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(entryStart), FasterXor(bytes.AsSpan(entryStart + 8, 4 + entryLength)));
        File.WriteAllBytes(segment, bytes);

        var logger = new ListLogger();
        await using var log = AuditLog.Open(dir.Path, Options(dir.Path), _time, logger);
        // The edited record reads fine, so it is indexed, with the edited content.
        Assert.DoesNotContain(logger.Entries, e => e.Id.Id == 2202);
        var edited = Assert.Single(log.Query(new AuditQuery { AfterSequence = Victim - 1, Limit = 1 }).Records);
        Assert.NotEqual(marker, edited.Resource);
        Assert.Equal(30, log.Query(new AuditQuery()).Records.Count);

        var result = await log.VerifyAsync();
        Assert.False(result.Ok);
        Assert.Equal(Victim, result.FirstBrokenSequence);
        Assert.StartsWith("hash mismatch", result.Reason, StringComparison.Ordinal);
        Assert.Equal(30, result.RecordsChecked);

        // Appends go on after the tail, linked to the last record as stored.
        var appended = await log.AppendAsync(Event(resource: "after-edit"));
        Assert.Equal(31, appended.Sequence);
        Assert.Equal(Victim, (await log.VerifyAsync()).FirstBrokenSequence);
    }

    [Fact]
    public async Task Damage_on_a_page_read_back_from_disk_costs_that_page_not_the_log()
    {
        using var dir = new TempDirectory("audit-tests");
        var options = Options(dir.Path);
        string marker = "TAMPER-MARKER-" + Guid.NewGuid().ToString("N");
        var padding = new Dictionary<string, string> { ["pad"] = new string('p', 2000) };
        await using (var log = AuditLog.Open(dir.Path, options, _time))
        {
            // ~2 KB records over 64 KB pages and a 256 KB memory: the early pages are read from disk after a reopen,
            // where FasterLog checks its own checksum and skips the rest of a page that fails it.
            for (int i = 1; i <= 300; i++)
                await log.AppendAsync(Event(resource: i == Victim ? marker : "res" + i) with { Details = padding });
        }
        var (segment, bytes, at) = FindMarker(dir.Path, marker);
        Assert.True(at < 1 << options.JournalPageBits, "the victim should be on the first page");
        bytes[at + 3] ^= 0x20;
        File.WriteAllBytes(segment, bytes);

        var logger = new ListLogger();
        await using (var log = AuditLog.Open(dir.Path, options, _time, logger))
        {
            Assert.Contains(logger.Entries, e => e.Id.Id == 2202);
            var indexed = QueryAll(log, new AuditQuery { Limit = 1000 });
            Assert.Equal(Enumerable.Range(1, Victim - 1).Select(i => (long)i), indexed.TakeWhile(r => r.Sequence < Victim).Select(r => r.Sequence));
            Assert.DoesNotContain(indexed, r => r.Sequence == Victim);
            Assert.Equal(300, indexed[^1].Sequence);
            Assert.Equal(301, (await log.AppendAsync(Event())).Sequence);

            var result = await log.VerifyAsync();
            Assert.False(result.Ok);
            Assert.Equal(Victim, result.FirstBrokenSequence);
            Assert.StartsWith("record unreadable: FasterLog could not read", result.Reason, StringComparison.Ordinal);
            Assert.Equal(indexed.Count + 1, result.RecordsChecked);
            // The records after the victim on its page went with it.
            Assert.InRange(indexed.Count, 250, 298);
        }
    }

    private sealed record VictimInfo(long Address, int MarkerOffset, int PayloadLength);

    // 30 records; the 13th carries a unique marker in its Resource. Returns where its payload sits.
    private async Task<(VictimInfo Victim, string Marker)> WriteLogAsync(string path)
    {
        string marker = "TAMPER-MARKER-" + Guid.NewGuid().ToString("N");
        AuditRecord? victim = null;
        await using (var log = AuditLog.Open(path, Options(path), _time))
        {
            for (int i = 1; i <= 30; i++)
            {
                var record = await log.AppendAsync(Event("t" + (i % 3), resource: i == Victim ? marker : "res" + i));
                if (i == Victim)
                    victim = record;
            }
            var intact = await log.VerifyAsync();
            Assert.True(intact.Ok, intact.Reason);
        }
        var payload = AuditRecordFormat.EncodeEntry(victim!);
        int markerOffset = payload.AsSpan().IndexOf(System.Text.Encoding.UTF8.GetBytes(marker));
        return (new VictimInfo(FindAddress(path, payload), markerOffset, payload.Length), marker);
    }

    // The victim's journal address: its payload's offset in the segment, less the two headers (segment 0 starts at
    // address 0, and FasterLog places an entry at its address's offset in the segment file).
    private static long FindAddress(string path, byte[] payload)
    {
        var bytes = File.ReadAllBytes(Path.Combine(path, "log.0"));
        int at = bytes.AsSpan().IndexOf(payload);
        Assert.True(at >= 0, "the victim's stored entry was not found byte for byte in log.0");
        return at - JournalHeaderBytes - FasterHeaderBytes;
    }

    private static (string Segment, byte[] Bytes, int At) FindMarker(string path, string marker)
    {
        var needle = System.Text.Encoding.UTF8.GetBytes(marker);
        var hits = Directory.GetFiles(path, "log.*")
            .Select(f => (File: f, Bytes: File.ReadAllBytes(f)))
            .Select(f => (f.File, f.Bytes, At: f.Bytes.AsSpan().IndexOf(needle)))
            .Where(f => f.At >= 0)
            .ToList();
        var hit = Assert.Single(hits);
        Assert.Equal(-1, hit.Bytes.AsSpan(hit.At + 1).IndexOf(needle));
        return hit;
    }

    // CRC-32C as the journal computes it (Storage's Crc32C).
    private static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFF_FFFFu;
        foreach (byte b in data)
            crc = BitOperations.Crc32C(crc, b);
        return ~crc;
    }

    private static unsafe ulong FasterXor(Span<byte> data)
    {
        fixed (byte* p = data)
            return FASTER.core.Utility.XorBytes(p, data.Length);
    }
}
