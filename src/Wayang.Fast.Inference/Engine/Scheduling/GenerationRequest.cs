using Wayang.Fast.Inference.Engine.Sampling;

namespace Wayang.Fast.Inference.Engine.Scheduling;

public sealed class GenerationRequest
{
    public required IReadOnlyList<int> PromptTokens { get; init; }

    public required int MaxTokens { get; init; }

    public SamplerOptions Sampler { get; init; } = new();

    // Higher runs first: admitted before lower, preempted after lower. Equal priorities go by arrival.
    public int Priority { get; init; }

    public CancellationToken CancellationToken { get; init; }
}
