namespace Wayang.Fast.Inference.Engine.KvCache;

// Bookkeeping for a paged KV cache (vLLM's PagedAttention layout): which physical block holds which token of which
// sequence, and where the K/V of newly appended tokens goes. It moves no K/V bytes; a kernel consumes the block tables
// (GetBlockTable), the slot mapping written by TryAddSequence/TryAppend (slot = block * BlockSize + offset) and the
// copy-on-write list (PendingCopies, to run before the step's writes). Token ids are mirrored per slot so full blocks
// can be hashed for prefix caching and hits verified token by token. Not thread-safe: one scheduler thread owns it.
public sealed class PagedKvCache
{
    private readonly BlockAllocator _blocks;
    private readonly PrefixCache? _prefix;
    private readonly int _blockSize;
    private readonly int _maxBlocksPerSequence;
    private readonly int _maxTokensPerSequence;
    private readonly int[] _slotTokens;
    private readonly int[] _fill;
    // Bumped each time a block is handed out, so a prefix entry can tell its parent block from a reuse of the same id.
    private readonly int[] _generations;
    private readonly int[] _scratch;
    private readonly BlockCopy[] _copies;
    private int _copyCount;
    private readonly Dictionary<long, Sequence> _sequences = [];
    private readonly Stack<Sequence> _sequencePool = new();
    private long _liveTokens;
    private long _prefixLookups;
    private long _prefixQueryBlocks;
    private long _prefixHitBlocks;
    private long _prefixQueryTokens;
    private long _prefixHitTokens;
    private long _evictions;
    private long _copyOnWrites;
    private long _allocationFailures;

    public PagedKvCache(KvCacheOptions options)
        : this(options, hasher: null)
    {
    }

