using System.Buffers.Binary;
using System.Text;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Inference.Engine.Gguf;

// Reads the little-endian header region of a mapped GGUF file. Every read checks the length first, so a truncated or
// lying file ends in an error that names the byte offset instead of reading past the mapping.
internal sealed unsafe class GgufCursor(byte* start, long length, string path)
{
    public long Position { get; set; }

    public long Length => length;

    public ReadOnlySpan<byte> Take(long count, string what)
    {
        if (count < 0 || count > length - Position)
            throw GgufErrors.Format(path, Position, $"truncated: {what} needs {count} bytes but the file has {length - Position} left");
        if (count > int.MaxValue)
            throw GgufErrors.Format(path, Position, $"{what} of {count} bytes is too large");
        var span = new ReadOnlySpan<byte>(start + Position, (int)count);
        Position += count;
        return span;
    }

    public byte U8(string what) => Take(1, what)[0];
    public ushort U16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, what));
    public uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));
    public ulong U64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, what));
    public float F32(string what) => BinaryPrimitives.ReadSingleLittleEndian(Take(4, what));
    public double F64(string what) => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, what));

    // A count read from the file, refused before it is used to size anything: each element needs at least minBytes,
    // so a count beyond what is left is a truncated (or corrupt) file, not an allocation to attempt.
    public long Count(string what, int minBytes)
    {
        long at = Position;
        ulong n = U64(what);
        if (n > (ulong)((length - Position) / Math.Max(minBytes, 1)))
            throw GgufErrors.Format(path, at, $"truncated: {what} is {n} but only {length - Position} bytes are left");
        return (long)n;
    }

    public string Str(string what)
    {
        long n = Count($"{what} length", 1);
        var bytes = Take(n, what);
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new WayangException(new WayangError(ErrorCode.InvalidArgument,
                $"GGUF file '{path}': {what} at byte {Position - n} is not valid UTF-8"), e);
        }
    }
}

internal static class GgufErrors
{
    public static WayangException Format(string path, long offset, string message) =>
        new(ErrorCode.InvalidArgument, $"GGUF file '{path}': {message} (at byte {offset})");

    public static WayangException Invalid(string path, string message) =>
        new(ErrorCode.InvalidArgument, $"GGUF file '{path}': {message}");
}
