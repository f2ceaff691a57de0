using Microsoft.Extensions.Logging;

namespace Wayang.Fast.Execution.Engine;

// Stable event ids 3100-3199 belong to the execution engine.
internal static partial class EngineLog
{
    [LoggerMessage(EventId = 3101, Level = LogLevel.Information, Message = "Execution engine opened: {ActiveRuns} active runs recovered, {Requeued} tasks requeued, {DeadLetters} dead letters")]
    public static partial void Opened(ILogger logger, int activeRuns, int requeued, int deadLetters);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Run {RunId} names workflow {WorkflowId} version {Version}, which is not registered; the run is left as stored")]
    public static partial void WorkflowMissing(ILogger logger, string runId, string workflowId, int version);

    [LoggerMessage(EventId = 3103, Level = LogLevel.Error, Message = "The engine's timer loop failed to process due timers")]
    public static partial void TimerFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3104, Level = LogLevel.Error, Message = "Background work for run {RunId} failed")]
    public static partial void BackgroundFailed(ILogger logger, string runId, Exception exception);

    [LoggerMessage(EventId = 3105, Level = LogLevel.Warning, Message = "The inference gateway threw for run {RunId} node {NodeId}; the attempt fails")]
    public static partial void AgentThrew(ILogger logger, string runId, string nodeId, Exception exception);

    [LoggerMessage(EventId = 3106, Level = LogLevel.Error, Message = "Idempotency sweep failed")]
    public static partial void SweepFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3107, Level = LogLevel.Warning, Message = "Stored record {Key} could not be read and is ignored")]
    public static partial void BadRecord(ILogger logger, string key, Exception exception);
}
