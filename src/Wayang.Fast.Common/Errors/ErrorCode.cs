namespace Wayang.Fast.Common.Errors;

// The one error registry of the whole platform: protocol, control, execution, inference, storage and SDK.
// Values are on the wire and in persisted records: explicit, append-only, never renumbered or reused.
// protocol-spec/errors.md documents every code; a test checks that document and this enum agree,
// and a golden test freezes the numbers.
//
// Ranges: 1..999 general, 1000s protocol, 2000s control (auth, tenants, keys, RBAC), 3000s execution,
// 4000s inference, 5000s storage and server, 6000s SDK (client-side conditions).
public enum ErrorCode
{
    None = 0,

    // General
    Internal = 1,
    InvalidArgument = 2,
    Timeout = 3,
    Unavailable = 4,
    NotFound = 5,

    // Protocol
    FrameTooLarge = 1001,
    FrameTruncated = 1002,
    UnknownFrameType = 1003,
    UnknownOpcode = 1004,
    BadBody = 1005,
    HandshakeRequired = 1006,
    UnsupportedVersion = 1007,
    BadHeader = 1008,
    DuplicateStream = 1009,
    TooManyInFlight = 1010,
    TooManyConnections = 1011,
    IdleTimeout = 1012,
    CreditOverflow = 1013,
    ShuttingDown = 1014,
    Cancelled = 1015,
    AlreadyAuthenticated = 1016,
    SlowConsumer = 1017,

    // Control: authentication, tenants, API keys, permissions
    Unauthenticated = 2001,
    KeyRevoked = 2002,
    PermissionDenied = 2003,
    TenantNotFound = 2004,
    TenantExists = 2005,
    KeyNotFound = 2006,
    RoleNotFound = 2007,
    RoleBuiltIn = 2008,
    RoleInUse = 2009,
    AgentInvalid = 2010,
    AgentNotFound = 2011,
    DefinitionStateConflict = 2012,
    DefinitionInUse = 2013,
    SecretNotFound = 2014,
    SecretVersionConflict = 2015,
    SecretInvalid = 2016,
    SecretVersionUnavailable = 2017,
    SecretIntegrity = 2018,
    KmsUnavailable = 2019,
    PluginRejected = 2020,
    PluginNotFound = 2021,
    TrustKeyNotFound = 2022,
    PluginConfigInvalid = 2023,

    // Execution: workflows, runs, tasks, executors, dead letters
    WorkflowInvalid = 3001,
    WorkflowNotFound = 3002,
    RunNotFound = 3003,
    RunStateConflict = 3004,
    QueueFull = 3005,
    IdempotencyKeyConflict = 3006,
    TaskTokenInvalid = 3007,
    TaskTokenExpired = 3008,
    AttemptSuperseded = 3009,
    ExecutorExists = 3010,
    ExecutorNotRegistered = 3011,
    AgentUnavailable = 3012,
    DeadLetterNotFound = 3013,
    RunInputInvalid = 3014,
    RunStuck = 3015,
    TaskTimeout = 3016,
    TaskFailed = 3017,
    DeadlineExceeded = 3018,
    TenantQueueLimit = 3019,
    TenantRateLimited = 3020,
    WorkflowNotPublished = 3021,

    // Inference
    InferenceRateLimited = 4001,
    ContextLengthExceeded = 4002,
    ContentFiltered = 4003,
    ProviderAuthFailed = 4004,
    ProviderPermissionDenied = 4005,
    ModelNotFound = 4006,
    InferenceTimeout = 4007,
    ProviderUnavailable = 4008,
    ProviderBadResponse = 4009,
    StreamBroken = 4010,
    AllFallbacksFailed = 4011,
    InferenceRequestInvalid = 4012,
    ProviderNotFound = 4013,
    FallbackPolicyInvalid = 4014,

    // Storage and server
    StorageFormatTooNew = 5001,
    StorageCorrupt = 5002,
    StorageIo = 5003,
    StorageLocked = 5004,

    // SDK
    ConnectionClosed = 6001,
    ClientTimeout = 6002,
    NotConnected = 6003,
}
