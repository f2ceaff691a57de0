using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Protocol.Framing;

public enum FrameReadStatus
{
    Complete,
    Incomplete,
    Error,
}

// A frame sliced out of the pipe's buffer. Body points into that buffer: it is valid only until the
// reader calls AdvanceTo or awaits. Copy what must live longer.
public readonly struct Frame
{
    public Frame(FrameHeader header, ReadOnlySequence<byte> body)
    {
        Header = header;
        Body = body;
    }

    public FrameHeader Header { get; }
    public ReadOnlySequence<byte> Body { get; }
}

public static class FrameReader
{
    // Slices one frame off the front of buffer. The header is validated (version, type, length against maxBody)
    // before any body bytes are needed, so an oversize frame is refused without buffering it.
    // On Incomplete the buffer is unchanged; on Error, error holds the code and buffer is unchanged.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FrameReadStatus TryReadFrame(ref ReadOnlySequence<byte> buffer, int maxBody, out Frame frame, out ErrorCode error)
    {
        frame = default;
        error = ErrorCode.None;
        if (buffer.Length < FrameHeader.Size)
            return FrameReadStatus.Incomplete;

        FrameReadStatus status;
        FrameHeader header;
        var first = buffer.FirstSpan;
        if (first.Length >= FrameHeader.Size)
        {
            status = TryParseHeader(first, maxBody, out header, out error);
        }
        else
        {
            // The header straddles segments (a split read): copy its 16 bytes out.
            Span<byte> scratch = stackalloc byte[FrameHeader.Size];
            buffer.Slice(0, FrameHeader.Size).CopyTo(scratch);
            status = TryParseHeader(scratch, maxBody, out header, out error);
        }
        if (status != FrameReadStatus.Complete)
            return status;

        long total = FrameHeader.Size + (long)header.BodyLength;
        if (buffer.Length < total)
            return FrameReadStatus.Incomplete;

        frame = new Frame(header, buffer.Slice(FrameHeader.Size, header.BodyLength));
        buffer = buffer.Slice(total);
        return FrameReadStatus.Complete;
    }

    // Parses and validates a header; used by the reader above and by anything that has the 16 bytes in hand.
    public static FrameReadStatus TryParseHeader(ReadOnlySpan<byte> h, int maxBody, out FrameHeader header, out ErrorCode error)
    {
        header = default;
        error = ErrorCode.None;
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(h);
        byte version = h[4];
        byte type = h[5];
        if (version != FrameHeader.CurrentVersion)
        {
            error = ErrorCode.UnsupportedVersion;
            return FrameReadStatus.Error;
        }
        if (!FrameTypes.IsDefined(type))
        {
            error = ErrorCode.UnknownFrameType;
            return FrameReadStatus.Error;
        }
        if (length > (uint)maxBody)
        {
            error = ErrorCode.FrameTooLarge;
            return FrameReadStatus.Error;
        }
        var flags = (FrameFlags)BinaryPrimitives.ReadUInt16LittleEndian(h[6..]);
        uint streamId = BinaryPrimitives.ReadUInt32LittleEndian(h[8..]);
        var opcode = (Opcode)BinaryPrimitives.ReadUInt16LittleEndian(h[12..]);
        header = new FrameHeader((FrameType)type, opcode, streamId, (int)length, flags);
        return FrameReadStatus.Complete;
    }
}
