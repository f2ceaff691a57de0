namespace Wayang.Fast.Inference.Engine.KvCache;

public sealed class KvCacheOptions
{
    public required int NumBlocks { get; init; }

    // 16 tokens per block is vLLM's default: small enough that the partial last block wastes little, large enough
    // that block tables stay short.
    public int BlockSize { get; init; } = 16;

    // Sizes each sequence's block table up front so appends never grow it; 0 means NumBlocks * BlockSize.
    public int MaxTokensPerSequence { get; init; }

    public bool EnablePrefixCaching { get; init; } = true;
}
