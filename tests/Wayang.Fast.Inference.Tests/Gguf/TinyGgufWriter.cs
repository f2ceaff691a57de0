using System.Text;

namespace Wayang.Fast.Inference.Tests.Gguf;

// What the tiny model looks like. Defaults follow shared/notes/tiny-gguf-model.md; HeadCountKv below HeadCount gives
// grouped-query attention, which the engine work needs to exercise.
public sealed record TinyGgufOptions
{
    public int ContextLength { get; init; } = 256;
    public int Seed { get; init; } = 1234;
    public int EmbeddingLength { get; init; } = 64;
    public int BlockCount { get; init; } = 2;
    public int FeedForwardLength { get; init; } = 128;
    public int HeadCount { get; init; } = 4;
    public int HeadCountKv { get; init; } = 4;
    public float WeightStdDev { get; init; } = 0.08f;
    public string Name { get; init; } = "tiny-llama";
    // The type of the 2-D weight matrices; the 1-D norm weights stay F32, as llama.cpp's quantizer leaves them.
    public TinyTensorType WeightType { get; init; } = TinyTensorType.F32;
    // Another value (e.g. "gpt2") lets tests check that an unsupported tokenizer is refused.
    public string TokenizerModel { get; init; } = "llama";
}

// The ggml types the writer can store weights as, numbered as ggml numbers them.
public enum TinyTensorType : uint
{
    F32 = 0,
    F16 = 1,
    Q8_0 = 8,
}

// Writes a GGUF v3 llama model with random f32 weights and a SentencePiece-style vocabulary (unk, bos, eos, the 256
// byte tokens, a few normal pieces). No model can be downloaded here, and llama.cpp loads this in milliseconds, so
// every test builds its own.
public static class TinyGgufWriter
{
    public const int Alignment = 32;
    public const int BosId = 1;
    public const int EosId = 2;

    private const uint TypeU32 = 4;
    private const uint TypeI32 = 5;
    private const uint TypeF32 = 6;
    private const uint TypeBool = 7;
    private const uint TypeString = 8;
    private const uint TypeArray = 9;
    private const uint GgmlF32 = 0;
    public const int Q8BlockSize = 32;

    // Normal pieces after the byte tokens, with decreasing scores. The prefixes of "▁the", "▁hello" and "▁world" are there so
    // that SentencePiece merging (pairs whose concatenation is a piece) reaches the whole words.
    private static readonly string[] Pieces =
    [
        "\u2581", "\u2581t", "\u2581th", "\u2581the", "\u2581h", "\u2581he", "\u2581hel", "\u2581hell", "\u2581hello",
        "\u2581w", "\u2581wo", "\u2581wor", "\u2581worl", "\u2581world", "e", "t", "o", "l",
    ];

    public static int VocabSize => 3 + 256 + Pieces.Length;

