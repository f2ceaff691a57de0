using System.Runtime.CompilerServices;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Server.Metrics;

// Dense indexes for per-opcode metric arrays, so the hot path increments array slots instead of hashing.
// A new opcode adds a case and a name; unknown opcodes share the last slot.
internal static class OpcodeIndex
{
    public const int Other = 7;
    public const int Count = 8;

    public static readonly string[] Names = ["ping", "tick", "tenant_create", "tenant_list", "key_create", "key_list", "key_revoke", "other"];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Of(Opcode opcode) => opcode switch
    {
        Opcode.Ping => 0,
        Opcode.Tick => 1,
        Opcode.TenantCreate => 2,
        Opcode.TenantList => 3,
        Opcode.KeyCreate => 4,
        Opcode.KeyList => 5,
        Opcode.KeyRevoke => 6,
        _ => Other,
    };
}

internal static class FrameTypeNames
{
    // Indexed by the frame type byte (1..12); slot 0 unused.
    public const int Slots = 16;

    public static readonly string[] Names =
        ["none", "hello", "welcome", "request", "response", "error", "stream", "end", "credit", "cancel", "ping", "pong", "goaway", "t13", "t14", "t15"];
}
