using static Wayang.Fast.Storage.Tests.TestData;

namespace Wayang.Fast.Storage.Tests;

// Writes that find the journal's memory nearly full queue and are applied in issue order once there is room, instead
// of spinning inside FasterLog.Enqueue on the caller's thread.
public sealed class AdmissionTests
{
    [Fact]
    public async Task A_burst_beyond_the_journals_memory_queues_and_keeps_issue_order_and_every_write()
    {
        using var dir = new TempDirectory("admission");
        var options = SmallOptions(dir.Path);
        options.Durability = DurabilityMode.Relaxed;
        // No periodic commit: only the admission's own commit requests free the tail.
        options.RelaxedCommitInterval = TimeSpan.FromHours(1);
        const int Writes = 1000;
        var value = new byte[8000];
        await using (var store = FasterStateStore.Open(options))
        {
            var pending = new List<Task>(Writes * 2);
            for (int i = 0; i < Writes; i++)
            {
                // The caller's buffer is reused at once: a queued write must have copied it.
                BitConverter.TryWriteBytes(value, i);
                pending.Add(store.PutAsync(Bytes("same"), value).AsTask());
                pending.Add(store.PutAsync(Bytes($"key/{i:D4}"), value).AsTask());
            }
            await Task.WhenAll(pending);

            // 16 MB written into 256 KB of journal memory in a tight loop: the tail filled and writes queued.
            Assert.True(store.Metrics.AdmissionQueued > 0, "no write queued for room");
            Assert.True(store.TryGet(Bytes("same"), out var last));
            Assert.Equal(Writes - 1, BitConverter.ToInt32(last));
            for (int i = 0; i < Writes; i++)
            {
                Assert.True(store.TryGet(Bytes($"key/{i:D4}"), out var v));
                Assert.Equal(i, BitConverter.ToInt32(v));
            }
        }

        await using (var reopened = FasterStateStore.Open(options))
        {
            Assert.True(reopened.TryGet(Bytes("same"), out var last));
            Assert.Equal(Writes - 1, BitConverter.ToInt32(last));
            Assert.Equal(Writes, reopened.ScanPrefix(Bytes("key/")).Count);
        }
    }

    [Fact]
    public async Task A_delete_issued_after_a_queued_put_of_its_key_wins()
    {
        using var dir = new TempDirectory("admission-delete");
        var options = SmallOptions(dir.Path);
        options.Durability = DurabilityMode.Relaxed;
        options.RelaxedCommitInterval = TimeSpan.FromHours(1);
        await using var store = FasterStateStore.Open(options);
        var filler = new byte[8000];
        var pending = new List<Task>();
        for (int i = 0; i < 200; i++)
            pending.Add(store.PutAsync(Bytes($"fill/{i}"), filler).AsTask());
        pending.Add(store.PutAsync(Bytes("victim"), Bytes("value")).AsTask());
        pending.Add(store.DeleteAsync(Bytes("victim")).AsTask());
        await Task.WhenAll(pending);
        Assert.True(store.Metrics.AdmissionQueued > 0, "no write queued for room");
        Assert.False(store.TryGet(Bytes("victim"), out _));
    }
}
