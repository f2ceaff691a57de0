using System.Text;
using LLama;
using LLama.Common;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Engine.Gguf;
using Wayang.Fast.Inference.Engine.Tokenization;
using Wayang.Fast.Inference.Tests.Gguf;

namespace Wayang.Fast.Inference.Tests.Engine;

// One tiny model for the class: llama.cpp (through LLamaSharp's CPU backend) is the reference for every id.
public sealed class TinyTokenizerModel : IDisposable
{
    private readonly TempDirectory _dir = new("tokenizer");

    public TinyTokenizerModel()
    {
        string path = TinyGgufWriter.Write(Path.Combine(_dir.Path, "tiny.gguf"));
        using (var file = GgufFile.Open(path))
            Tokenizer = GgufTokenizer.FromGguf(file);
        Weights = LLamaWeights.LoadFromFile(new ModelParams(path) { ContextSize = 64, GpuLayerCount = 0 });
    }

    public GgufTokenizer Tokenizer { get; }
    public LLamaWeights Weights { get; }

    public void Dispose()
    {
        Weights.Dispose();
        _dir.Dispose();
    }
}

public sealed class TokenizerTests(TinyTokenizerModel model) : IClassFixture<TinyTokenizerModel>
{
    public static TheoryData<string> Texts =>
    [
        "hello world", "the hello", "", " leading space", "multi  spaces", "ünïcödé 世界 🎉", "tthhee", "hello\nworld",
    ];

    [Theory]
    [MemberData(nameof(Texts))]
    public void Encode_gives_llama_cpps_ids(string text)
    {
        foreach (bool addSpecial in new[] { true, false })
        {
            int[] expected = [.. model.Weights.Tokenize(text, addSpecial, special: false, Encoding.UTF8).Select(t => (int)t)];
            Assert.Equal(expected, model.Tokenizer.Encode(text, addSpecial));
        }
    }

    [Theory]
    [MemberData(nameof(Texts))]
    public void Decode_gives_llama_cpps_text_and_round_trips(string text)
    {
        var tokens = model.Weights.Tokenize(text, add_bos: true, special: false, Encoding.UTF8);
        var reference = new StreamingTokenDecoder(Encoding.UTF8, model.Weights);
        reference.AddRange(tokens);
        int[] ids = [.. tokens.Select(t => (int)t)];

        Assert.Equal(reference.Read(), model.Tokenizer.Decode(ids, stripPrefixSpace: false));
        Assert.Equal(text, model.Tokenizer.Decode(ids));
    }

    [Fact]
    public void The_metadata_gives_the_special_ids_and_flags()
    {
        var t = model.Tokenizer;
        Assert.Equal(TinyGgufWriter.VocabSize, t.VocabSize);
        Assert.Equal((TinyGgufWriter.BosId, TinyGgufWriter.EosId, 0), (t.BosId, t.EosId, t.UnknownId));
        Assert.True(t.AddBos);
        Assert.False(t.AddEos);
        Assert.True(t.AddSpacePrefix);
        Assert.Equal(GgufTokenType.Byte, t.TokenType(3));
        // "▁hello" and "▁world" are whole pieces, reached by merging their prefixes.
        Assert.Equal(["\u2581hello", "\u2581world"], model.Tokenizer.Encode("hello world", addSpecial: false).Select(t.TokenText));
    }

    [Fact]
    public void Streaming_decoding_of_an_emojis_byte_tokens_yields_it_once_whole()
    {
        int[] ids = model.Tokenizer.Encode("🎉", addSpecial: false);
        // "▁", then the four byte tokens of F0 9F 8E 89.
        Assert.Equal(["\u2581", "<0xF0>", "<0x9F>", "<0x8E>", "<0x89>"], ids.Select(model.Tokenizer.TokenText));

        var decoder = model.Tokenizer.CreateStreamingDecoder();
        string[] chunks = [.. ids.Select(decoder.Push)];
        Assert.Equal([" ", "", "", "", "🎉"], chunks);
        Assert.Equal("", decoder.Flush());
    }

    [Fact]
    public void A_truncated_character_at_the_end_becomes_a_replacement_character()
    {
        var decoder = model.Tokenizer.CreateStreamingDecoder();
        Assert.Equal("", decoder.Push(3 + 0xF0));
        Assert.Equal("\uFFFD", decoder.Flush());
    }

    [Fact]
    public void An_unsupported_tokenizer_model_is_refused()
    {
        using var dir = new TempDirectory("tokenizer");
        string path = TinyGgufWriter.Write(Path.Combine(dir.Path, "gpt2.gguf"), new TinyGgufOptions { TokenizerModel = "gpt2" });
        using var file = GgufFile.Open(path);
        var e = Assert.Throws<WayangException>(() => GgufTokenizer.FromGguf(file));
        Assert.Equal(ErrorCode.InvalidArgument, e.Error.Code);
        Assert.Contains("gpt2", e.Message, StringComparison.Ordinal);
    }
}
