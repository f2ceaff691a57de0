using System.Numerics;

namespace Wayang.Fast.Inference.Engine.KvCache;

// Hash of a full block given the hash of the block before it (RootHash for the first), so equal hashes mean "same
// tokens after the same prefix" up to collisions. Injectable so tests can force collisions.
internal delegate ulong BlockHasher(ulong parentHash, ReadOnlySpan<int> tokens);

// Maps the chained hash of a full block to the physical block holding it. A hit is only trusted after comparing the
// stored tokens (PagedKvCache) and the parent's identity (block id plus the generation it had when this block was registered), so a
// 64-bit collision or a stale child of an evicted parent degrades to a miss, never to wrong K/V.
internal sealed class PrefixCache
{
    internal const ulong RootHash = 0x9E3779B97F4A7C15UL;

    private readonly Dictionary<ulong, int> _index;
    private readonly ulong[] _hashes;
    private readonly bool[] _indexed;
    private readonly int[] _parentBlocks;
    private readonly int[] _parentGenerations;
    private readonly BlockHasher _hasher;

    public PrefixCache(int numBlocks, BlockHasher? hasher)
    {
        // Sized for every block at once so registering never grows the dictionary on the append path.
        _index = new Dictionary<ulong, int>(numBlocks);
        _hashes = new ulong[numBlocks];
        _indexed = new bool[numBlocks];
        _parentBlocks = new int[numBlocks];
        _parentGenerations = new int[numBlocks];
        _hasher = hasher ?? Hash;
    }

    public int Count => _index.Count;

    public ulong HashOf(int block) => _hashes[block];

    public bool IsIndexed(int block) => _indexed[block];

    public ulong Compute(ulong parentHash, ReadOnlySpan<int> tokens) => _hasher(parentHash, tokens);

    // The caller still compares the candidate's stored tokens: this class does not own the token storage.
    public bool TryFind(ulong hash, int parentBlock, int parentGeneration, out int block) =>
        _index.TryGetValue(hash, out block)
        && _parentBlocks[block] == parentBlock
        && _parentGenerations[block] == parentGeneration;

    // Records a block that just became full. Its hash is kept even when another block already owns the index entry,
    // because its children chain from it.
    public void Register(int block, ulong hash, int parentBlock, int parentGeneration)
    {
        _hashes[block] = hash;
        _parentBlocks[block] = parentBlock;
        _parentGenerations[block] = parentGeneration;
        if (_index.TryAdd(hash, block))
        {
            _indexed[block] = true;
        }
    }

    public void Remove(int block)
    {
        if (_indexed[block])
        {
            _index.Remove(_hashes[block]);
            _indexed[block] = false;
        }
    }

    internal bool IndexPointsAt(ulong hash, int block) => _index.TryGetValue(hash, out var b) && b == block;

    // An xxHash64-style round per token and a final avalanche: System.IO.Hashing is not in the shared framework, and
    // this needs no package and no allocation.
    internal static ulong Hash(ulong parentHash, ReadOnlySpan<int> tokens)
    {
        const ulong Prime1 = 0x9E3779B185EBCA87UL;
        const ulong Prime2 = 0xC2B2AE3D27D4EB4FUL;
        const ulong Prime3 = 0x165667B19E3779F9UL;
        var h = parentHash ^ ((ulong)tokens.Length * Prime3);
        foreach (var token in tokens)
        {
            h ^= BitOperations.RotateLeft((ulong)(uint)token * Prime2, 31) * Prime1;
            h = (BitOperations.RotateLeft(h, 27) * Prime1) + Prime3;
        }
        h ^= h >> 33;
        h *= Prime2;
        h ^= h >> 29;
        h *= Prime3;
        h ^= h >> 32;
        return h;
    }
}