    public static string Write(string path, TinyGgufOptions? options = null)
    {
        options ??= new TinyGgufOptions();
        if (options.EmbeddingLength % options.HeadCount != 0 || options.HeadCount % options.HeadCountKv != 0)
            throw new ArgumentException("The embedding length must divide by the head count, and the head count by the KV head count.", nameof(options));

        using var stream = File.Create(path);
        using var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        var tensors = Tensors(options);
        var (tokens, scores, types) = Vocabulary();
        int headDim = options.EmbeddingLength / options.HeadCount;

        var kv = new List<Action<BinaryWriter>>
        {
            KvString("general.architecture", "llama"),
            KvString("general.name", options.Name),
            KvU32("general.alignment", Alignment),
            // llama_ftype: 0 all F32, 1 mostly F16, 7 mostly Q8_0.
            KvU32("general.file_type", options.WeightType switch { TinyTensorType.F16 => 1u, TinyTensorType.Q8_0 => 7u, _ => 0u }),
            KvU32("llama.context_length", (uint)options.ContextLength),
            KvU32("llama.embedding_length", (uint)options.EmbeddingLength),
            KvU32("llama.block_count", (uint)options.BlockCount),
            KvU32("llama.feed_forward_length", (uint)options.FeedForwardLength),
            KvU32("llama.attention.head_count", (uint)options.HeadCount),
            KvU32("llama.attention.head_count_kv", (uint)options.HeadCountKv),
            KvF32("llama.attention.layer_norm_rms_epsilon", 1e-5f),
            KvU32("llama.rope.dimension_count", (uint)headDim),
            KvF32("llama.rope.freq_base", 10000f),
            KvU32("llama.vocab_size", (uint)tokens.Length),
            KvString("tokenizer.ggml.model", options.TokenizerModel),
            Kv("tokenizer.ggml.tokens", b => Array(b, TypeString, tokens.Length, i => Str(b, tokens[i]))),
            Kv("tokenizer.ggml.scores", b => Array(b, TypeF32, scores.Length, i => b.Write(scores[i]))),
            Kv("tokenizer.ggml.token_type", b => Array(b, TypeI32, types.Length, i => b.Write(types[i]))),
            KvU32("tokenizer.ggml.bos_token_id", BosId),
            KvU32("tokenizer.ggml.eos_token_id", EosId),
            KvU32("tokenizer.ggml.unknown_token_id", 0),
            KvBool("tokenizer.ggml.add_bos_token", true),
            KvBool("tokenizer.ggml.add_eos_token", false),
        };

        w.Write("GGUF"u8);
        w.Write(3u);
        w.Write((ulong)tensors.Count);
        w.Write((ulong)kv.Count);
        foreach (var write in kv)
            write(w);

        ulong offset = 0;
        foreach (var t in tensors)
        {
            Str(w, t.Name);
            w.Write((uint)t.Shape.Length);
            foreach (long d in t.Shape)
                w.Write((ulong)d);
            var type = TypeOf(t, options);
            w.Write(type == TinyTensorType.F32 ? GgmlF32 : (uint)type);
            w.Write(offset);
            offset += Align(ByteCount(t.Count, type));
        }
        Pad(w);

        foreach (var (t, values) in Values(tensors, options))
        {
            switch (TypeOf(t, options))
            {
                case TinyTensorType.F16:
                    foreach (float v in values)
                        w.Write((Half)v);
                    break;
                case TinyTensorType.Q8_0:
                    WriteQ8_0(w, values);
                    break;
                default:
                    foreach (float v in values)
                        w.Write(v);
                    break;
            }
            Pad(w);
        }
        return path;
    }

    // The f32 values every tensor is made from, before any conversion: tests compare what a reader dequantizes to these.
    public static IReadOnlyDictionary<string, float[]> SourceWeights(TinyGgufOptions? options = null)
    {
        options ??= new TinyGgufOptions();
        return Values(Tensors(options), options).ToDictionary(x => x.Tensor.Name, x => x.Values);
    }

    // The shapes (ne0 first) of every tensor in file order.
    public static IReadOnlyList<(string Name, long[] Shape)> TensorShapes(TinyGgufOptions? options = null) =>
        [.. Tensors(options ?? new TinyGgufOptions()).Select(t => (t.Name, t.Shape))];

    // Draws the weights in file order from one seeded generator, exactly as the f32 file always has.
    private static IEnumerable<(Tensor Tensor, float[] Values)> Values(List<Tensor> tensors, TinyGgufOptions options)
    {
        var random = new Random(options.Seed);
        foreach (var t in tensors)
        {
            var values = new float[t.Count];
            for (long i = 0; i < t.Count; i++)
                values[i] = t.IsNorm ? 1f : (float)(Normal(random) * options.WeightStdDev);
            yield return (t, values);
        }
    }

    private static TinyTensorType TypeOf(Tensor t, TinyGgufOptions options) => t.Shape.Length >= 2 ? options.WeightType : TinyTensorType.F32;

    private static ulong ByteCount(long count, TinyTensorType type) => type switch
    {
        TinyTensorType.F16 => (ulong)count * 2,
        TinyTensorType.Q8_0 => (ulong)(count / Q8BlockSize) * 34,
        _ => (ulong)count * 4,
    };

