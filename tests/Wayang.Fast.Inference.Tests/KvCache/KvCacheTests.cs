using CsCheck;
using Wayang.Fast.Inference.Engine.KvCache;

namespace Wayang.Fast.Inference.Tests.KvCache;

public sealed class KvCacheTests
{
    private static PagedKvCache Cache(int blocks, int blockSize = 16, bool prefix = true) =>
        new(new KvCacheOptions { NumBlocks = blocks, BlockSize = blockSize, EnablePrefixCaching = prefix });

    private static int[] Tokens(int count, int start = 1) => Enumerable.Range(start, count).ToArray();

    private static int[] Add(PagedKvCache cache, long id, int[] prompt, out int cached)
    {
        var slots = new int[prompt.Length];
        Assert.True(cache.TryAddSequence(id, prompt, slots, out cached));
        Assert.Null(cache.CheckInvariants());
        return slots[..(prompt.Length - cached)];
    }

    private static int[] Append(PagedKvCache cache, long id, params int[] tokens)
    {
        var slots = new int[tokens.Length];
        Assert.True(cache.TryAppend(id, tokens, slots));
        Assert.Null(cache.CheckInvariants());
        return slots;
    }

    [Fact]
    public void Allocation_and_free_move_blocks_between_free_and_used()
    {
        var cache = Cache(8, prefix: false);
        Add(cache, 1, Tokens(40), out var cached);

        Assert.Equal(0, cached);
        Assert.Equal([0, 1, 2], cache.GetBlockTable(1).ToArray());
        var m = cache.GetMetrics();
        Assert.Equal((3, 5, 0), (m.UsedBlocks, m.FreeBlocks, m.CachedEvictableBlocks));
        Assert.Equal(40, m.LiveTokens);

        Assert.True(cache.Free(1));
        Assert.False(cache.Free(1));
        m = cache.GetMetrics();
        Assert.Equal((0, 8, 0L), (m.UsedBlocks, m.FreeBlocks, m.LiveTokens));
        Assert.Null(cache.CheckInvariants());
    }

    [Fact]
    public void Slot_mapping_crosses_block_boundaries_and_fills_the_partial_last_block()
    {
        var cache = Cache(8, prefix: false);
        var prompt = Add(cache, 1, Tokens(18), out _);

        Assert.Equal(Enumerable.Range(0, 18), prompt);
        Assert.Equal([18, 19], Append(cache, 1, 100, 101));
        Assert.Equal(Enumerable.Range(20, 12), Append(cache, 1, Tokens(12, 200)));
        // The sequence is now exactly two full blocks; the next token opens a third.
        Assert.Equal([32], Append(cache, 1, 300));
        Assert.Equal([0, 1, 2], cache.GetBlockTable(1).ToArray());
        Assert.Equal(33, cache.GetLength(1));
    }

    [Fact]
    public void Slot_mapping_follows_the_block_table_not_the_sequence_order()
    {
        var cache = Cache(8, prefix: false);
        Add(cache, 1, Tokens(3), out _);   // block 0
        Add(cache, 2, Tokens(3), out _);   // block 1
        Append(cache, 1, Tokens(14));      // fills block 0, opens block 2
        Assert.Equal([0, 2], cache.GetBlockTable(1).ToArray());
        Assert.Equal([33], Append(cache, 1, 7)); // block 2, offset 1
        Assert.Equal([19], Append(cache, 2, 7)); // block 1, offset 3
    }

    [Theory]
    [InlineData(5, 1)]
    [InlineData(5, 4)]
    [InlineData(5, 5)]
    [InlineData(5, 6)]
    [InlineData(5, 23)]
    [InlineData(3, 31)]
    [InlineData(1, 7)]
    public void Odd_block_sizes_map_every_token_to_block_times_size_plus_offset(int blockSize, int length)
    {
        var cache = Cache(64, blockSize, prefix: false);
        var slots = new List<int>(Add(cache, 1, Tokens(length), out _));
        for (var i = 0; i < 9; i++)
        {
            slots.AddRange(Append(cache, 1, 1000 + i));
        }
        var table = cache.GetBlockTable(1).ToArray();
        Assert.Equal((length + 9 + blockSize - 1) / blockSize, table.Length);
        for (var i = 0; i < slots.Count; i++)
        {
            Assert.Equal((table[i / blockSize] * blockSize) + (i % blockSize), slots[i]);
        }
        Assert.Equal(Tokens(length).Concat(Enumerable.Range(1000, 9)), cache.ReadTokens(1));
    }

