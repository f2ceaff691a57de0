using Microsoft.Extensions.Logging;

namespace Wayang.Fast.Server;

// Stable event ids: dashboards and alerts key on them. Append; never renumber. API keys are never logged.
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Debug, "Connection {ConnectionId} opened from {Remote}")]
    public static partial void ConnectionOpened(ILogger logger, string connectionId, string? remote);

    [LoggerMessage(2, LogLevel.Debug, "Connection {ConnectionId} closed: {Reason}")]
    public static partial void ConnectionClosed(ILogger logger, string connectionId, string reason);

    [LoggerMessage(3, LogLevel.Information, "Connection {ConnectionId} authenticated as key {KeyId} of tenant {TenantId}")]
    public static partial void Authenticated(ILogger logger, string connectionId, string keyId, string tenantId);

    [LoggerMessage(4, LogLevel.Warning, "Connection {ConnectionId} from {Remote} failed authentication: {Code}")]
    public static partial void AuthenticationFailed(ILogger logger, string connectionId, string? remote, string code);

    [LoggerMessage(5, LogLevel.Information, "Connection {ConnectionId} closed after protocol error {Code}")]
    public static partial void FatalProtocolError(ILogger logger, string connectionId, string code);

    [LoggerMessage(6, LogLevel.Information, "Connection {ConnectionId} ended inside a frame ({Bytes} bytes left unread)")]
    public static partial void FrameTruncated(ILogger logger, string connectionId, long bytes);

    [LoggerMessage(7, LogLevel.Error, "Connection {ConnectionId} session faulted")]
    public static partial void SessionFault(ILogger logger, string connectionId, Exception exception);

    [LoggerMessage(8, LogLevel.Warning, "Connection {ConnectionId} closed: SLOW_CONSUMER (pending output over the limit)")]
    public static partial void SlowConsumer(ILogger logger, string connectionId);

    [LoggerMessage(9, LogLevel.Information, "Connection {ConnectionId} closed by timeout {Code}")]
    public static partial void TimedOut(ILogger logger, string connectionId, string code);

    [LoggerMessage(10, LogLevel.Warning, "Connection refused: {Code}")]
    public static partial void ConnectionRefused(ILogger logger, string code);

    [LoggerMessage(11, LogLevel.Error, "Request {Opcode} on stream {StreamId} of connection {ConnectionId} failed")]
    public static partial void RequestFailed(ILogger logger, string opcode, uint streamId, string connectionId, Exception exception);

    [LoggerMessage(12, LogLevel.Information, "Connection {ConnectionId} registered executor {ExecutorId} of tenant {TenantId} with {Slots} slots")]
    public static partial void ExecutorRegistered(ILogger logger, string connectionId, string executorId, string tenantId, int slots);

    [LoggerMessage(13, LogLevel.Information, "Connection {ConnectionId} unregistered executor {ExecutorId} ({Reason}); its leased tasks were requeued")]
    public static partial void ExecutorUnregistered(ILogger logger, string connectionId, string executorId, string reason);

    [LoggerMessage(20, LogLevel.Information, "Wayang.Fast server listening on {ProtocolEndPoint} (HTTP {HttpEndPoint}), data directory {DataDirectory}, durability {Durability}")]
    public static partial void Started(ILogger logger, string protocolEndPoint, string httpEndPoint, string dataDirectory, string durability);

    [LoggerMessage(21, LogLevel.Information, "Server stopping: GOAWAY sent to {Sessions} sessions, draining in-flight requests")]
    public static partial void Stopping(ILogger logger, int sessions);

    [LoggerMessage(22, LogLevel.Warning, "Shutdown drain timed out with {InFlight} requests still in flight; closing their connections")]
    public static partial void DrainTimedOut(ILogger logger, long inFlight);

    [LoggerMessage(23, LogLevel.Information, "Server stopped")]
    public static partial void Stopped(ILogger logger);

    [LoggerMessage(24, LogLevel.Warning, "Bootstrap admin key created for tenant 'system'; it was written to {Path} (owner-only) and is shown once")]
    public static partial void BootstrapKeyCreated(ILogger logger, string path);

    [LoggerMessage(25, LogLevel.Error, "Shutdown step failed: {Step}")]
    public static partial void ShutdownStepFailed(ILogger logger, string step, Exception exception);

    [LoggerMessage(26, LogLevel.Error, "Checking secret rotation policies failed; will retry at the next check")]
    public static partial void RotationCheckFailed(ILogger logger, Exception exception);

    [LoggerMessage(27, LogLevel.Information, "Secret {Tenant}/{Path} is due for rotation (policy: every {Days} days)")]
    public static partial void RotationDue(ILogger logger, string tenant, string path, int days);

    [LoggerMessage(28, LogLevel.Error, "HTTP request {Method} {Path} failed")]
    public static partial void HttpRequestFailed(ILogger logger, string method, string path, Exception exception);
}