    // ggml's reference quantize_row_q8_0: per block of 32, scale = max|x| / 127 stored as f16, q = round(x / scale).
    private static void WriteQ8_0(BinaryWriter w, float[] values)
    {
        for (int b = 0; b < values.Length; b += Q8BlockSize)
        {
            float amax = 0;
            for (int i = 0; i < Q8BlockSize; i++)
                amax = Math.Max(amax, Math.Abs(values[b + i]));
            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            w.Write((Half)d);
            for (int i = 0; i < Q8BlockSize; i++)
                w.Write((sbyte)MathF.Round(values[b + i] * id, MidpointRounding.AwayFromZero));
        }
    }

    private sealed record Tensor(string Name, long[] Shape, bool IsNorm)
    {
        public long Count => Shape.Aggregate(1L, (a, b) => a * b);
    }

    private static List<Tensor> Tensors(TinyGgufOptions o)
    {
        int embd = o.EmbeddingLength, headDim = embd / o.HeadCount, kvDim = o.HeadCountKv * headDim, ff = o.FeedForwardLength;
        var list = new List<Tensor> { new("token_embd.weight", [embd, VocabSize], false) };
        for (int n = 0; n < o.BlockCount; n++)
        {
            list.Add(new($"blk.{n}.attn_norm.weight", [embd], true));
            list.Add(new($"blk.{n}.attn_q.weight", [embd, o.HeadCount * headDim], false));
            list.Add(new($"blk.{n}.attn_k.weight", [embd, kvDim], false));
            list.Add(new($"blk.{n}.attn_v.weight", [embd, kvDim], false));
            list.Add(new($"blk.{n}.attn_output.weight", [o.HeadCount * headDim, embd], false));
            list.Add(new($"blk.{n}.ffn_norm.weight", [embd], true));
            list.Add(new($"blk.{n}.ffn_gate.weight", [embd, ff], false));
            list.Add(new($"blk.{n}.ffn_up.weight", [embd, ff], false));
            list.Add(new($"blk.{n}.ffn_down.weight", [ff, embd], false));
        }
        list.Add(new("output_norm.weight", [embd], true));
        list.Add(new("output.weight", [embd, VocabSize], false));
        return list;
    }

    private static (string[] Tokens, float[] Scores, int[] Types) Vocabulary()
    {
        var tokens = new List<string> { "<unk>", "<s>", "</s>" };
        var types = new List<int> { 2, 3, 3 };
        var scores = new List<float> { 0, 0, 0 };
        for (int b = 0; b < 256; b++)
        {
            tokens.Add($"<0x{b:X2}>");
            types.Add(6);
            scores.Add(0);
        }
        for (int i = 0; i < Pieces.Length; i++)
        {
            tokens.Add(Pieces[i]);
            types.Add(1);
            scores.Add(-1 - i);
        }
        return ([.. tokens], [.. scores], [.. types]);
    }

    private static Action<BinaryWriter> Kv(string key, Action<BinaryWriter> value) => w =>
    {
        Str(w, key);
        value(w);
    };

    private static Action<BinaryWriter> KvString(string key, string value) => Kv(key, w => { w.Write(TypeString); Str(w, value); });
    private static Action<BinaryWriter> KvU32(string key, uint value) => Kv(key, w => { w.Write(TypeU32); w.Write(value); });
    private static Action<BinaryWriter> KvF32(string key, float value) => Kv(key, w => { w.Write(TypeF32); w.Write(value); });
    private static Action<BinaryWriter> KvBool(string key, bool value) => Kv(key, w => { w.Write(TypeBool); w.Write(value ? (byte)1 : (byte)0); });

    // The value type of an array is written by the caller's Kv: type 9, then the element type and count.
    private static void Array(BinaryWriter w, uint elementType, int count, Action<int> element)
    {
        w.Write(TypeArray);
        w.Write(elementType);
        w.Write((ulong)count);
        for (int i = 0; i < count; i++)
            element(i);
    }

    private static void Str(BinaryWriter w, string s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static ulong Align(ulong n) => (n + Alignment - 1) / Alignment * Alignment;

    private static void Pad(BinaryWriter w)
    {
        w.Flush();
        long pos = w.BaseStream.Position;
        long padded = (long)Align((ulong)pos);
        for (long i = pos; i < padded; i++)
            w.Write((byte)0);
    }

    private static double Normal(Random random)
    {
        double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }
}