    [Fact]
    public void Two_requests_with_a_common_three_block_prefix_share_those_blocks()
    {
        var cache = Cache(32);
        var shared = Tokens(48);
        Add(cache, 1, [.. shared, 500, 501, 502], out var first);
        var slots = Add(cache, 2, [.. shared, 600, 601], out var second);

        Assert.Equal(0, first);
        Assert.Equal(48, second);
        Assert.Equal(2, slots.Length); // only the tokens after the shared prefix are computed
        var a = cache.GetBlockTable(1).ToArray();
        var b = cache.GetBlockTable(2).ToArray();
        Assert.Equal(a[..3], b[..3]);
        Assert.NotEqual(a[3], b[3]);
        Assert.All(a[..3], block => Assert.Equal(2, cache.RefCount(block)));
        Assert.Equal(1, cache.RefCount(b[3]));

        var m = cache.GetMetrics();
        Assert.Equal((2L, 3L, 48L), (m.PrefixLookups, m.PrefixHitBlocks, m.PrefixHitTokens));
        Assert.Equal(6L, m.PrefixQueryBlocks);
        Assert.Equal(101L, m.PrefixQueryTokens);
        Assert.Equal(48.0 / 101, m.PrefixHitRate, 9);
        Assert.Equal(5, m.UsedBlocks);
    }

    [Fact]
    public void A_freed_prefix_stays_cached_and_is_reused_by_a_later_request()
    {
        var cache = Cache(16);
        Add(cache, 1, Tokens(40), out _);
        var blocks = cache.GetBlockTable(1).ToArray();
        cache.Free(1);
        var m = cache.GetMetrics();
        Assert.Equal((2, 14, 0), (m.CachedEvictableBlocks, m.FreeBlocks, m.UsedBlocks)); // the partial block is freed

        Add(cache, 2, Tokens(40), out var cached);
        Assert.Equal(32, cached);
        Assert.Equal(blocks[..2], cache.GetBlockTable(2)[..2].ToArray());
        Assert.Equal(0, cache.GetMetrics().CachedEvictableBlocks);
    }

    [Fact]
    public void A_prompt_of_exact_full_blocks_recomputes_its_last_block()
    {
        var cache = Cache(16);
        Add(cache, 1, Tokens(32), out _);
        var slots = Add(cache, 2, Tokens(32), out var cached);
        // The last prompt token must be computed for its logits, so the second block is not reused.
        Assert.Equal(16, cached);
        Assert.Equal(16, slots.Length);
    }

    [Fact]
    public void Writing_a_forked_sequences_shared_partial_block_copies_it_and_leaves_the_other_untouched()
    {
        var cache = Cache(8);
        Add(cache, 1, Tokens(20), out _);
        cache.Fork(1, 2);
        var shared = cache.GetBlockTable(1).ToArray();
        Assert.All(shared, block => Assert.Equal(2, cache.RefCount(block)));

        var slots = Append(cache, 2, 99);

        var child = cache.GetBlockTable(2).ToArray();
        Assert.Equal(shared[0], child[0]);
        Assert.NotEqual(shared[1], child[1]);
        Assert.Equal([new BlockCopy(shared[1], child[1])], cache.PendingCopies.ToArray());
        Assert.Equal([(child[1] * 16) + 4], slots);
        Assert.Equal(shared, cache.GetBlockTable(1).ToArray());
        Assert.Equal((2, 1, 1), (cache.RefCount(shared[0]), cache.RefCount(shared[1]), cache.RefCount(child[1])));
        Assert.Equal(Tokens(20), cache.ReadTokens(1));
        Assert.Equal([.. Tokens(20), 99], cache.ReadTokens(2));
        Assert.Equal(1, cache.GetMetrics().CopyOnWriteCopies);

        // The parent now owns its block alone: no second copy.
        Append(cache, 1, 77);
        Assert.Single(cache.PendingCopies.ToArray());
        cache.ClearPendingCopies();
        Assert.True(cache.PendingCopies.IsEmpty);
    }

