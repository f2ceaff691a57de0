using System.Buffers.Binary;
using FASTER.core;
using static Wayang.Fast.Storage.Tests.TestData;

namespace Wayang.Fast.Storage.Tests;

// The journal's commit metadata lives in two slots of one file, overwritten in place (SlotCommitManager).
public sealed class CommitSlotTests
{
    private const int SlotBytes = 4096;

    [Fact]
    public async Task ATornNewestSlotFallsBackToThePreviousCommit()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        long committedBeforeLast;
        await using (var journal = Journal.Open(dir.Path, options))
        {
            for (int i = 0; i < 5; i++)
                await journal.AppendAsync(JournalRecordType.Put, Bytes("kept-" + i));
            committedBeforeLast = journal.CommittedUntilAddress;
            await journal.AppendAsync(JournalRecordType.Put, Bytes("lost"));
            Assert.True(journal.CommittedUntilAddress > committedBeforeLast);
        }

        // A crash in the middle of the newest slot's write: its bytes no longer match its CRC.
        string slots = Path.Combine(dir.Path, "commit-slots");
        byte[] file = File.ReadAllBytes(slots);
        int newest = NewestSlot(file);
        file[newest * SlotBytes + 24] ^= 0xFF;
        File.WriteAllBytes(slots, file);

        await using (var journal = Journal.Open(dir.Path, options))
        {
            Assert.Equal(committedBeforeLast, journal.CommittedUntilAddress);
            Assert.Equal(Enumerable.Range(0, 5).Select(i => "kept-" + i), journal.ReadCommitted(0).Select(r => Text(r.Payload.ToArray())));
            // The journal goes on from there: the next commit takes the damaged slot over.
            await journal.AppendAsync(JournalRecordType.Put, Bytes("after"));
        }
        await using (var journal = Journal.Open(dir.Path, options))
            Assert.Equal("after", Text(journal.ReadCommitted(0).Last().Payload.ToArray()));
    }

    [Fact]
    public async Task CommitsOverwriteTwoSlotsInsteadOfCreatingFiles()
    {
        using var dir = new TempDirectory("storage-tests");
        await using var journal = Journal.Open(dir.Path, SmallOptions(dir.Path));
        for (int i = 0; i < 20; i++)
            await journal.AppendAsync(JournalRecordType.Put, Bytes("e" + i));

        Assert.True(journal.Metrics.CommitCount >= 20);
        Assert.Equal(2 * SlotBytes, new FileInfo(Path.Combine(dir.Path, "commit-slots")).Length);
        Assert.False(Directory.Exists(Path.Combine(dir.Path, "log-commits")) && Directory.EnumerateFiles(Path.Combine(dir.Path, "log-commits")).Any());
    }

    // A journal written by FASTER's default commit manager (log-commits/commit.N.0, one file per commit), as
    // data directories were before the slots: it opens at the same committed address, and its files are removed
    // once a slot commit is durable.
    [Fact]
    public async Task AJournalCommittedByFastersDefaultManagerStillOpens()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        long legacyCommitted;
        using (var device = Devices.CreateLogDevice(Path.Combine(dir.Path, "log"), preallocateFile: false, deleteOnClose: false, recoverDevice: true))
        {
            using var log = new FasterLog(new FasterLogSettings
            {
                LogDevice = device,
                PageSizeBits = options.JournalPageBits,
                MemorySizeBits = options.JournalMemoryBits,
                SegmentSizeBits = options.JournalSegmentBits,
                LogCommitDir = dir.Path,
                LogChecksum = LogChecksumType.PerEntry,
                TryRecoverLatest = true,
                RemoveOutdatedCommits = true,
            });
            for (int i = 0; i < 3; i++)
            {
                log.Enqueue(Bytes("legacy-" + i));
                await log.CommitAsync();
            }
            legacyCommitted = log.CommittedUntilAddress;
        }
        string legacyDir = Path.Combine(dir.Path, "log-commits");
        Assert.NotEmpty(Directory.EnumerateFiles(legacyDir));

        await using (var journal = Journal.Open(dir.Path, options))
        {
            Assert.Equal(legacyCommitted, journal.CommittedUntilAddress);
            // Those entries are not in the journal's own format, so a tolerant read finds exactly three damaged ones.
            Assert.Equal(3, journal.ReadCommitted(0, tolerateDamage: true).Count(r => r.IsDamaged));
            await journal.AppendAsync(JournalRecordType.Put, Bytes("new"));
            Assert.Empty(Directory.EnumerateFiles(legacyDir));
        }
        await using (var journal = Journal.Open(dir.Path, options))
        {
            var records = journal.ReadCommitted(0, tolerateDamage: true).ToList();
            Assert.Equal(4, records.Count);
            Assert.Equal("new", Text(records[^1].Payload.ToArray()));
        }
    }

    // Slot layout: magic u32, format u32, commit number i64 at offset 8 (see SlotCommitManager).
    private static int NewestSlot(byte[] file)
    {
        long first = BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(8));
        long second = BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(SlotBytes + 8));
        return second > first ? 1 : 0;
    }
}
