using Microsoft.Extensions.Logging;

namespace Wayang.Fast.Control.Audit;

// Stable event ids 2200-2299 belong to the audit log.
internal static partial class AuditLogMessages
{
    [LoggerMessage(EventId = 2201, Level = LogLevel.Information, Message = "Audit log opened at {Directory}: {Records} records, head sequence {HeadSequence}")]
    public static partial void Opened(ILogger logger, string directory, long records, long headSequence);

    [LoggerMessage(EventId = 2202, Level = LogLevel.Warning, Message = "Audit log entry at journal address {Address} cannot be read and is left out of the index: {Reason}")]
    public static partial void UnreadableEntry(ILogger logger, long address, string reason);

    [LoggerMessage(EventId = 2203, Level = LogLevel.Warning, Message = "Audit chain is broken at sequence {Sequence}: {Reason}. New records continue the chain from sequence {HeadSequence}; verify the log and compare with an anchored head")]
    public static partial void ChainBroken(ILogger logger, long sequence, string reason, long headSequence);
}
