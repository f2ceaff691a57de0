namespace Wayang.Fast.Storage.Tests;

public sealed class StorageTuningTests
{
    [Fact]
    public void Only_the_values_given_replace_the_defaults()
    {
        var options = new StorageOptions();
        var defaults = new StorageOptions();
        new StorageTuning { CheckpointJournalBytes = 256L << 20, CompactionMinLogBytes = 0 }.ApplyTo(options);

        Assert.Equal(256L << 20, options.CheckpointJournalBytes);
        Assert.Equal(0, options.CompactionMinLogBytes);
        Assert.Equal(defaults.CheckpointInterval, options.CheckpointInterval);
        Assert.Equal(defaults.StoreMemoryBits, options.StoreMemoryBits);
        Assert.Equal(defaults.JournalMemoryBits, options.JournalMemoryBits);
        Assert.Equal(defaults.IndexBuckets, options.IndexBuckets);
        Assert.Equal(defaults.RelaxedCommitInterval, options.RelaxedCommitInterval);
    }

    [Fact]
    public void Every_value_is_applied()
    {
        var options = new StorageOptions();
        new StorageTuning
        {
            CheckpointInterval = TimeSpan.Zero,
            CheckpointJournalBytes = 1L << 20,
            CompactionMinLogBytes = 5,
            RelaxedCommitInterval = TimeSpan.FromMilliseconds(2),
            StoreMemoryBits = 28,
            JournalMemoryBits = 25,
            IndexBuckets = 1L << 20,
        }.ApplyTo(options);

        Assert.Equal(TimeSpan.Zero, options.CheckpointInterval);
        Assert.Equal(1L << 20, options.CheckpointJournalBytes);
        Assert.Equal(5, options.CompactionMinLogBytes);
        Assert.Equal(TimeSpan.FromMilliseconds(2), options.RelaxedCommitInterval);
        Assert.Equal(28, options.StoreMemoryBits);
        Assert.Equal(25, options.JournalMemoryBits);
        Assert.Equal(1L << 20, options.IndexBuckets);
    }

    public static TheoryData<string, StorageTuning> Invalid => new()
    {
        { "Storage.CheckpointInterval", new StorageTuning { CheckpointInterval = TimeSpan.FromSeconds(-1) } },
        { "Storage.CheckpointJournalBytes", new StorageTuning { CheckpointJournalBytes = 4096 } },
        { "Storage.RelaxedCommitInterval", new StorageTuning { RelaxedCommitInterval = TimeSpan.Zero } },
        { "Storage.StoreMemoryBits", new StorageTuning { StoreMemoryBits = 19 } },
        { "Storage.JournalMemoryBits", new StorageTuning { JournalMemoryBits = 37 } },
        { "Storage.IndexBuckets", new StorageTuning { IndexBuckets = 3000 } },
        { "Storage.IndexBuckets", new StorageTuning { IndexBuckets = 512 } },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Out_of_range_values_are_refused_naming_the_setting(string name, StorageTuning tuning)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(tuning.Validate);
        Assert.Equal(name, error.ParamName);
    }

    [Fact]
    public void Nothing_set_is_valid()
    {
        new StorageTuning().Validate();
        var options = new StorageOptions();
        new StorageTuning().ApplyTo(options);
        Assert.Equal(new StorageOptions().CheckpointJournalBytes, options.CheckpointJournalBytes);
    }
}
