using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Wayang.Fast.Protocol.Framing;

// The fixed 16-byte frame header, little-endian (protocol-spec/framing.md):
//   0..3   u32 body length (bytes after the header)
//   4      u8  frame format version (1)
//   5      u8  frame type
//   6..7   u16 flags
//   8..11  u32 stream id
//   12..13 u16 opcode
//   14..15 u16 reserved, written as 0
public readonly struct FrameHeader
{
    public const int Size = 16;
    public const byte CurrentVersion = 1;

    public FrameHeader(FrameType type, Opcode opcode, uint streamId, int bodyLength, FrameFlags flags = FrameFlags.None)
    {
        Type = type;
        Opcode = opcode;
        StreamId = streamId;
        BodyLength = bodyLength;
        Flags = flags;
    }

    public FrameType Type { get; }
    public Opcode Opcode { get; }
    public uint StreamId { get; }
    public int BodyLength { get; }
    public FrameFlags Flags { get; }

    public int TotalLength => Size + BodyLength;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size)
            ThrowDestinationTooSmall();
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)BodyLength);
        destination[4] = CurrentVersion;
        destination[5] = (byte)Type;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], (ushort)Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], StreamId);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[12..], (ushort)Opcode);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[14..], 0);
    }

    private static void ThrowDestinationTooSmall() => throw new ArgumentException("Destination is smaller than a frame header.");

    public override string ToString() => $"{Type} op={Opcode} stream={StreamId} len={BodyLength} flags={Flags}";
}
