using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;

namespace Wayang.Fast.Storage;

// CRC-32C (Castagnoli) over journal entries. FasterLog's own per-entry checksum is only verified for entries
// read back from disk pages, not for the tail page that recovery loads into memory, so entries carry their own.
// BitOperations.Crc32C uses the SSE4.2 / ARMv8 CRC instructions where present and a table otherwise.
internal static class Crc32C
{
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFF_FFFFu;
        var words = MemoryMarshal.Cast<byte, ulong>(data);
        foreach (var w in words)
            crc = BitOperations.Crc32C(crc, BitConverter.IsLittleEndian ? w : BinaryPrimitives.ReverseEndianness(w));
        for (int i = words.Length * sizeof(ulong); i < data.Length; i++)
            crc = BitOperations.Crc32C(crc, data[i]);
        return ~crc;
    }
}
