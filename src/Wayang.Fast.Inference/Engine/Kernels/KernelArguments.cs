namespace Wayang.Fast.Inference.Engine.Kernels;

// The host-side checks every IKernels backend makes before it runs a kernel unchecked: one copy, so the CPU and
// ILGPU backends refuse exactly the same calls.
internal static class KernelArguments
{
    public static void RequireLength(long actual, long required, string name)
    {
        if (actual < required)
            throw new ArgumentException($"needs {required} elements, has {actual}", name);
    }

    // Y[batch x rows] = X[batch x cols] W^T.
    public static void CheckMatMul(long weightsLength, long xLength, long yLength, int batch, int rows, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        RequireLength(weightsLength, (long)rows * cols, "weights");
        RequireLength(xLength, (long)batch * cols, "x");
        RequireLength(yLength, (long)batch * rows, "y");
    }

    // Rope over x[tokens, numHeads, headDim], the first ropeDim (even) dims of each head.
    public static void CheckRope(long xLength, int tokens, int numHeads, int headDim, int ropeDim)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(ropeDim, headDim);
        if ((ropeDim & 1) != 0)
            throw new ArgumentOutOfRangeException(nameof(ropeDim), ropeDim, "rope dimension must be even");
        RequireLength(xLength, (long)tokens * numHeads * headDim, "x");
    }

    // One [NumKvHeads, HeadDim] row per slot; every slot inside the cache (negative slots are padding, skipped).
    public static void CheckAppendKv(long keyCacheLength, long valueCacheLength, long keysLength, long valuesLength, ReadOnlySpan<int> slotMapping, KvLayout layout)
    {
        RequireLength(keysLength, (long)slotMapping.Length * layout.SlotStride, "keys");
        RequireLength(valuesLength, (long)slotMapping.Length * layout.SlotStride, "values");
        var slots = Math.Min(keyCacheLength, valueCacheLength) / layout.BlockStride * layout.BlockSize;
        foreach (var slot in slotMapping)
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(slot, slots, nameof(slotMapping));
    }

    // Shapes of a paged decode-attention call, and every block a sequence will read inside the cache.
    public static void CheckPagedAttention(long queriesLength, long outputLength, long keyCacheLength, long valueCacheLength,
        ReadOnlySpan<int> blockTables, int maxBlocksPerSequence, ReadOnlySpan<int> sequenceLengths, int numHeads, KvLayout layout)
    {
        var sequences = sequenceLengths.Length;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(layout.NumKvHeads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(layout.BlockSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(layout.HeadDim);
        if (numHeads <= 0 || numHeads % layout.NumKvHeads != 0)
            throw new ArgumentOutOfRangeException(nameof(numHeads), numHeads, "heads must be a positive multiple of the kv heads");
        RequireLength(queriesLength, (long)sequences * numHeads * layout.HeadDim, "queries");
        RequireLength(outputLength, (long)sequences * numHeads * layout.HeadDim, "output");
        RequireLength(blockTables.Length, (long)sequences * maxBlocksPerSequence, nameof(blockTables));
        var cacheBlocks = Math.Min(keyCacheLength, valueCacheLength) / layout.BlockStride;
        for (var s = 0; s < sequences; s++)
        {
            var length = sequenceLengths[s];
            var used = (length + layout.BlockSize - 1) / layout.BlockSize;
            if (length < 0 || used > maxBlocksPerSequence)
                throw new ArgumentOutOfRangeException(nameof(sequenceLengths), length, "sequence longer than its block table");
            foreach (var block in blockTables.Slice(s * maxBlocksPerSequence, used))
            {
                if ((uint)block >= (ulong)cacheBlocks)
                    throw new ArgumentOutOfRangeException(nameof(blockTables), block, "block outside the cache");
            }
        }
    }
}
