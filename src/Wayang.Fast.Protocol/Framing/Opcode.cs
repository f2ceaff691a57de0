namespace Wayang.Fast.Protocol.Framing;

// The opcode registry (protocol-spec/opcodes.md). u16 on the wire, grouped by plane in the high byte:
// 0x00xx system, 0x01xx control (Wayang), 0x02xx execution (Gamelan), 0x03xx inference (Gollek).
// Explicit and append-only; frozen by a golden test.
public enum Opcode : ushort
{
    None = 0x0000,

    // System
    Ping = 0x0001,
    Tick = 0x0002,

    // Control: tenants and API keys
    TenantCreate = 0x0101,
    TenantList = 0x0102,
    KeyCreate = 0x0103,
    KeyList = 0x0104,
    KeyRevoke = 0x0105,
}
