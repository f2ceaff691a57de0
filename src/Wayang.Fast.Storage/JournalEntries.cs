using System.Buffers.Binary;
using FASTER.core;

namespace Wayang.Fast.Storage;

// Journal entry layout (inside FasterLog's own 4-byte length + 8-byte checksum header):
//   u32 crc32c (little-endian) over everything after it | u8 JournalRecordType | body
// The structs below serialize straight into the log's page buffer (ILogEnqueueEntry), so an append copies the
// caller's bytes exactly once. They hold raw pointers: callers pin the spans for the duration of the enqueue.
internal static class JournalEntryFormat
{
    public const int HeaderBytes = sizeof(uint) + 1;
    public const int PutBodyPrefixBytes = sizeof(uint);

    public static void Seal(Span<byte> dest, JournalRecordType type)
    {
        dest[sizeof(uint)] = (byte)type;
        BinaryPrimitives.WriteUInt32LittleEndian(dest, Crc32C.Compute(dest[sizeof(uint)..]));
    }
}

internal readonly unsafe struct RawJournalEntry(JournalRecordType type, byte* payload, int length) : ILogEnqueueEntry
{
    public int SerializedLength => JournalEntryFormat.HeaderBytes + length;

    public void SerializeTo(Span<byte> dest)
    {
        new ReadOnlySpan<byte>(payload, length).CopyTo(dest[JournalEntryFormat.HeaderBytes..]);
        JournalEntryFormat.Seal(dest[..SerializedLength], type);
    }
}

internal readonly unsafe struct PutJournalEntry(byte* key, int keyLength, byte* value, int valueLength) : ILogEnqueueEntry
{
    public int SerializedLength => JournalEntryFormat.HeaderBytes + JournalEntryFormat.PutBodyPrefixBytes + keyLength + valueLength;

    public void SerializeTo(Span<byte> dest)
    {
        var body = dest[JournalEntryFormat.HeaderBytes..];
        BinaryPrimitives.WriteUInt32LittleEndian(body, (uint)keyLength);
        new ReadOnlySpan<byte>(key, keyLength).CopyTo(body[JournalEntryFormat.PutBodyPrefixBytes..]);
        new ReadOnlySpan<byte>(value, valueLength).CopyTo(body[(JournalEntryFormat.PutBodyPrefixBytes + keyLength)..]);
        JournalEntryFormat.Seal(dest[..SerializedLength], JournalRecordType.Put);
    }
}

// A committed journal entry as replay sees it. Payload is the body after the type byte.
// Damage is set only by a tolerant read (Journal.ReadCommitted(from, tolerateDamage: true)) for an entry that could
// not be read: Type is None, Payload empty, and Damage says why (checksum mismatch, unknown type, FasterLog framing).
public readonly record struct JournalRecord(long Address, JournalRecordType Type, ReadOnlyMemory<byte> Payload)
{
    public string? Damage { get; init; }
    public bool IsDamaged => Damage is not null;
}
