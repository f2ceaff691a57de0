using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;
using Wayang.Fast.Inference.Engine.Kernels;
using Wayang.Fast.Inference.Engine.Model;
using Wayang.Fast.Inference.Engine.Sampling;
using Wayang.Fast.Inference.Tests.Gguf;
using Xunit.Abstractions;

namespace Wayang.Fast.Inference.Tests.Engine;

// The engine's oracle (issue 8): llama.cpp itself, through LLamaSharp's CPU backend, on the tiny model the tests write.
// llama.cpp runs with an f32 KV cache and no flash attention, so both sides compute in f32 and only summation order differs.
public sealed class ForwardPassTests(ITestOutputHelper output)
{
    // Relative error per logit against max(|expected|, floor): logits near zero are compared absolutely at floor * tolerance.
    private const float Tolerance = 1e-3f;
    private const float Floor = 0.1f;
    private const int GreedySteps = 32;
    private const int BlockSize = 4;
    private const string Prompt = "hello world, the quick brown fox: hello world";

    public static TheoryData<int> KvHeadCounts => [4, 2];

    [Theory]
    [MemberData(nameof(KvHeadCounts))]
    public void Logits_and_greedy_tokens_match_llama_cpp(int headCountKv)
    {
        using var dir = new TempDirectory("forward");
        string path = TinyGgufWriter.Write(Path.Combine(dir.Path, "tiny.gguf"), new TinyGgufOptions { HeadCountKv = headCountKv });
        using var weights = LLamaWeights.LoadFromFile(Parameters(path));
        using var context = weights.CreateContext(Parameters(path));
        int[] prompt = [.. weights.Tokenize(Prompt, add_bos: true, special: false, Encoding.UTF8).Select(t => (int)t)];
        Assert.True(prompt.Length > 2 * BlockSize, "the prompt should span several KV blocks");

        var batch = new LLamaBatch();
        for (int i = 0; i < prompt.Length; i++)
            batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Length - 1);
        Assert.Equal(DecodeResult.Ok, context.NativeHandle.Decode(batch));
        float[] expected = context.NativeHandle.GetLogitsIth(prompt.Length - 1).ToArray();

        using var engine = CreateEngine(path, numBlocks: 32);
        float[] actual = engine.Prefill(1, prompt);
        float error = MaxRelativeError(expected, actual);
        output.WriteLine($"head_count_kv {headCountKv}: prompt of {prompt.Length} tokens, max relative error {error:E2} (floor {Floor})");
        Assert.True(error <= Tolerance, $"max relative error {error} over {Tolerance}");