    [Fact]
    public void A_fork_sharing_a_full_last_block_opens_a_new_block_without_copying()
    {
        var cache = Cache(8);
        Add(cache, 1, Tokens(16), out _);
        cache.Fork(1, 2);
        Append(cache, 2, 5);
        Assert.True(cache.PendingCopies.IsEmpty);
        Assert.Equal(2, cache.RefCount(cache.GetBlockTable(1)[0]));
    }

    [Fact]
    public void Unreferenced_cached_blocks_are_evicted_least_recently_used_first()
    {
        var cache = Cache(6, blockSize: 4);
        Add(cache, 1, Tokens(8, 100), out _); // blocks 0, 1 full
        Add(cache, 2, Tokens(8, 200), out _); // blocks 2, 3 full
        cache.Free(2);
        cache.Free(1);
        // Freed last-block-first, sequence 2 before sequence 1.
        Assert.Equal([3, 2, 1, 0], cache.EvictionOrder());

        Add(cache, 3, Tokens(12, 300), out _); // needs 3: the two free blocks, then the coldest cached one
        Assert.Equal([4, 5, 3], cache.GetBlockTable(3).ToArray());
        Assert.Equal([2, 1, 0], cache.EvictionOrder());
        Assert.Equal(1, cache.GetMetrics().Evictions);

        // Sequence 2's head is still cached; its evicted tail is not, and block 3 now holds other tokens.
        Add(cache, 4, [.. Tokens(8, 200), 1], out var cached);
        Assert.Equal(4, cached);
        // The reused head comes off the LRU list; the two new blocks evict sequence 1's tail, then its head.
        Assert.Equal([2, 1, 0], cache.GetBlockTable(4).ToArray());
        Assert.Empty(cache.EvictionOrder());
        Assert.Equal(3, cache.GetMetrics().Evictions);
    }

    [Fact]
    public void Running_out_of_blocks_is_reported_and_changes_nothing()
    {
        var cache = Cache(3, blockSize: 4);
        Add(cache, 1, Tokens(8), out _);
        cache.Fork(1, 2);
        Add(cache, 3, Tokens(3, 50), out _);
        var before = cache.GetMetrics();

        Assert.False(cache.CanAllocate(Tokens(5, 70)));
        Assert.False(cache.TryAddSequence(4, Tokens(5, 70), new int[5], out _));
        Assert.False(cache.Contains(4));
        Assert.False(cache.CanAppend(1, 1));
        Assert.False(cache.TryAppend(1, [1], new int[1]));
        Assert.True(cache.TryAppend(3, [1], new int[1])); // fills block 2: no new block needed
        Assert.False(cache.TryAppend(3, [2], new int[1]));

        var after = cache.GetMetrics();
        Assert.Equal(3, after.AllocationFailures);
        Assert.Equal((before.UsedBlocks, before.FreeBlocks, before.LiveTokens + 1), (after.UsedBlocks, after.FreeBlocks, after.LiveTokens));
        Assert.Equal(8, cache.GetLength(1));
        Assert.Null(cache.CheckInvariants());

        cache.Free(3);
        Assert.True(cache.CanAppend(1, 1));
        Append(cache, 1, 9);
    }

    [Fact]
    public void A_hash_collision_never_reuses_a_block_holding_other_tokens()
    {
        // Every block hashes the same: only the token comparison stands between a request and another's K/V.
        var cache = new PagedKvCache(new KvCacheOptions { NumBlocks = 16, BlockSize = 4 }, (_, _) => 42UL);
        Add(cache, 1, Tokens(9, 1), out _);
        Add(cache, 2, Tokens(9, 500), out var cached);

        Assert.Equal(0, cached);
        Assert.Empty(cache.GetBlockTable(1).ToArray().Intersect(cache.GetBlockTable(2).ToArray()));
        Assert.Equal(Tokens(9, 500), cache.ReadTokens(2));

        // Same tokens do hit the block that owns the index entry.
        Add(cache, 3, Tokens(9, 1), out cached);
        Assert.Equal(4, cached);
        Assert.Equal(cache.GetBlockTable(1)[0], cache.GetBlockTable(3)[0]);
    }