    internal PagedKvCache(KvCacheOptions options, BlockHasher? hasher)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.NumBlocks);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.BlockSize);
        ArgumentOutOfRangeException.ThrowIfNegative(options.MaxTokensPerSequence);
        _blockSize = options.BlockSize;
        _blocks = new BlockAllocator(options.NumBlocks);
        _prefix = options.EnablePrefixCaching ? new PrefixCache(options.NumBlocks, hasher) : null;
        _maxTokensPerSequence = options.MaxTokensPerSequence == 0 ? options.NumBlocks * _blockSize : options.MaxTokensPerSequence;
        _maxBlocksPerSequence = (_maxTokensPerSequence + _blockSize - 1) / _blockSize;
        _slotTokens = new int[options.NumBlocks * _blockSize];
        _fill = new int[options.NumBlocks];
        _generations = new int[options.NumBlocks];
        _scratch = new int[_maxBlocksPerSequence];
        // Each copy-on-write consumes a fresh block, so a step can never record more copies than there are blocks.
        _copies = new BlockCopy[options.NumBlocks];
    }

    public int BlockSize => _blockSize;

    public int TotalBlocks => _blocks.TotalBlocks;

    // The longest sequence a block table can hold (KvCacheOptions.MaxTokensPerSequence, or the whole cache).
    public int MaxTokensPerSequence => _maxTokensPerSequence;

    // Blocks an admission can count on: free ones plus cached ones that would be evicted.
    public int AvailableBlocks => _blocks.FreeCount + _blocks.EvictableCount;

    public int SequenceCount => _sequences.Count;

    public ReadOnlySpan<BlockCopy> PendingCopies => _copies.AsSpan(0, _copyCount);

    // The kernel calls this once it has performed PendingCopies.
    public void ClearPendingCopies() => _copyCount = 0;

    public bool Contains(long sequenceId) => _sequences.ContainsKey(sequenceId);

    public ReadOnlySpan<int> GetBlockTable(long sequenceId)
    {
        var seq = Get(sequenceId);
        return seq.Blocks.AsSpan(0, seq.BlockCount);
    }

    public int GetLength(long sequenceId) => Get(sequenceId).Length;

    public int RefCount(int block) => _blocks.RefCount(block);

    // New blocks this prompt would take after reusing its cached prefix, counting cached hits that are now evictable
    // (reusing them takes them out of the evictable pool); -1 when it exceeds the per-sequence limit.
    public int BlocksNeeded(ReadOnlySpan<int> prompt)
    {
        if (prompt.Length > _maxTokensPerSequence)
        {
            return -1;
        }
        var hits = MatchPrefix(prompt, _scratch, out var reclaimed);
        return BlocksFor(prompt.Length) - hits + reclaimed;
    }

    public bool CanAllocate(ReadOnlySpan<int> prompt)
    {
        var needed = BlocksNeeded(prompt);
        return needed >= 0 && needed <= AvailableBlocks;
    }

    public bool CanAppend(long sequenceId, int tokenCount)
    {
        var seq = Get(sequenceId);
        return seq.Length + tokenCount <= _maxTokensPerSequence && BlocksToAppend(seq, tokenCount) <= AvailableBlocks;
    }

    // Admits a sequence. slotMapping receives the slots of the prompt tokens that must be computed (those after the
    // reused prefix); cachedTokens says how many leading tokens already have K/V. Returns false, changing nothing,
    // when the blocks are not there.
    public bool TryAddSequence(long sequenceId, ReadOnlySpan<int> prompt, Span<int> slotMapping, out int cachedTokens) =>
        TryAddSequence(sequenceId, prompt, int.MaxValue, slotMapping, out cachedTokens);

    // Chunked prefill: admits a sequence with the longest cached prefix of the whole prompt but writes only the next
    // min(maxTokens, uncached) tokens after it (their slots to slotMapping); the caller appends the rest with TryAppend
    // chunk by chunk. A full block is registered for prefix reuse as its tokens are written, so a caller that writes
    // only what its next forward pass computes never exposes a block whose K/V is not being written.
    public bool TryAddSequence(long sequenceId, ReadOnlySpan<int> prompt, int maxTokens, Span<int> slotMapping, out int cachedTokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxTokens);
        if (_sequences.ContainsKey(sequenceId))
        {
            throw new ArgumentException($"Sequence {sequenceId} is already in the KV cache.", nameof(sequenceId));
        }
        cachedTokens = 0;
        if (prompt.Length > _maxTokensPerSequence)
        {
            _allocationFailures++;
            return false;
        }
        var seq = Rent();
        var hits = MatchPrefix(prompt, seq.Blocks, out var reclaimed);
        var written = Math.Min(maxTokens, prompt.Length - (hits * _blockSize));
        var needed = BlocksFor((hits * _blockSize) + written) - hits + reclaimed;
        if (needed > AvailableBlocks)
        {
            _sequencePool.Push(seq);
            _allocationFailures++;
            return false;
        }
        if (slotMapping.Length < written)
        {
            _sequencePool.Push(seq);
            throw new ArgumentException("The slot mapping is shorter than the tokens to write.", nameof(slotMapping));
        }
        for (var i = 0; i < hits; i++)
        {
            var block = seq.Blocks[i];
            if (_blocks.State(block) == BlockAllocator.BlockState.Evictable)
            {
                _blocks.Reclaim(block);
                _liveTokens += _fill[block];
            }
            else
            {
                _blocks.IncRef(block);
            }
        }
        seq.BlockCount = hits;
        seq.Length = hits * _blockSize;
        cachedTokens = seq.Length;
        if (_prefix is not null)
        {
            _prefixLookups++;
            _prefixQueryBlocks += prompt.Length / _blockSize;
            _prefixHitBlocks += hits;
            _prefixQueryTokens += prompt.Length;
            _prefixHitTokens += cachedTokens;
        }
        _sequences.Add(sequenceId, seq);
        WriteTokens(seq, prompt.Slice(cachedTokens, written), slotMapping);
        return true;
    }

    // Appends tokens (a decode step's one, or a chunk), writing their slots to slotMapping. Returns false, changing
    // nothing, when the blocks are not there; the scheduler then preempts or waits.
    public bool TryAppend(long sequenceId, ReadOnlySpan<int> tokens, Span<int> slotMapping)
    {
        var seq = Get(sequenceId);
        if (slotMapping.Length < tokens.Length)
        {
            throw new ArgumentException("The slot mapping is shorter than the tokens.", nameof(slotMapping));
        }
        if (seq.Length + tokens.Length > _maxTokensPerSequence || BlocksToAppend(seq, tokens.Length) > AvailableBlocks)
        {
            _allocationFailures++;
            return false;
        }
        if (NeedsCopyOnWrite(seq, tokens.Length))
        {
            var last = seq.BlockCount - 1;
            var source = seq.Blocks[last];
            var destination = Allocate();
            _slotTokens.AsSpan(source * _blockSize, _fill[source]).CopyTo(_slotTokens.AsSpan(destination * _blockSize));
            _fill[destination] = _fill[source];
            _liveTokens += _fill[destination];
            // The source stays referenced by the other sharers (its count was above one), so this never frees it.
            _blocks.DecRef(source);
            seq.Blocks[last] = destination;
            _copies[_copyCount++] = new BlockCopy(source, destination);
            _copyOnWrites++;
        }
        WriteTokens(seq, tokens, slotMapping);
        return true;
    }

    // Beam search / parallel sampling: the child shares every block; the first write to a shared partial block copies it.
    public void Fork(long parentId, long childId)
    {
        var parent = Get(parentId);
        if (_sequences.ContainsKey(childId))
        {
            throw new ArgumentException($"Sequence {childId} is already in the KV cache.", nameof(childId));
        }
        var child = Rent();
        parent.Blocks.AsSpan(0, parent.BlockCount).CopyTo(child.Blocks);
        child.BlockCount = parent.BlockCount;
        child.Length = parent.Length;
        for (var i = 0; i < child.BlockCount; i++)
        {
            _blocks.IncRef(child.Blocks[i]);
        }
        _sequences.Add(childId, child);
    }

    // Drops the sequence's references. Last-block-first, so with LRU eviction a cached sequence loses its tail before
    // its head (the head is the prefix other requests are likelier to share). False when the id is unknown.
    public bool Free(long sequenceId)
    {
        if (!_sequences.Remove(sequenceId, out var seq))
        {
            return false;
        }
        for (var i = seq.BlockCount - 1; i >= 0; i--)
        {
            var block = seq.Blocks[i];
            if (_blocks.DecRef(block) > 0)
            {
                continue;
            }
            _liveTokens -= _fill[block];
            if (_prefix is not null && _prefix.IsIndexed(block))
            {
                _blocks.PushEvictable(block);
            }
            else
            {
                _fill[block] = 0;
                _blocks.PushFree(block);
            }
        }
        seq.BlockCount = 0;
        seq.Length = 0;
        _sequencePool.Push(seq);
        return true;
    }

    public KvCacheMetrics GetMetrics()
    {
        var used = _blocks.UsedCount;
        return new KvCacheMetrics
        {
            BlockSize = _blockSize,
            TotalBlocks = _blocks.TotalBlocks,
            UsedBlocks = used,
            FreeBlocks = _blocks.FreeCount,
            CachedEvictableBlocks = _blocks.EvictableCount,
            LiveTokens = _liveTokens,
            Utilization = used == 0 ? 0 : (double)_liveTokens / ((long)used * _blockSize),
            PrefixLookups = _prefixLookups,
            PrefixQueryBlocks = _prefixQueryBlocks,
            PrefixHitBlocks = _prefixHitBlocks,
            PrefixQueryTokens = _prefixQueryTokens,
            PrefixHitTokens = _prefixHitTokens,
            PrefixHitRate = _prefixQueryTokens == 0 ? 0 : (double)_prefixHitTokens / _prefixQueryTokens,
            Evictions = _evictions,
            CopyOnWriteCopies = _copyOnWrites,
            AllocationFailures = _allocationFailures,
        };
    }

    private int BlocksFor(int tokens) => (tokens + _blockSize - 1) / _blockSize;

    private bool NeedsCopyOnWrite(Sequence seq, int tokenCount) =>
        tokenCount > 0 && seq.Length % _blockSize != 0 && _blocks.RefCount(seq.Blocks[seq.BlockCount - 1]) > 1;

    private int BlocksToAppend(Sequence seq, int tokenCount) =>
        BlocksFor(seq.Length + tokenCount) - seq.BlockCount + (NeedsCopyOnWrite(seq, tokenCount) ? 1 : 0);

    // Longest run of leading full blocks found in the prefix index with matching tokens, written to blocks. At most
    // (length - 1) / BlockSize blocks: the last prompt token is always computed (its logits start decoding), and
    // stopping short of it means a cached block is never written to.
    private int MatchPrefix(ReadOnlySpan<int> prompt, Span<int> blocks, out int reclaimed)
    {
        reclaimed = 0;
        if (_prefix is null || prompt.Length == 0)
        {
            return 0;
        }
        var maxHits = (prompt.Length - 1) / _blockSize;
        var parentHash = PrefixCache.RootHash;
        var parentBlock = BlockAllocator.None;
        var parentGeneration = 0;
        var hits = 0;
        while (hits < maxHits)
        {
            var tokens = prompt.Slice(hits * _blockSize, _blockSize);
            var hash = _prefix.Compute(parentHash, tokens);
            if (!_prefix.TryFind(hash, parentBlock, parentGeneration, out var block)
                || !_slotTokens.AsSpan(block * _blockSize, _blockSize).SequenceEqual(tokens))
            {
                break;
            }
            if (_blocks.State(block) == BlockAllocator.BlockState.Evictable)
            {
                reclaimed++;
            }
            blocks[hits++] = block;
            parentHash = hash;
            parentBlock = block;
            parentGeneration = _generations[block];
        }
        return hits;
    }

    private void WriteTokens(Sequence seq, ReadOnlySpan<int> tokens, Span<int> slotMapping)
    {
        for (var i = 0; i < tokens.Length; i++)
        {
            var offset = seq.Length % _blockSize;
            if (offset == 0)
            {
                seq.Blocks[seq.BlockCount++] = Allocate();
            }
            var block = seq.Blocks[seq.BlockCount - 1];
            var slot = (block * _blockSize) + offset;
            _slotTokens[slot] = tokens[i];
            _fill[block]++;
            _liveTokens++;
            seq.Length++;
            slotMapping[i] = slot;
            if (offset == _blockSize - 1)
            {
                RegisterFull(seq, seq.BlockCount - 1);
            }
        }
    }

    private void RegisterFull(Sequence seq, int index)
    {
        if (_prefix is null)
        {
            return;
        }
        var block = seq.Blocks[index];
        var parentBlock = index == 0 ? BlockAllocator.None : seq.Blocks[index - 1];
        var parentHash = index == 0 ? PrefixCache.RootHash : _prefix.HashOf(parentBlock);
        var parentGeneration = index == 0 ? 0 : _generations[parentBlock];
        var hash = _prefix.Compute(parentHash, _slotTokens.AsSpan(block * _blockSize, _blockSize));
        _prefix.Register(block, hash, parentBlock, parentGeneration);
    }

    // Callers have checked AvailableBlocks, so one of the two sources always has a block.
    private int Allocate()
    {
        if (!_blocks.TryPopFree(out var block))
        {
            if (!_blocks.TryPopLeastRecentlyUsed(out block))
            {
                throw new InvalidOperationException("KV cache allocation without a prior availability check.");
            }
            _prefix?.Remove(block);
            _evictions++;
        }
        _fill[block] = 0;
        _generations[block]++;
        return block;
    }

    private Sequence Get(long sequenceId) =>
        _sequences.TryGetValue(sequenceId, out var seq)
            ? seq
            : throw new KeyNotFoundException($"Sequence {sequenceId} is not in the KV cache.");

    private Sequence Rent() => _sequencePool.TryPop(out var seq) ? seq : new Sequence(_maxBlocksPerSequence);

    // Checks every structural invariant from scratch; test-only (it allocates). Returns null when all hold.
    internal string? CheckInvariants()
    {
        var refs = new int[_blocks.TotalBlocks];
        foreach (var (id, seq) in _sequences)
        {
            if (seq.BlockCount != BlocksFor(seq.Length))
            {
                return $"sequence {id}: {seq.BlockCount} blocks for {seq.Length} tokens";
            }
            for (var i = 0; i < seq.BlockCount; i++)
            {
                refs[seq.Blocks[i]]++;
            }
        }
        long live = 0;
        int free = 0, used = 0, evictable = 0;
        for (var b = 0; b < refs.Length; b++)
        {
            if (_blocks.RefCount(b) != refs[b])
            {
                return $"block {b}: ref count {_blocks.RefCount(b)} but {refs[b]} table references";
            }
            var indexed = _prefix?.IsIndexed(b) ?? false;
            switch (_blocks.State(b))
            {
                case BlockAllocator.BlockState.Free when refs[b] != 0 || indexed:
                    return $"block {b}: free but referenced or indexed";
                case BlockAllocator.BlockState.Evictable when refs[b] != 0 || !indexed || _fill[b] != _blockSize:
                    return $"block {b}: evictable but referenced, unindexed or not full";
                case BlockAllocator.BlockState.Used when refs[b] == 0:
                    return $"block {b}: used without references";
                case BlockAllocator.BlockState.Free:
                    free++;
                    break;
                case BlockAllocator.BlockState.Evictable:
                    evictable++;
                    break;
                default:
                    used++;
                    live += _fill[b];
                    break;
            }
            if (indexed && (_fill[b] != _blockSize || !_prefix!.IndexPointsAt(_prefix.HashOf(b), b)))
            {
                return $"block {b}: indexed but not full or not the index's entry";
            }
        }
        if (free != _blocks.FreeCount || evictable != _blocks.EvictableCount || free + used + evictable != _blocks.TotalBlocks)
        {
            return $"counts: free {free}/{_blocks.FreeCount}, evictable {evictable}/{_blocks.EvictableCount}, used {used}";
        }
        var lruLength = 0;
        for (var b = _blocks.LruHead; b != BlockAllocator.None; b = _blocks.LruNext(b))
        {
            lruLength++;
        }
        if (lruLength != evictable)
        {
            return $"LRU list holds {lruLength} blocks, {evictable} evictable";
        }
        if (_prefix is not null && _prefix.Count != CountIndexed())
        {
            return "prefix index size differs from indexed blocks";
        }
        return live != _liveTokens ? $"live tokens {_liveTokens}, recount {live}" : null;
    }

    // The token ids a sequence's block table reads back, in order; test-only (it allocates).
    internal int[] ReadTokens(long sequenceId)
    {
        var seq = Get(sequenceId);
        var tokens = new int[seq.Length];
        for (var i = 0; i < seq.Length; i++)
        {
            tokens[i] = _slotTokens[(seq.Blocks[i / _blockSize] * _blockSize) + (i % _blockSize)];
        }
        return tokens;
    }

    // Coldest first; for tests and diagnostics.
    internal List<int> EvictionOrder()
    {
        var order = new List<int>();
        for (var b = _blocks.LruHead; b != BlockAllocator.None; b = _blocks.LruNext(b))
        {
            order.Add(b);
        }
        return order;
    }

    private int CountIndexed()
    {
        var n = 0;
        for (var b = 0; b < _blocks.TotalBlocks; b++)
        {
            if (_prefix!.IsIndexed(b))
            {
                n++;
            }
        }
        return n;
    }

    private sealed class Sequence(int capacity)
    {
        public readonly int[] Blocks = new int[capacity];
        public int BlockCount;
        public int Length;
    }
}
