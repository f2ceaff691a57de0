using Wayang.Fast.Inference.Engine.KvCache;
using Wayang.Fast.Inference.Engine.Model;

namespace Wayang.Fast.Inference.Tests.Engine;

// One forward pass and its own paged KV cache bookkeeping, driven as a scheduler would: what the forward-pass tests
// (ForwardPassTests against llama.cpp, IlgpuForwardPassTests against the CPU backend) run their prompts through.
internal sealed class ForwardPassDriver(IForwardPass forward, int numBlocks, int blockSize, bool prefixCaching = true, IDisposable? owned = null) : IDisposable
{
    public IForwardPass Forward { get; } = forward;

    public PagedKvCache Cache { get; } = new(new KvCacheOptions { NumBlocks = numBlocks, BlockSize = blockSize, EnablePrefixCaching = prefixCaching });

    // The prompt tokens the last Prefill found in the prefix cache.
    public int LastCachedTokens { get; private set; }

    public float[] Prefill(long id, int[] prompt)
    {
        var slots = new int[prompt.Length];
        Assert.True(Cache.TryAddSequence(id, prompt, slots, out int cached));
        LastCachedTokens = cached;
        var logits = new float[Forward.VocabSize];
        Forward.Prefill(Cache, id, prompt.AsSpan(cached), slots.AsSpan(0, prompt.Length - cached), cached, logits);
        return logits;
    }

    public float[] Decode(long[] ids, int[] tokens)
    {
        var slots = new int[ids.Length];
        for (int i = 0; i < ids.Length; i++)
            Assert.True(Cache.TryAppend(ids[i], tokens.AsSpan(i, 1), slots.AsSpan(i, 1)));
        var logits = new float[ids.Length * Forward.VocabSize];
        Forward.Decode(Cache, ids, tokens, slots, logits);
        return logits;
    }

    // Frees what the driver was given to own (ForwardPassTests' engines own their CPU kernels).
    public void Dispose() => owned?.Dispose();

    // The largest error of actual against expected, each relative to max(|expected|, floor): logits near zero are
    // compared absolutely.
    public static float MaxRelativeError(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, float floor)
    {
        Assert.Equal(expected.Length, actual.Length);
        float max = 0;
        for (int i = 0; i < expected.Length; i++)
            max = Math.Max(max, Math.Abs(expected[i] - actual[i]) / Math.Max(Math.Abs(expected[i]), floor));
        return max;
    }
}
