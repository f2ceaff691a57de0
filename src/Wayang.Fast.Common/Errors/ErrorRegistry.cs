using System.Collections.Frozen;

namespace Wayang.Fast.Common.Errors;

// Stable facts about each code: the symbolic name clients switch on, whether a retry can succeed,
// and the default message. One table so protocol, planes and SDK never disagree.
public sealed record ErrorInfo(ErrorCode Code, string Name, bool Retryable, string DefaultMessage);

public static class ErrorRegistry
{
    private static readonly ErrorInfo[] Entries =
    [
        new(ErrorCode.Internal, "INTERNAL", false, "An internal error occurred."),
        new(ErrorCode.InvalidArgument, "INVALID_ARGUMENT", false, "A request field is missing or invalid."),
        new(ErrorCode.Timeout, "TIMEOUT", true, "The operation did not complete in time."),
        new(ErrorCode.Unavailable, "UNAVAILABLE", true, "The service is temporarily unavailable."),
        new(ErrorCode.NotFound, "NOT_FOUND", false, "The resource does not exist."),

        new(ErrorCode.FrameTooLarge, "FRAME_TOO_LARGE", false, "The frame body exceeds the negotiated maximum frame size."),
        new(ErrorCode.FrameTruncated, "FRAME_TRUNCATED", false, "The connection ended in the middle of a frame."),
        new(ErrorCode.UnknownFrameType, "UNKNOWN_FRAME_TYPE", false, "The frame type is not defined by this protocol version."),
        new(ErrorCode.UnknownOpcode, "UNKNOWN_OPCODE", false, "The opcode is not known to this server."),
        new(ErrorCode.BadBody, "BAD_BODY", false, "The frame body is not valid MessagePack for this message."),
        new(ErrorCode.HandshakeRequired, "HANDSHAKE_REQUIRED", false, "Only HELLO is accepted before the handshake succeeds."),
        new(ErrorCode.UnsupportedVersion, "UNSUPPORTED_VERSION", false, "The protocol or frame version is not supported."),
        new(ErrorCode.BadHeader, "BAD_HEADER", false, "The frame header is malformed."),
        new(ErrorCode.DuplicateStream, "DUPLICATE_STREAM", false, "The stream id is already in use by a request in flight."),
        new(ErrorCode.TooManyInFlight, "TOO_MANY_IN_FLIGHT", true, "The connection has too many requests in flight."),
        new(ErrorCode.TooManyConnections, "TOO_MANY_CONNECTIONS", true, "The server has reached its connection limit."),
        new(ErrorCode.IdleTimeout, "IDLE_TIMEOUT", true, "The connection was idle for longer than the idle timeout."),
        new(ErrorCode.CreditOverflow, "CREDIT_OVERFLOW", false, "A credit grant would exceed the maximum stream credit."),
        new(ErrorCode.ShuttingDown, "SHUTTING_DOWN", true, "The server is shutting down and accepts no new requests."),
        new(ErrorCode.Cancelled, "CANCELLED", false, "The request was cancelled."),
        new(ErrorCode.AlreadyAuthenticated, "ALREADY_AUTHENTICATED", false, "HELLO was sent twice on one connection."),
        new(ErrorCode.SlowConsumer, "SLOW_CONSUMER", true, "The peer did not read its replies fast enough."),

        new(ErrorCode.Unauthenticated, "UNAUTHENTICATED", false, "The credentials are missing or not valid."),
        new(ErrorCode.KeyRevoked, "KEY_REVOKED", false, "The API key has been revoked."),
        new(ErrorCode.PermissionDenied, "PERMISSION_DENIED", false, "The principal lacks the permission for this operation."),
        new(ErrorCode.TenantNotFound, "TENANT_NOT_FOUND", false, "The tenant does not exist."),
        new(ErrorCode.TenantExists, "TENANT_EXISTS", false, "A tenant with this id already exists."),
        new(ErrorCode.KeyNotFound, "KEY_NOT_FOUND", false, "The API key does not exist."),
        new(ErrorCode.RoleNotFound, "ROLE_NOT_FOUND", false, "The role does not exist."),
        new(ErrorCode.RoleBuiltIn, "ROLE_BUILT_IN", false, "Built-in roles cannot be changed or deleted."),
        new(ErrorCode.RoleInUse, "ROLE_IN_USE", false, "The role is still bound to principals."),
        new(ErrorCode.AgentInvalid, "AGENT_INVALID", false, "The agent definition is invalid."),
        new(ErrorCode.AgentNotFound, "AGENT_NOT_FOUND", false, "The agent definition or version does not exist."),
        new(ErrorCode.DefinitionStateConflict, "DEFINITION_STATE_CONFLICT", false, "The definition version's lifecycle state does not allow this operation."),
        new(ErrorCode.DefinitionInUse, "DEFINITION_IN_USE", false, "The definition version is used by active runs."),
        new(ErrorCode.SecretNotFound, "SECRET_NOT_FOUND", false, "The secret (or secret version) does not exist."),
        new(ErrorCode.SecretVersionConflict, "SECRET_VERSION_CONFLICT", false, "The secret's current version does not match the check-and-set version."),
        new(ErrorCode.SecretInvalid, "SECRET_INVALID", false, "The secret path, value or policy is invalid."),
        new(ErrorCode.SecretVersionUnavailable, "SECRET_VERSION_UNAVAILABLE", false, "The secret version is disabled or destroyed."),
        new(ErrorCode.SecretIntegrity, "SECRET_INTEGRITY", false, "The stored secret failed authentication and was not decrypted."),
        new(ErrorCode.KmsUnavailable, "KMS_UNAVAILABLE", true, "The key management service could not be reached or refused the request."),
        new(ErrorCode.PluginRejected, "PLUGIN_REJECTED", false, "The plugin upload was rejected."),
        new(ErrorCode.PluginNotFound, "PLUGIN_NOT_FOUND", false, "The plugin (or plugin version) does not exist."),
        new(ErrorCode.TrustKeyNotFound, "TRUST_KEY_NOT_FOUND", false, "The trusted signing key does not exist."),
        new(ErrorCode.PluginConfigInvalid, "PLUGIN_CONFIG_INVALID", false, "The plugin configuration does not satisfy the plugin's configuration schema."),

        new(ErrorCode.WorkflowInvalid, "WORKFLOW_INVALID", false, "The workflow definition is invalid."),
        new(ErrorCode.WorkflowNotFound, "WORKFLOW_NOT_FOUND", false, "The workflow or workflow version does not exist."),
        new(ErrorCode.RunNotFound, "RUN_NOT_FOUND", false, "The run does not exist."),
        new(ErrorCode.RunStateConflict, "RUN_STATE_CONFLICT", false, "The run's state does not allow this operation."),
        new(ErrorCode.QueueFull, "QUEUE_FULL", true, "The task queue is full."),
        new(ErrorCode.IdempotencyKeyConflict, "IDEMPOTENCY_KEY_CONFLICT", false, "The idempotency key was used with different parameters."),
        new(ErrorCode.TaskTokenInvalid, "TASK_TOKEN_INVALID", false, "The task token is malformed or its signature does not verify."),
        new(ErrorCode.TaskTokenExpired, "TASK_TOKEN_EXPIRED", false, "The task token has expired."),
        new(ErrorCode.AttemptSuperseded, "ATTEMPT_SUPERSEDED", false, "The task attempt has been superseded."),
        new(ErrorCode.ExecutorExists, "EXECUTOR_EXISTS", false, "An executor with this id is already registered."),
        new(ErrorCode.ExecutorNotRegistered, "EXECUTOR_NOT_REGISTERED", false, "The executor is not registered on this connection."),
        new(ErrorCode.AgentUnavailable, "AGENT_UNAVAILABLE", false, "This server has no inference plane for AGENT nodes."),
        new(ErrorCode.DeadLetterNotFound, "DEAD_LETTER_NOT_FOUND", false, "The dead-letter entry does not exist."),
        new(ErrorCode.RunInputInvalid, "RUN_INPUT_INVALID", false, "The run input is invalid."),
        new(ErrorCode.RunStuck, "RUN_STUCK", false, "The run can make no further progress."),
        new(ErrorCode.TaskTimeout, "TASK_TIMEOUT", true, "The task attempt exceeded its timeout."),
        new(ErrorCode.TaskFailed, "TASK_FAILED", false, "The task failed."),
        new(ErrorCode.DeadlineExceeded, "DEADLINE_EXCEEDED", false, "The task's deadline passed before it was dispatched."),
        new(ErrorCode.TenantQueueLimit, "TENANT_QUEUE_LIMIT", true, "The tenant has as many tasks queued as its limit allows."),
        new(ErrorCode.TenantRateLimited, "TENANT_RATE_LIMITED", true, "The tenant's submission rate limit is exceeded."),
        new(ErrorCode.WorkflowNotPublished, "WORKFLOW_NOT_PUBLISHED", false, "The workflow version is not published."),

        new(ErrorCode.InferenceRateLimited, "INFERENCE_RATE_LIMITED", true, "The inference provider is rate limiting requests."),
        new(ErrorCode.ContextLengthExceeded, "CONTEXT_LENGTH_EXCEEDED", false, "The prompt and requested completion exceed the model's context length."),
        new(ErrorCode.ContentFiltered, "CONTENT_FILTERED", false, "The provider refused or stopped the request under its content policy."),
        new(ErrorCode.ProviderAuthFailed, "PROVIDER_AUTH_FAILED", false, "The inference provider rejected the credentials."),
        new(ErrorCode.ProviderPermissionDenied, "PROVIDER_PERMISSION_DENIED", false, "The provider credentials lack permission for this request."),
        new(ErrorCode.ModelNotFound, "MODEL_NOT_FOUND", false, "The model does not exist at the provider or in the model registry."),
        new(ErrorCode.InferenceTimeout, "INFERENCE_TIMEOUT", true, "The inference request exceeded one of its timeouts."),
        new(ErrorCode.ProviderUnavailable, "PROVIDER_UNAVAILABLE", true, "The inference provider is unavailable."),
        new(ErrorCode.ProviderBadResponse, "PROVIDER_BAD_RESPONSE", true, "The inference provider sent a response that could not be understood."),
        new(ErrorCode.StreamBroken, "STREAM_BROKEN", true, "The provider's stream ended before the completion did."),
        new(ErrorCode.AllFallbacksFailed, "ALL_FALLBACKS_FAILED", false, "Every target of the fallback chain failed."),
        new(ErrorCode.InferenceRequestInvalid, "INFERENCE_REQUEST_INVALID", false, "The provider refused the request as invalid."),
        new(ErrorCode.ProviderNotFound, "PROVIDER_NOT_FOUND", false, "The inference provider is not configured."),
        new(ErrorCode.FallbackPolicyInvalid, "FALLBACK_POLICY_INVALID", false, "The fallback policy is invalid."),

        new(ErrorCode.StorageFormatTooNew, "STORAGE_FORMAT_TOO_NEW", false, "The data directory was written by a newer format version."),
        new(ErrorCode.StorageCorrupt, "STORAGE_CORRUPT", false, "The data directory is corrupt."),
        new(ErrorCode.StorageIo, "STORAGE_IO", true, "A storage I/O operation failed."),
        new(ErrorCode.StorageLocked, "STORAGE_LOCKED", false, "The data directory is in use by another process."),

        new(ErrorCode.ConnectionClosed, "CONNECTION_CLOSED", true, "The connection closed before the reply arrived."),
        new(ErrorCode.ClientTimeout, "CLIENT_TIMEOUT", true, "The call did not complete within its timeout."),
        new(ErrorCode.NotConnected, "NOT_CONNECTED", true, "The client is not connected."),
    ];

    private static readonly FrozenDictionary<ErrorCode, ErrorInfo> ByCode = Entries.ToFrozenDictionary(e => e.Code);
    private static readonly FrozenDictionary<string, ErrorInfo> ByName = Entries.ToFrozenDictionary(e => e.Name, StringComparer.Ordinal);

    public static IReadOnlyList<ErrorInfo> All => Entries;

    public static ErrorInfo Get(ErrorCode code) =>
        ByCode.TryGetValue(code, out var info) ? info : new ErrorInfo(code, "UNKNOWN_" + ((int)code).ToString(System.Globalization.CultureInfo.InvariantCulture), false, "Unknown error code.");

    public static bool TryGetByName(string name, out ErrorInfo info) => ByName.TryGetValue(name, out info!);

    public static string NameOf(ErrorCode code) => Get(code).Name;
}
