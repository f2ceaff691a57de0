using MessagePack;

namespace Wayang.Fast.Protocol.Messages;

// Bodies are MessagePack arrays: the [Key(n)] index is the array position documented in protocol-spec/messages.md.
// Fields are append-only; a reader treats missing trailing fields as their defaults.

[MessagePackObject]
public sealed class HelloRequest
{
    [Key(0)] public int ProtocolVersion { get; set; }
    [Key(1)] public string ClientName { get; set; } = "";
    [Key(2)] public string ApiKey { get; set; } = "";
    // Credit every server-to-client stream starts with on this connection (0: server default).
    [Key(3)] public uint InitialStreamCredit { get; set; }
}

[MessagePackObject]
public sealed class WelcomeResponse
{
    [Key(0)] public string ServerVersion { get; set; } = "";
    [Key(1)] public int ProtocolVersion { get; set; }
    [Key(2)] public string SessionId { get; set; } = "";
    [Key(3)] public int MaxFrameBytes { get; set; }
    [Key(4)] public int MaxInFlight { get; set; }
    [Key(5)] public int IdleTimeoutMs { get; set; }
    [Key(6)] public string TenantId { get; set; } = "";
    [Key(7)] public string KeyId { get; set; } = "";
    [Key(8)] public string[] Roles { get; set; } = [];
    [Key(9)] public uint InitialStreamCredit { get; set; }
}

[MessagePackObject]
public sealed class ErrorBody
{
    [Key(0)] public int Code { get; set; }
    [Key(1)] public string Name { get; set; } = "";
    [Key(2)] public string Message { get; set; } = "";
    [Key(3)] public bool Retryable { get; set; }
    [Key(4)] public long RetryAfterMs { get; set; }
    [Key(5)] public Dictionary<string, string> Details { get; set; } = [];
}

[MessagePackObject]
public sealed class CreditBody
{
    [Key(0)] public uint Credits { get; set; }
}

[MessagePackObject]
public sealed class GoAwayBody
{
    [Key(0)] public uint LastStreamId { get; set; }
    [Key(1)] public int Code { get; set; }
    [Key(2)] public string Message { get; set; } = "";
}

// Opcode Tick: a diagnostic server stream of Count items, one every IntervalMs (bounded by the server).
// It exercises credit, cancellation and drain end to end, and is what `wayang ping --stream` uses.
[MessagePackObject]
public sealed class TickRequest
{
    [Key(0)] public int Count { get; set; }
    [Key(1)] public int IntervalMs { get; set; }
}

[MessagePackObject]
public sealed class TickItem
{
    [Key(0)] public int Sequence { get; set; }
    [Key(1)] public long UnixTimeMs { get; set; }
}
