using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Wayang.Fast.Inference.Tests.Gguf;

public sealed class TinyGgufTests
{
    [Fact]
    public void The_tiny_model_loads_in_llama_cpp_and_round_trips_hello_world()
    {
        using var dir = new TempDirectory("gguf");
        string path = TinyGgufWriter.Write(Path.Combine(dir.Path, "tiny.gguf"));
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(path) { ContextSize = 64, GpuLayerCount = 0 });

        Assert.Equal(TinyGgufWriter.VocabSize, weights.NativeHandle.Vocab.Count);
        var tokens = weights.Tokenize("hello world", add_bos: true, special: false, Encoding.UTF8);
        // BOS, then the merged pieces "▁hello" and "▁world": the SentencePiece merges reach whole words.
        Assert.Equal(3, tokens.Length);
        Assert.Equal(TinyGgufWriter.BosId, (int)tokens[0]);

        var decoder = new StreamingTokenDecoder(Encoding.UTF8, weights);
        decoder.AddRange(tokens.Skip(1));
        Assert.Equal("hello world", decoder.Read().TrimStart());
    }

    [Fact]
    public void A_grouped_query_attention_variant_loads_and_decodes()
    {
        using var dir = new TempDirectory("gguf");
        string path = TinyGgufWriter.Write(Path.Combine(dir.Path, "gqa.gguf"), new TinyGgufOptions { HeadCountKv = 2, ContextLength = 128, Seed = 7 });
        var parameters = new ModelParams(path) { ContextSize = 64, GpuLayerCount = 0 };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        Assert.Equal(128, weights.ContextSize);
        using var context = weights.CreateContext(parameters);
        var tokens = context.Tokenize("hello world the", addBos: true, special: false);
        var batch = new LLamaBatch();
        for (int i = 0; i < tokens.Length; i++)
            batch.Add(tokens[i], i, LLamaSeqId.Zero, i == tokens.Length - 1);
        Assert.Equal(DecodeResult.Ok, context.NativeHandle.Decode(batch));
        var logits = context.NativeHandle.GetLogitsIth(tokens.Length - 1);
        Assert.Equal(TinyGgufWriter.VocabSize, logits.Length);
        Assert.All(logits.ToArray(), l => Assert.True(float.IsFinite(l)));
    }

    [Fact]
    public void Only_this_platforms_llama_cpp_natives_are_in_the_output()
    {
        // Wayang.Fast.Inference.csproj keeps one RID's natives of LLamaSharp.Backend.Cpu instead of all platforms'.
        string runtimes = Path.Combine(AppContext.BaseDirectory, "runtimes");
        var platforms = Directory.GetDirectories(runtimes).Select(Path.GetFileName).ToList();
        Assert.Single(platforms);
        Assert.NotEmpty(Directory.GetFiles(runtimes, "*llama*", SearchOption.AllDirectories));
    }
}
