namespace Wayang.Fast.Client;

// What WELCOME told us about the session.
public sealed record WayangSession(
    string SessionId,
    string ServerVersion,
    int ProtocolVersion,
    string TenantId,
    string KeyId,
    IReadOnlyList<string> Roles,
    int MaxFrameBytes,
    int MaxInFlight,
    TimeSpan IdleTimeout,
    uint InitialStreamCredit);

public sealed record TenantInfo(string TenantId, string DisplayName, DateTimeOffset CreatedAt);

public sealed record ApiKeyInfo(
    string KeyId,
    string TenantId,
    string Name,
    IReadOnlyList<string> Roles,
    DateTimeOffset CreatedAt,
    bool Revoked,
    DateTimeOffset? RevokedAt);

// Secret is the full key, returned once by the server (it stores only a hash).
public sealed record CreatedApiKey(string Secret, ApiKeyInfo Key);
