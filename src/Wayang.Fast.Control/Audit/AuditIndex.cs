using System.Collections.Concurrent;
using Wayang.Fast.Common.Audit;

namespace Wayang.Fast.Control.Audit;

// One entry per record: what queries filter on, plus where the body lives in the journal. 40 bytes whatever the
// record's size; tenant and principal ids are interned to ints.
internal readonly record struct AuditIndexEntry(long Sequence, long TimeMs, long Address, int Tenant, int Principal, ushort Opcode, AuditOutcome Outcome);

// Append-only, single writer (the log's append lock), lock-free readers: entries live in fixed-size chunks that are
// never moved, so a reader that read Count sees fully written entries below it. Sequences are strictly ascending,
// so paging by sequence is a binary search.
internal sealed class AuditIndex
{
    private const int ChunkBits = 12;
    private const int ChunkSize = 1 << ChunkBits;

    private AuditIndexEntry[][] _chunks = new AuditIndexEntry[16][];
    private int _count;
    private readonly ConcurrentDictionary<string, int> _ids = new(StringComparer.Ordinal);

    public int Count => Volatile.Read(ref _count);

    public long LastSequence
    {
        get
        {
            int count = Count;
            return count == 0 ? 0 : this[count - 1].Sequence;
        }
    }

    // Writer only.
    public int Intern(string value)
    {
        if (_ids.TryGetValue(value, out int id))
            return id;
        id = _ids.Count;
        _ids[value] = id;
        return id;
    }

    public bool TryGetId(string value, out int id) => _ids.TryGetValue(value, out id);

    // Writer only.
    public void Add(in AuditIndexEntry entry)
    {
        int count = _count;
        int chunk = count >> ChunkBits;
        var chunks = _chunks;
        if (chunk == chunks.Length)
        {
            Array.Resize(ref chunks, chunks.Length * 2);
            Volatile.Write(ref _chunks, chunks);
        }
        chunks[chunk] ??= new AuditIndexEntry[ChunkSize];
        chunks[chunk][count & (ChunkSize - 1)] = entry;
        Volatile.Write(ref _count, count + 1);
    }

    // Valid for index < a Count read before this call: the chunk array read here is at least as new as that count.
    public ref readonly AuditIndexEntry this[int index] => ref Volatile.Read(ref _chunks)[index >> ChunkBits][index & (ChunkSize - 1)];

    // The position of the first entry with Sequence > sequence, among the first count entries.
    public int FirstAfter(long sequence, int count)
    {
        int lo = 0, hi = count;
        while (lo < hi)
        {
            int mid = (int)((uint)(lo + hi) >> 1);
            if (this[mid].Sequence <= sequence)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo;
    }
}