    [Fact]
    public void The_default_hash_chains_the_parent_so_equal_blocks_after_different_prefixes_differ()
    {
        int[] block = [7, 7, 7, 7];
        var root = PrefixCache.RootHash;
        var a = PrefixCache.Hash(root, [1, 2, 3, 4]);
        var b = PrefixCache.Hash(root, [1, 2, 3, 5]);
        Assert.NotEqual(a, b);
        Assert.NotEqual(
            PrefixCache.Hash(a, block),
            PrefixCache.Hash(b, block));

        var cache = Cache(16, blockSize: 4);
        Add(cache, 1, [1, 2, 3, 4, .. block, 0], out _);
        Add(cache, 2, [1, 2, 3, 5, .. block, 0], out var cached);
        Assert.Equal(0, cached);
    }

    [Fact]
    public void Long_sequences_with_block_size_16_waste_under_four_percent()
    {
        var cache = Cache(2048);
        var rng = new Random(7);
        for (var id = 0; id < 24; id++)
        {
            Add(cache, id, Tokens(rng.Next(200, 1200), id * 10_000), out _);
            for (var step = 0; step < 100; step++)
            {
                Append(cache, id, step);
            }
        }
        var m = cache.GetMetrics();
        var expected = (double)m.LiveTokens / (m.UsedBlocks * 16);
        Assert.Equal(expected, m.Utilization, 12);
        Assert.True(m.Utilization >= 0.96, $"utilization {m.Utilization:P2}");
    }

    [Fact]
    public void Any_sequence_of_operations_keeps_the_invariants()
    {
        Gen.Select(Gen.Int[0, 4], Gen.Int[0, 5], Gen.Int[0, 5], Gen.Int[0, 14]).Array[1, 80]
            .Sample(ops => Scenario.Run(ops), iter: 400);
    }

    private static class Scenario
    {
        public static void Run((int Op, int Id, int Other, int Size)[] ops)
        {
            // Small blocks and a small pool so sharing, copy-on-write, eviction and refusals all happen.
            var cache = Cache(10, blockSize: 3);
            var model = new Dictionary<long, List<int>>();
            var next = 1;
            foreach (var (op, id, other, size) in ops)
            {
                switch (op)
                {
                    case 0 when !model.ContainsKey(id):
                        // Prompts from three families share leading tokens, so prefixes hit.
                        var prompt = Enumerable.Range(0, size + 1).Select(i => i < 6 ? (other % 3 * 1000) + i : next++).ToArray();
                        if (cache.TryAddSequence(id, prompt, new int[prompt.Length], out _))
                        {
                            model[id] = [.. prompt];
                        }
                        break;
                    case 1 when model.TryGetValue(id, out var tokens):
                        var chunk = Enumerable.Range(0, (size % 4) + 1).Select(_ => next++).ToArray();
                        var ok = cache.CanAppend(id, chunk.Length);
                        Assert.Equal(ok, cache.TryAppend(id, chunk, new int[chunk.Length]));
                        if (ok)
                        {
                            tokens.AddRange(chunk);
                        }
                        break;
                    case 2 when model.TryGetValue(id, out var tokens) && !model.ContainsKey(other):
                        cache.Fork(id, other);
                        model[other] = [.. tokens];
                        break;
                    case 3:
                        Assert.Equal(model.Remove(id), cache.Free(id));
                        break;
                    case 4:
                        cache.ClearPendingCopies();
                        break;
                }
                Assert.Null(cache.CheckInvariants());
                foreach (var (seq, tokens) in model)
                {
                    Assert.Equal(tokens, cache.ReadTokens(seq));
                }
                var m = cache.GetMetrics();
                Assert.Equal(m.TotalBlocks, m.FreeBlocks + m.UsedBlocks + m.CachedEvictableBlocks);
            }
        }
    }
}
