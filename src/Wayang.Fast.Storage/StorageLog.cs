using Microsoft.Extensions.Logging;

namespace Wayang.Fast.Storage;

// Stable event ids 5100-5199 belong to storage.
internal static partial class StorageLog
{
    [LoggerMessage(EventId = 5101, Level = LogLevel.Information, Message = "Storage opened at {Directory}: format {FormatVersion}, durability {Durability}")]
    public static partial void Opened(ILogger logger, string directory, int formatVersion, DurabilityMode durability);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Information, Message = "Recovered state: checkpoint {FromCheckpoint} covering journal address {CheckpointAddress}, replayed {Replayed} journal entries up to {CommittedUntil} in {ElapsedMs} ms")]
    public static partial void Recovered(ILogger logger, bool fromCheckpoint, long checkpointAddress, long replayed, long committedUntil, long elapsedMs);

    [LoggerMessage(EventId = 5103, Level = LogLevel.Debug, Message = "Checkpoint {Token} covers journal address {Address}; took {ElapsedMs} ms")]
    public static partial void CheckpointTaken(ILogger logger, Guid token, long address, long elapsedMs);

    [LoggerMessage(EventId = 5104, Level = LogLevel.Error, Message = "Checkpoint failed; will retry at the next trigger")]
    public static partial void CheckpointFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 5105, Level = LogLevel.Critical, Message = "Journal commit failed; the journal refuses further writes")]
    public static partial void CommitFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 5106, Level = LogLevel.Warning, Message = "Option {Option}={Requested} differs from the data directory's manifest; using the manifest's {Actual}")]
    public static partial void GeometryFromManifest(ILogger logger, string option, int requested, int actual);

    [LoggerMessage(EventId = 5107, Level = LogLevel.Debug, Message = "Compacted the store log from {BeginAddress} to {NewBeginAddress} ({LiveBytes} live bytes copied to the tail) in {ElapsedMs} ms")]
    public static partial void Compacted(ILogger logger, long beginAddress, long newBeginAddress, long liveBytes, long elapsedMs);

    [LoggerMessage(EventId = 5108, Level = LogLevel.Error, Message = "Store log compaction failed; checkpointing without it, will retry at the next checkpoint")]
    public static partial void CompactionFailed(ILogger logger, Exception exception);
}
