namespace Wayang.Fast.Protocol.Framing;

// On the wire as one byte. Explicit and append-only; frozen by a golden test.
public enum FrameType : byte
{
    Hello = 1,
    Welcome = 2,
    Request = 3,
    Response = 4,
    Error = 5,
    Stream = 6,
    End = 7,
    Credit = 8,
    Cancel = 9,
    Ping = 10,
    Pong = 11,
    GoAway = 12,
}

public static class FrameTypes
{
    public const byte MaxDefined = (byte)FrameType.GoAway;

    public static bool IsDefined(byte value) => value is >= 1 and <= MaxDefined;
}

// Header flags (u16). None are defined in protocol version 1: senders write 0, receivers ignore unknown bits
// so that later versions can add optional hints without breaking older peers.
[Flags]
public enum FrameFlags : ushort
{
    None = 0,
}
