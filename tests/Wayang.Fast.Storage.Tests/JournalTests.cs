using Wayang.Fast.Common.Errors;
using static Wayang.Fast.Storage.Tests.TestData;

namespace Wayang.Fast.Storage.Tests;

public sealed class JournalTests
{
    [Fact]
    public async Task AppendedEntriesAreDurableAndReadBackInOrder()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        var addresses = new List<long>();
        await using (var journal = Journal.Open(dir.Path, options))
        {
            for (int i = 0; i < 50; i++)
            {
                long address = await journal.AppendAsync(JournalRecordType.Put, Bytes("entry-" + i));
                Assert.True(journal.CommittedUntilAddress > address);
                addresses.Add(address);
            }
            Assert.Equal(addresses.Order(), addresses);
        }

        await using (var journal = Journal.Open(dir.Path, options))
        {
            var records = journal.ReadCommitted(0).ToList();
            Assert.Equal(addresses, records.Select(r => r.Address));
            Assert.All(records, r => Assert.Equal(JournalRecordType.Put, r.Type));
            Assert.Equal(Enumerable.Range(0, 50).Select(i => "entry-" + i), records.Select(r => Text(r.Payload.ToArray())));
        }
    }

    [Fact]
    public async Task OneCommitReleasesEverythingEnqueuedBeforeIt()
    {
        using var dir = new TempDirectory("storage-tests");
        await using var journal = Journal.Open(dir.Path, SmallOptions(dir.Path));
        await journal.AppendAsync(JournalRecordType.Put, Bytes("warm-up"));
        long commitsBefore = journal.Metrics.CommitCount;

        // 200 entries enqueued before anyone waits: the group commit must take them all at once.
        var addresses = Enumerable.Range(0, 200).Select(i => journal.Enqueue(JournalRecordType.Put, Bytes("e" + i))).ToArray();
        await Task.WhenAll(addresses.Select(a => journal.WaitForCommitAsync(a).AsTask()));

        Assert.True(journal.CommittedUntilAddress > addresses.Max());
        // One commit takes them all; a second may start if a waiter signals after the first swapped its batch.
        Assert.InRange(journal.Metrics.CommitCount - commitsBefore, 1, 2);
    }

    [Fact]
    public async Task ConcurrentAppendsShareCommits()
    {
        using var dir = new TempDirectory("storage-tests");
        await using var journal = Journal.Open(dir.Path, SmallOptions(dir.Path));
        const int Writers = 32;
        const int PerWriter = 40;
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            await start.Task;
            for (int i = 0; i < PerWriter; i++)
                await journal.AppendAsync(JournalRecordType.Put, Bytes($"w{w}-{i}"));
        })).ToArray();
        start.SetResult();
        await Task.WhenAll(writers);

        Assert.Equal(Writers * PerWriter, journal.Metrics.AppendCount);
        // Writers that arrive while a commit is in flight wait for the next one together, so there are fewer
        // commits than appends even on a fast disk (each waiter can start at most one commit of its own).
        Assert.True(journal.Metrics.CommitCount < journal.Metrics.AppendCount,
            $"{journal.Metrics.CommitCount} commits for {journal.Metrics.AppendCount} appends");
        Assert.True(journal.Metrics.TotalCommitLatency > TimeSpan.Zero);
    }

    [Fact]
    public async Task CommitObserverSeesEveryCommit()
    {
        using var dir = new TempDirectory("storage-tests");
        await using var journal = Journal.Open(dir.Path, SmallOptions(dir.Path));
        int observed = 0;
        journal.Metrics.CommitObserved = latency =>
        {
            Assert.True(latency >= TimeSpan.Zero);
            Interlocked.Increment(ref observed);
        };
        for (int i = 0; i < 5; i++)
            await journal.AppendAsync(JournalRecordType.Delete, Bytes("k" + i));
        Assert.Equal(journal.Metrics.CommitCount, Volatile.Read(ref observed));
        Assert.True(observed >= 1);
    }

    [Fact]
    public async Task RelaxedAppendsCompleteBeforeCommitAndDisposeCommitsThem()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        options.Durability = DurabilityMode.Relaxed;
        options.RelaxedCommitInterval = TimeSpan.FromHours(1);
        long last;
        await using (var journal = Journal.Open(dir.Path, options))
        {
            long commits = journal.Metrics.CommitCount;
            for (int i = 0; i < 10; i++)
                await journal.AppendAsync(JournalRecordType.Put, Bytes("r" + i));
            last = journal.TailAddress;
            // Nothing committed yet: the interval is an hour, and relaxed waiters do not ask for commits.
            Assert.Equal(commits, journal.Metrics.CommitCount);
        }
        await using (var journal = Journal.Open(dir.Path, options))
        {
            Assert.Equal(10, journal.ReadCommitted(0).Count());
            Assert.Equal(last, journal.CommittedUntilAddress);
        }
    }

    [Fact]
    public async Task RelaxedModeCommitsOnTheInterval()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        options.Durability = DurabilityMode.Relaxed;
        options.RelaxedCommitInterval = TimeSpan.FromMilliseconds(5);
        await using var journal = Journal.Open(dir.Path, options);
        long address = await journal.AppendAsync(JournalRecordType.Put, Bytes("x"));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (journal.CommittedUntilAddress <= address && DateTime.UtcNow < deadline)
            await Task.Delay(5);
        Assert.True(journal.CommittedUntilAddress > address);
    }

    [Fact]
    public async Task OversizedPayloadIsRejectedBeforeEnqueue()
    {
        using var dir = new TempDirectory("storage-tests");
        await using var journal = Journal.Open(dir.Path, SmallOptions(dir.Path));
        Assert.Throws<ArgumentException>(() => journal.Enqueue(JournalRecordType.Put, new byte[journal.MaxPayloadBytes + 1]));
        long address = journal.Enqueue(JournalRecordType.Put, new byte[journal.MaxPayloadBytes]);
        await journal.WaitForCommitAsync(address);
    }

    [Fact]
    public async Task TolerantReadReportsADamagedEntryAndGoesOnWhileTheStrictReadThrows()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = SmallOptions(dir.Path);
        var marker = Bytes("TOLERANT-MARKER-42");
        long victim;
        await using (var journal = Journal.Open(dir.Path, options))
        {
            await journal.AppendAsync(JournalRecordType.Put, Bytes("first"));
            victim = await journal.AppendAsync(JournalRecordType.Audit, marker);
            await journal.AppendAsync(JournalRecordType.Delete, Bytes("third"));
        }

        var segment = Path.Combine(dir.Path, "log.0");
        var bytes = File.ReadAllBytes(segment);
        int at = bytes.AsSpan().IndexOf(marker);
        Assert.True(at >= 0, "marker not found in the journal segment");
        bytes[at + 3] ^= 0x5A;
        File.WriteAllBytes(segment, bytes);

        await using (var journal = Journal.Open(dir.Path, options))
        {
            var ex = ThrowsWayang(ErrorCode.StorageCorrupt, () => journal.ReadCommitted(0).ToList());
            Assert.Contains($"address {victim}", ex.Message, StringComparison.Ordinal);

            var records = journal.ReadCommitted(0, tolerateDamage: true).ToList();
            Assert.Equal(3, records.Count);
            Assert.False(records[0].IsDamaged);
            Assert.Equal("first", Text(records[0].Payload.ToArray()));
            Assert.True(records[1].IsDamaged);
            Assert.Equal(victim, records[1].Address);
            Assert.Equal(JournalRecordType.None, records[1].Type);
            Assert.Contains("checksum", records[1].Damage, StringComparison.Ordinal);
            Assert.Equal(JournalRecordType.Delete, records[2].Type);
            Assert.Equal("third", Text(records[2].Payload.ToArray()));
        }
    }

    [Fact]
    public async Task AuditEntriesReadBackWithTheirType()
    {
        using var dir = new TempDirectory("storage-tests");
        await using var journal = Journal.Open(dir.Path, SmallOptions(dir.Path));
        long address = await journal.AppendAsync(JournalRecordType.Audit, Bytes("audit"));
        var record = Assert.Single(journal.ReadCommitted(0));
        Assert.Equal((address, JournalRecordType.Audit, "audit", false), (record.Address, record.Type, Text(record.Payload.ToArray()), record.IsDamaged));
    }
}
