namespace Wayang.Fast.Inference.Engine.Sampling;

public sealed record SamplerOptions
{
    // 0 (or below) is greedy decoding.
    public float Temperature { get; init; } = 1f;

    // 0 keeps the whole vocabulary.
    public int TopK { get; init; }

    // 1 keeps the whole distribution.
    public float TopP { get; init; } = 1f;

    // The same seed gives the same draws for the same logits; null seeds from the shared random source.
    public ulong? Seed { get; init; }
}
