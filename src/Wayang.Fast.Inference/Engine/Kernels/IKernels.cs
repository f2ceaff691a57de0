using Wayang.Fast.Inference.Engine.KvCache;

namespace Wayang.Fast.Inference.Engine.Kernels;

// Shape of one layer's paged K (or V) cache: a flat f32 buffer of numBlocks blocks, each laid out [NumKvHeads,
// BlockSize, HeadDim] as vLLM's is (head-major inside a block). One KV head's part of a block is then one contiguous
// run of BlockSize * HeadDim floats, so attention streams it (a token-major block would make every token's read of one
// head a separate stride of NumKvHeads * HeadDim floats, which defeats the hardware prefetcher). Token slot s is
// block s / BlockSize, row s % BlockSize, as PagedKvCache hands slots out.
public readonly record struct KvLayout(int BlockSize, int NumKvHeads, int HeadDim)
{
    // Floats of one token's K (or V) over all KV heads: what AppendKv reads per token.
    public int SlotStride => NumKvHeads * HeadDim;

    // Floats of one KV head's part of a block.
    public int HeadStride => BlockSize * HeadDim;

    public int BlockStride => BlockSize * SlotStride;

    // Where slot's row of kvHead starts.
    public long Offset(long slot, int kvHead) =>
        ((slot / BlockSize) * BlockStride) + ((long)kvHead * HeadStride) + ((slot % BlockSize) * HeadDim);
}

// The forward pass's kernels, generic over the device buffer so the same scheduler code drives the CPU
// (TBuffer = Memory<float>) and a GPU backend (an ILGPU ArrayView<float>). Tensors live in TBuffer as flat f32,
// row-major; bookkeeping (positions, slot mapping, block tables, lengths) is host-side int spans, which a GPU backend
// uploads once per step. Weights are [rows x cols] with cols contiguous, as GGUF's [ne1 x ne0] dequantizes.
// Calls are synchronous from the caller's point of view (a GPU backend may queue and sync at its own boundaries).
public interface IKernels<TBuffer>
    where TBuffer : struct
{
    // y[rows] = W[rows x cols] x[cols].
    void MatVec(TBuffer weights, TBuffer x, TBuffer y, int rows, int cols);

    // Y[batch x rows] = X[batch x cols] W^T: the prefill/batched-decode form of MatVec.
    void MatMul(TBuffer weights, TBuffer x, TBuffer y, int batch, int rows, int cols);

    // Per row of x[batch x dim]: y = x * weight / sqrt(mean(x^2) + eps). y may alias x.
    void RmsNorm(TBuffer x, TBuffer weight, TBuffer y, int batch, int dim, float eps);

    // y = silu(gate) * up over length elements (the SwiGLU feed-forward gate). y may alias either input.
    void SwiGlu(TBuffer gate, TBuffer up, TBuffer y, int length);

    // In place on x[tokens, numHeads, headDim]: llama.cpp's "normal" rope, pairs (2i, 2i+1) of the first ropeDim dims
    // of each head rotated by positions[token] * freqBase^(-2i/ropeDim).
    void Rope(TBuffer x, ReadOnlySpan<int> positions, int numHeads, int headDim, int ropeDim, float freqBase);

    // In place, numerically stable, per row of x[batch x length].
    void Softmax(TBuffer x, int batch, int length);

    // x += y over length elements (residual connections).
    void Add(TBuffer x, TBuffer y, int length);

    // vLLM's reshape_and_cache: keys/values [tokens, NumKvHeads, HeadDim] written at slotMapping[token].
    void AppendKv(TBuffer keyCache, TBuffer valueCache, TBuffer keys, TBuffer values, ReadOnlySpan<int> slotMapping, KvLayout layout);

    // Copy-on-write: every slot of each Source block copied to its Destination block, in K and V.
    void CopyBlocks(TBuffer keyCache, TBuffer valueCache, ReadOnlySpan<BlockCopy> copies, KvLayout layout);

    // Decode attention, one query token per sequence: queries/output [sequences, numHeads, HeadDim]; blockTables
    // [sequences x maxBlocksPerSequence] (padded, as vLLM passes them); sequenceLengths[s] tokens already in the
    // cache (including this step's). Grouped-query: head h reads kv head h / (numHeads / NumKvHeads). Scale 1/sqrt(HeadDim).
    void PagedAttentionDecode(
        TBuffer queries,
        TBuffer keyCache,
        TBuffer valueCache,
        TBuffer output,
        ReadOnlySpan<int> blockTables,
        int maxBlocksPerSequence,
        ReadOnlySpan<int> sequenceLengths,
        int numHeads,
        KvLayout layout);
}