        var theirs = new List<int>();
        var ours = new List<int>();
        float worst = error;
        for (int step = 0; step < GreedySteps; step++)
        {
            int a = Sampler.Greedy(expected), b = Sampler.Greedy(actual);
            theirs.Add(a);
            ours.Add(b);
            batch.Clear();
            batch.Add(a, prompt.Length + step, LLamaSeqId.Zero, true);
            Assert.Equal(DecodeResult.Ok, context.NativeHandle.Decode(batch));
            expected = context.NativeHandle.GetLogitsIth(0).ToArray();
            actual = engine.Decode([1], [b]);
            worst = Math.Max(worst, MaxRelativeError(expected, actual));
        }
        output.WriteLine($"greedy: {string.Join(' ', ours)}; worst relative error over all steps {worst:E2}");
        Assert.Equal(theirs, ours);
        Assert.True(worst <= Tolerance, $"max relative error {worst} over {Tolerance} during decoding");
    }

    [Fact]
    public void Sequences_decoded_in_one_batch_give_the_logits_each_gives_alone()
    {
        using var dir = new TempDirectory("forward");
        string path = TinyGgufWriter.Write(Path.Combine(dir.Path, "tiny.gguf"), new TinyGgufOptions { HeadCountKv = 2 });
        int[] first = [1, 270, 250, 260, 271, 275, 200, 101, 273];
        int[] second = [1, 270, 271, 272];

        using var alone = CreateEngine(path, numBlocks: 32);
        alone.Prefill(1, first);
        alone.Prefill(2, second);
        using var batched = CreateEngine(path, numBlocks: 32);
        batched.Prefill(1, first);
        batched.Prefill(2, second);

        int[] next = [274, 76];
        for (int step = 0; step < 6; step++)
        {
            float[] one = alone.Decode([1], [next[0]]);
            float[] two = alone.Decode([2], [next[1]]);
            float[] both = batched.Decode([1, 2], next);
            AssertClose(one, both.AsSpan(0, one.Length));
            AssertClose(two, both.AsSpan(one.Length));
            next = [Sampler.Greedy(one), Sampler.Greedy(two)];
        }
    }

    [Fact]
    public void A_sequence_sharing_cached_prefix_blocks_gives_the_logits_it_gives_without_sharing()
    {
        using var dir = new TempDirectory("forward");
        string path = TinyGgufWriter.Write(Path.Combine(dir.Path, "tiny.gguf"), new TinyGgufOptions { HeadCountKv = 2 });
        int[] prompt = [1, 270, 250, 260, 271, 275, 200, 101, 273, 262, 199];

        using var plain = CreateEngine(path, numBlocks: 32, prefixCaching: false);
        float[] expected = plain.Prefill(7, prompt);
        using var shared = CreateEngine(path, numBlocks: 32, prefixCaching: true);
        shared.Prefill(1, prompt);
        float[] actual = shared.Prefill(2, prompt);

        // Two full blocks of the first sequence are reused; only the rest of the prompt is computed.
        Assert.Equal(2 * BlockSize, shared.LastCachedTokens);
        Assert.Equal(shared.Cache.GetBlockTable(1)[..2].ToArray(), shared.Cache.GetBlockTable(2)[..2].ToArray());
        AssertClose(expected, actual);

        AssertGreedyDecodesAgree(plain, 7, shared, 2, expected, steps: 6);
    }

    [Fact]
    public void The_paged_path_over_scattered_blocks_gives_the_logits_of_a_contiguous_cache()
    {
        using var dir = new TempDirectory("forward");
        string path = TinyGgufWriter.Write(Path.Combine(dir.Path, "tiny.gguf"), new TinyGgufOptions { HeadCountKv = 2 });
        int[] prompt = [1, 270, 250, 260, 271, 275, 200, 101, 273, 262, 199, 30, 41];

        // Contiguous: one block holds the whole sequence, so its K/V is one run in slot order.
        using var contiguous = CreateEngine(path, numBlocks: 2, prefixCaching: false, blockSize: 64);
        float[] expected = contiguous.Prefill(1, prompt);
        // Paged: 4-token blocks handed out between other sequences' blocks, some of them freed again, so the
        // sequence's blocks are scattered and out of order in the cache.
        using var paged = CreateEngine(path, numBlocks: 40, prefixCaching: false);
        paged.Prefill(10, [1, 5, 6, 7, 8, 9, 10, 11, 12]);
        paged.Prefill(11, [1, 20, 21, 22, 23]);
        paged.Cache.Free(10);
        paged.Prefill(12, [1, 30, 31]);
        float[] actual = paged.Prefill(1, prompt);
        var table = paged.Cache.GetBlockTable(1).ToArray();
        Assert.False(table.Zip(table.Skip(1)).All(p => p.Second == p.First + 1), $"blocks {string.Join(',', table)} are in order");
        AssertClose(expected, actual);

        AssertGreedyDecodesAgree(contiguous, 1, paged, 1, expected, steps: 8);
    }

    private static ModelParams Parameters(string path) => new(path)
    {
        ContextSize = 128,
        GpuLayerCount = 0,
        TypeK = GGMLType.GGML_TYPE_F32,
        TypeV = GGMLType.GGML_TYPE_F32,
        FlashAttention = false,
    };

    private static float MaxRelativeError(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual) =>
        ForwardPassDriver.MaxRelativeError(expected, actual, Floor);

    // Same engine, same weights: only the batch composition differs, which moves no arithmetic between rows.
    // Greedy decoding from the prefill's logits, step by step on both engines: each step's logits agree, and the next
    // token is the expected side's choice.
    private static void AssertGreedyDecodesAgree(ForwardPassDriver expected, long expectedSequence, ForwardPassDriver actual, long actualSequence,
        float[] prefillLogits, int steps)
    {
        int token = Sampler.Greedy(prefillLogits);
        for (int step = 0; step < steps; step++)
        {
            float[] want = expected.Decode([expectedSequence], [token]);
            float[] got = actual.Decode([actualSequence], [token]);
            AssertClose(want, got);
            token = Sampler.Greedy(want);
        }
    }

    private static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
    {
        float error = MaxRelativeError(expected, actual);
        Assert.True(error <= 1e-5f, $"max relative error {error}");
    }

    // Our side: model, forward pass and paged KV cache bookkeeping on CPU kernels of its own.
    private static ForwardPassDriver CreateEngine(string path, int numBlocks, bool prefixCaching = true, int blockSize = BlockSize)
    {
        var model = LlamaModel.Load(path);
        var kernels = new CpuKernels(2);
        return new ForwardPassDriver(new LlamaForward(model, kernels, numBlocks, blockSize), numBlocks, blockSize, prefixCaching, owned: kernels);
    }
}
