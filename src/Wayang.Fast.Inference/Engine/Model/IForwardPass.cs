using Wayang.Fast.Inference.Engine.KvCache;

namespace Wayang.Fast.Inference.Engine.Model;

// What drives a forward pass (the scheduler, the tests), whatever backend it runs on: LlamaForward<TBuffer> implements
// it for the CPU (LlamaForward) and ILGPU. Arguments and results are host-side; see LlamaForward<TBuffer>.
public interface IForwardPass
{
    int VocabSize { get; }

    void Prefill(PagedKvCache cache, long sequenceId, ReadOnlySpan<int> tokens, ReadOnlySpan<int> slotMapping, int cachedTokens, Span<float> logits);

    void Decode(PagedKvCache cache, ReadOnlySpan<long> sequenceIds, ReadOnlySpan<int> tokens, ReadOnlySpan<int> slotMapping, Span<float> logits);

    void Forward(PagedKvCache cache, ReadOnlySpan<long> sequenceIds, ReadOnlySpan<int> tokens, ReadOnlySpan<int> positions,
        ReadOnlySpan<int> slotMapping, ReadOnlySpan<int> logitRows, Span<float> logits);
}
