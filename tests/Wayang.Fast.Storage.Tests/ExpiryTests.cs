using System.Globalization;
using static Wayang.Fast.Storage.Tests.TestData;

namespace Wayang.Fast.Storage.Tests;

// IExpiringStateStore: compaction drops the records a registered check calls expired, as if deleted, and nothing else.
public sealed class ExpiryTests
{
    private static byte[] Key(string prefix, int i) => Bytes(prefix + i.ToString(CultureInfo.InvariantCulture));

    // First byte 1: expired by the test's check; the rest pads the record.
    private static byte[] Value(bool expired, int i) => [expired ? (byte)1 : (byte)0, .. Bytes(i.ToString(CultureInfo.InvariantCulture) + new string('x', 300))];

    private static async Task WriteAsync(FasterStateStore store)
    {
        for (int i = 0; i < 40; i++)
        {
            await store.PutAsync(Key("exp/", i), Value(expired: i % 2 == 0, i));
            // Same first byte under another prefix: no check applies there.
            await store.PutAsync(Key("keep/", i), Value(expired: true, i));
        }
    }

    [Fact]
    public async Task Compaction_drops_expired_records_of_the_registered_prefix_only_and_they_stay_gone_after_reopen()
    {
        using var dir = new TempDirectory("storage-tests");
        var options = CompactingOptions(dir.Path);
        await using (var store = FasterStateStore.Open(options))
        {
            store.RegisterExpiry(Bytes("exp/"), static (_, value) => value[0] == 1);
            await WriteAsync(store);
            // The first checkpoint folds the log over (read-only); the second compacts everything below it.
            await store.CheckpointAsync();
            await store.CheckpointAsync();

            Assert.True(store.Metrics.CompactionCount >= 1);
            Assert.Equal(20, store.Metrics.ExpiredRecords);
            AssertExpiredGone(store);

            // Writing an expired-looking record now: it is above the compacted part, so it stays until a later compaction.
            await store.PutAsync(Key("exp/", 100), Value(expired: true, 100));
            Assert.True(store.TryGet(Key("exp/", 100), out _));
        }

        await using (var store = FasterStateStore.Open(options))
        {
            Assert.True(store.Recovery.FromCheckpoint);
            for (int i = 0; i < 40; i++)
                Assert.Equal(i % 2 != 0, store.TryGet(Key("exp/", i), out _));
            Assert.True(store.TryGet(Key("exp/", 100), out _));
            Assert.Equal(40, store.ScanPrefix(Bytes("keep/")).Count);
        }
    }

    private static void AssertExpiredGone(FasterStateStore store)
    {
        for (int i = 0; i < 40; i++)
        {
            bool present = store.TryGet(Key("exp/", i), out var value);
            Assert.Equal(i % 2 != 0, present);
            if (present)
                Assert.Equal(Value(expired: false, i), value);
            Assert.True(store.TryGet(Key("keep/", i), out _), $"keep/{i} is missing");
        }
        Assert.Equal(20, store.ScanPrefix(Bytes("exp/")).Count);
        Assert.Equal(40, store.ScanPrefix(Bytes("keep/")).Count);
    }

    [Fact]
    public async Task A_check_that_throws_keeps_the_record_and_registering_again_replaces_the_check()
    {
        using var dir = new TempDirectory("storage-tests");
        await using var store = FasterStateStore.Open(CompactingOptions(dir.Path));
        store.RegisterExpiry(Bytes("exp/"), static (_, _) => true);
        store.RegisterExpiry(Bytes("exp/"), static (_, _) => throw new InvalidOperationException("broken check"));
        await WriteAsync(store);
        await store.CheckpointAsync();
        await store.CheckpointAsync();

        Assert.True(store.Metrics.CompactionCount >= 1);
        Assert.Equal(0, store.Metrics.ExpiredRecords);
        Assert.Equal(40, store.ScanPrefix(Bytes("exp/")).Count);
        Assert.Equal(40, store.ScanPrefix(Bytes("keep/")).Count);
    }

    [Fact]
    public async Task An_empty_prefix_is_refused()
    {
        using var dir = new TempDirectory("storage-tests");
        await using var store = FasterStateStore.Open(CompactingOptions(dir.Path));
        Assert.Throws<ArgumentException>(() => store.RegisterExpiry([], static (_, _) => true));
    }
}
