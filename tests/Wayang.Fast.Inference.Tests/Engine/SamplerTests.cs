using Wayang.Fast.Inference.Adapters.LlamaCpp;
using Wayang.Fast.Inference.Engine.Sampling;
using Wayang.Fast.Inference.Engine.Tokenization;

namespace Wayang.Fast.Inference.Tests.Engine;

public sealed class SamplerTests
{
    [Fact]
    public void Greedy_picks_the_argmax_and_the_lowest_id_on_ties()
    {
        Assert.Equal(2, Sampler.Greedy([0.1f, -3f, 4f, 1f]));
        Assert.Equal(1, Sampler.Greedy([1f, 5f, 2f, 5f, 5f]));
    }

    [Fact]
    public void Temperature_zero_and_top_k_one_are_greedy()
    {
        float[] logits = [1f, 5f, 2f, 5f];
        var cold = new Sampler(logits.Length, new SamplerOptions { Temperature = 0f, Seed = 1 });
        var topOne = new Sampler(logits.Length, new SamplerOptions { Temperature = 1.5f, TopK = 1, Seed = 1 });
        for (int i = 0; i < 100; i++)
        {
            Assert.Equal(1, cold.Sample([.. logits]));
            Assert.Equal(1, topOne.Sample([.. logits]));
        }
    }

    [Theory]
    // Probabilities 0.5, 0.3, 0.15, 0.05 (ids 3, 0, 2, 1): p = 0.75 needs the best two, 0.85 the best three, and a
    // tiny p still keeps the best one.
    [InlineData(0.75f, new[] { 3, 0 })]
    [InlineData(0.85f, new[] { 3, 0, 2 })]
    [InlineData(0.01f, new[] { 3 })]
    [InlineData(1f, new[] { 3, 0, 2, 1 })]
    public void Top_p_keeps_the_smallest_set_that_reaches_p(float p, int[] kept)
    {
        float[] logits = [MathF.Log(0.3f), MathF.Log(0.05f), MathF.Log(0.15f), MathF.Log(0.5f)];
        var sampler = new Sampler(logits.Length, new SamplerOptions { TopP = p, Seed = 7 });
        var seen = new HashSet<int>();
        for (int i = 0; i < 5000; i++)
            seen.Add(sampler.Sample([.. logits]));
        Assert.Equal(kept.Order(), seen.Order());
    }

    [Fact]
    public void Top_k_keeps_the_k_best()
    {
        float[] logits = [0f, 3f, 1f, 2.9f, -1f, 2.95f];
        var sampler = new Sampler(logits.Length, new SamplerOptions { TopK = 3, Temperature = 5f, Seed = 3 });
        var seen = new HashSet<int>();
        for (int i = 0; i < 3000; i++)
            seen.Add(sampler.Sample([.. logits]));
        Assert.Equal([1, 3, 5], seen.Order());
    }

    [Fact]
    public void The_same_seed_gives_the_same_draws_and_another_seed_other_draws()
    {
        static int[] Draws(ulong seed)
        {
            var logits = new float[32];
            var sampler = new Sampler(logits.Length, new SamplerOptions { Temperature = 1f, TopK = 20, TopP = 0.95f, Seed = seed });
            var draws = new int[500];
            for (int i = 0; i < draws.Length; i++)
            {
                for (int j = 0; j < logits.Length; j++)
                    logits[j] = j % 7 * 0.1f;
                draws[i] = sampler.Sample(logits);
            }
            return draws;
        }

        Assert.Equal(Draws(42), Draws(42));
        Assert.NotEqual(Draws(42), Draws(43));
    }

    [Fact]
    public void Draws_follow_the_softmax_at_the_temperature()
    {
        float[] logits = [1f, 2f, 0.5f, 3f, -1f];
        const float temperature = 0.7f;
        const int n = 10_000;
        var sampler = new Sampler(logits.Length, new SamplerOptions { Temperature = temperature, Seed = 2024 });
        var counts = new int[logits.Length];
        for (int i = 0; i < n; i++)
            counts[sampler.Sample([.. logits])]++;

        double[] weights = [.. logits.Select(l => Math.Exp(l / temperature))];
        double total = weights.Sum();
        for (int i = 0; i < logits.Length; i++)
        {
            // Three standard deviations of a frequency over 10,000 draws is at most 0.015; the seed makes it exact anyway.
            Assert.InRange((double)counts[i] / n, weights[i] / total - 0.015, weights[i] / total + 0.015);
        }
    }

    [Fact]
    public void Sampling_allocates_nothing_per_token()
    {
        var logits = new float[4096];
        var sampler = new Sampler(logits.Length, new SamplerOptions { Temperature = 0.8f, TopK = 40, TopP = 0.9f, Seed = 5 });
        var rng = new Random(1);
        void Fill()
        {
            for (int j = 0; j < logits.Length; j++)
                logits[j] = (float)rng.NextDouble() * 10f;
        }
        Fill();
        sampler.Sample(logits);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 50; i++)
        {
            Fill();
            sampler.Sample(logits);
        }
        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }

    [Fact]
    public void A_stop_sequence_split_across_tokens_is_held_back_and_never_streamed()
    {
        var tokenizer = new GgufTokenizer(
            ["<unk>", "<s>", "</s>", "\u2581hello", "\u2581wor", "ld", "\u2581END", "ING"],
            [0f, 0f, 0f, -1f, -2f, -3f, -4f, -5f],
            [GgufTokenType.Unknown, GgufTokenType.Control, GgufTokenType.Control, .. Enumerable.Repeat(GgufTokenType.Normal, 5)],
            bosId: 1, eosId: 2, unknownId: 0);
        var decoder = tokenizer.CreateStreamingDecoder();
        var stops = new StopMatcher(["ld E"]);

        string[] emitted = [.. new[] { 3, 4, 5, 6, 7 }.Select(id => stops.Push(decoder.Push(id)))];

        Assert.Equal([" hello", " wor", "", "", ""], emitted);
        Assert.True(stops.Stopped);
        Assert.Equal("", stops.Flush());
    }
}
