using System.Buffers;
using System.Runtime.CompilerServices;
using MessagePack;

namespace Wayang.Fast.Protocol.Framing;

public static class FrameWriter
{
    // Header and body in one contiguous reservation when it fits, so a small frame is one GetSpan/Advance.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Write(IBufferWriter<byte> output, FrameType type, Opcode opcode, uint streamId, ReadOnlySpan<byte> body, FrameFlags flags = FrameFlags.None)
    {
        int total = FrameHeader.Size + body.Length;
        var span = output.GetSpan(total);
        new FrameHeader(type, opcode, streamId, body.Length, flags).Write(span);
        if (span.Length >= total)
        {
            body.CopyTo(span[FrameHeader.Size..]);
            output.Advance(total);
        }
        else
        {
            output.Advance(FrameHeader.Size);
            output.Write(body);
        }
    }

    public static void Write(IBufferWriter<byte> output, FrameType type, Opcode opcode, uint streamId, in ReadOnlySequence<byte> body, FrameFlags flags = FrameFlags.None)
    {
        if (body.IsSingleSegment)
        {
            Write(output, type, opcode, streamId, body.FirstSpan, flags);
            return;
        }
        new FrameHeader(type, opcode, streamId, checked((int)body.Length), flags).Write(output.GetSpan(FrameHeader.Size));
        output.Advance(FrameHeader.Size);
        foreach (var segment in body)
            output.Write(segment.Span);
    }

    // Serializes a MessagePack body into scratch (a reusable per-connection buffer), then frames it.
    // The header needs the body length first, and an IBufferWriter cannot be patched after Advance.
    public static void WriteMessage<T>(IBufferWriter<byte> output, ArrayBufferWriter<byte> scratch, FrameType type, Opcode opcode, uint streamId, T message, MessagePackSerializerOptions options)
    {
        scratch.ResetWrittenCount();
        MessagePackSerializer.Serialize(scratch, message, options);
        Write(output, type, opcode, streamId, scratch.WrittenSpan);
    }
}
