namespace Wayang.Fast.Inference.Engine.Gguf;

// The shape of a llama-architecture model, from the llama.* keys; defaults follow llama.cpp's.
public sealed record LlamaHyperParameters
{
    public required int ContextLength { get; init; }
    public required int EmbeddingLength { get; init; }
    public required int BlockCount { get; init; }
    public required int FeedForwardLength { get; init; }
    public required int HeadCount { get; init; }
    public required int HeadCountKv { get; init; }
    public required float RmsNormEpsilon { get; init; }
    public required float RopeFreqBase { get; init; }
    public required int RopeDimensionCount { get; init; }
    public required int VocabSize { get; init; }
    public int HeadDim => EmbeddingLength / HeadCount;

    public static LlamaHyperParameters From(GgufFile file)
    {
        string arch = file.Architecture;
        if (arch != "llama")
            throw GgufErrors.Invalid(file.Path, $"architecture '{arch}' is not supported; only 'llama' is");

        int headCount = Int(file, "llama.attention.head_count");
        int embedding = Int(file, "llama.embedding_length");
        if (headCount <= 0 || embedding % headCount != 0)
            throw GgufErrors.Invalid(file.Path, $"llama.embedding_length {embedding} does not divide into llama.attention.head_count {headCount} heads");
        int headCountKv = file.Has("llama.attention.head_count_kv") ? Int(file, "llama.attention.head_count_kv") : headCount;
        if (headCountKv <= 0 || headCount % headCountKv != 0)
            throw GgufErrors.Invalid(file.Path, $"llama.attention.head_count {headCount} is not a multiple of llama.attention.head_count_kv {headCountKv}");

        return new LlamaHyperParameters
        {
            ContextLength = Int(file, "llama.context_length"),
            EmbeddingLength = embedding,
            BlockCount = Int(file, "llama.block_count"),
            FeedForwardLength = Int(file, "llama.feed_forward_length"),
            HeadCount = headCount,
            HeadCountKv = headCountKv,
            RmsNormEpsilon = file.GetSingle("llama.attention.layer_norm_rms_epsilon"),
            RopeFreqBase = file.GetSingle("llama.rope.freq_base", 10000f),
            RopeDimensionCount = file.Has("llama.rope.dimension_count") ? Int(file, "llama.rope.dimension_count") : embedding / headCount,
            VocabSize = checked((int)file.GetArrayLength("tokenizer.ggml.tokens")),
        };
    }

    private static int Int(GgufFile file, string key)
    {
        uint v = file.GetUInt32(key);
        return v <= int.MaxValue ? (int)v : throw GgufErrors.Invalid(file.Path, $"metadata key '{key}' value {v} is too large");
    }
}
