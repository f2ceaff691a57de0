namespace Wayang.Fast.Inference.Engine.KvCache;

// A snapshot; counters are cumulative since the cache was created.
public readonly record struct KvCacheMetrics
{
    public int BlockSize { get; init; }

    public int TotalBlocks { get; init; }

    public int UsedBlocks { get; init; }

    public int FreeBlocks { get; init; }

    // Unreferenced full blocks kept for prefix reuse; reclaimed LRU when the free list runs dry.
    public int CachedEvictableBlocks { get; init; }

    // Token slots holding live K/V in used blocks, each physical block counted once however many sequences share it.
    public long LiveTokens { get; init; }

    // LiveTokens over UsedBlocks * BlockSize; 0 when nothing is allocated. Only partial last blocks waste slots.
    public double Utilization { get; init; }

    // Prefix counters count admitted sequences only, so a request that is refused and retried is not counted twice.
    public long PrefixLookups { get; init; }

    public long PrefixQueryBlocks { get; init; }

    public long PrefixHitBlocks { get; init; }

    public long PrefixQueryTokens { get; init; }

    public long PrefixHitTokens { get; init; }

    // Hit tokens over prompt tokens looked up, as vLLM reports it; 0 before any lookup.
    public double PrefixHitRate { get; init; }

    public long Evictions { get; init; }

    public long CopyOnWriteCopies { get; init; }

    // Adds and appends refused for lack of blocks (or over the per-sequence limit); state is unchanged by each.
    public long AllocationFailures { get; init; }
}
