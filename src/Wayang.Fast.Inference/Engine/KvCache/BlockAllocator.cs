using System.Diagnostics;

namespace Wayang.Fast.Inference.Engine.KvCache;

// Every block is in exactly one place: referenced by at least one block table (Used), waiting on the free stack with
// nothing worth keeping (Free), or unreferenced but still named by the prefix index (Evictable, on an LRU list so the
// coldest cached block is the one reclaimed). Arrays indexed by block id keep every operation O(1) and allocation-free.
internal sealed class BlockAllocator
{
    internal const int None = -1;

    internal enum BlockState : byte
    {
        Free,
        Used,
        Evictable,
    }

    private readonly int[] _refCounts;
    private readonly BlockState[] _states;
    private readonly int[] _freeStack;
    private int _freeCount;
    // Doubly linked LRU over block ids: head is the least recently released block, evicted first.
    private readonly int[] _lruPrev;
    private readonly int[] _lruNext;
    private int _lruHead = None;
    private int _lruTail = None;

    public BlockAllocator(int numBlocks)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numBlocks);
        _refCounts = new int[numBlocks];
        _states = new BlockState[numBlocks];
        _freeStack = new int[numBlocks];
        _lruPrev = new int[numBlocks];
        _lruNext = new int[numBlocks];
        // Pushed in reverse so a fresh allocator hands out 0, 1, 2, ...: predictable ids make tests and dumps readable.
        for (var b = numBlocks - 1; b >= 0; b--)
        {
            _freeStack[_freeCount++] = b;
        }
        Array.Fill(_lruPrev, None);
        Array.Fill(_lruNext, None);
    }

    public int TotalBlocks => _refCounts.Length;

    public int FreeCount => _freeCount;

    public int EvictableCount { get; private set; }

    public int UsedCount => TotalBlocks - _freeCount - EvictableCount;

    public int RefCount(int block) => _refCounts[block];

    public BlockState State(int block) => _states[block];

    public bool TryPopFree(out int block)
    {
        if (_freeCount == 0)
        {
            block = None;
            return false;
        }
        block = _freeStack[--_freeCount];
        _states[block] = BlockState.Used;
        _refCounts[block] = 1;
        return true;
    }

    public void PushFree(int block)
    {
        Debug.Assert(_refCounts[block] == 0 && _states[block] == BlockState.Used);
        _states[block] = BlockState.Free;
        _freeStack[_freeCount++] = block;
    }

    public void IncRef(int block)
    {
        Debug.Assert(_states[block] == BlockState.Used);
        _refCounts[block]++;
    }

    public int DecRef(int block)
    {
        Debug.Assert(_states[block] == BlockState.Used && _refCounts[block] > 0);
        return --_refCounts[block];
    }

    // Appends at the tail: the most recently released block is the last to be evicted.
    public void PushEvictable(int block)
    {
        Debug.Assert(_refCounts[block] == 0 && _states[block] == BlockState.Used);
        _states[block] = BlockState.Evictable;
        _lruPrev[block] = _lruTail;
        _lruNext[block] = None;
        if (_lruTail == None)
        {
            _lruHead = block;
        }
        else
        {
            _lruNext[_lruTail] = block;
        }
        _lruTail = block;
        EvictableCount++;
    }

    // A prefix hit on an evictable block takes it back into use with one reference.
    public void Reclaim(int block)
    {
        Unlink(block);
        _states[block] = BlockState.Used;
        _refCounts[block] = 1;
    }

    // Takes the least recently used evictable block straight into use; the caller drops it from the prefix index.
    public bool TryPopLeastRecentlyUsed(out int block)
    {
        block = _lruHead;
        if (block == None)
        {
            return false;
        }
        Reclaim(block);
        return true;
    }

    // Head-to-tail walk for tests and diagnostics (coldest first).
    internal int LruHead => _lruHead;

    internal int LruNext(int block) => _lruNext[block];

    private void Unlink(int block)
    {
        Debug.Assert(_states[block] == BlockState.Evictable);
        var prev = _lruPrev[block];
        var next = _lruNext[block];
        if (prev == None)
        {
            _lruHead = next;
        }
        else
        {
            _lruNext[prev] = next;
        }
        if (next == None)
        {
            _lruTail = prev;
        }
        else
        {
            _lruPrev[next] = prev;
        }
        _lruPrev[block] = None;
        _lruNext[block] = None;
        EvictableCount--;
    }
}
