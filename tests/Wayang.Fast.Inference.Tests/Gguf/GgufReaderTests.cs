using System.Buffers.Binary;
using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Engine.Gguf;

namespace Wayang.Fast.Inference.Tests.Gguf;

public sealed class GgufReaderTests : IDisposable
{
    private readonly TempDirectory _dir = new("gguf-reader");

    public void Dispose() => _dir.Dispose();

    private string Tiny(TinyGgufOptions? options = null, string name = "tiny.gguf") =>
        TinyGgufWriter.Write(Path.Combine(_dir.Path, name), options);

    [Fact]
    public void Reads_the_metadata_and_tensor_infos_of_the_tiny_model()
    {
        using var file = GgufFile.Open(Tiny());

        Assert.Equal("llama", file.Architecture);
        Assert.Equal("tiny-llama", file.GetString("general.name"));
        Assert.Equal(32u, file.GetUInt32("general.alignment"));
        Assert.Equal(32, file.Alignment);
        Assert.Equal(0, file.DataOffset % 32);
        Assert.Equal(64u, file.GetUInt32("llama.embedding_length"));
        Assert.Equal(64ul, file.GetUInt64("llama.embedding_length"));
        Assert.Equal(1, file.GetInt32("tokenizer.ggml.bos_token_id"));
        Assert.Equal(1e-5f, file.GetSingle("llama.attention.layer_norm_rms_epsilon"));
        Assert.True(file.GetBool("tokenizer.ggml.add_bos_token"));
        Assert.False(file.GetBool("tokenizer.ggml.add_eos_token"));

        var tokens = file.GetStringArray("tokenizer.ggml.tokens");
        Assert.Equal(TinyGgufWriter.VocabSize, tokens.Length);
        Assert.Equal(["<unk>", "<s>", "</s>", "<0x00>"], tokens[..4]);
        Assert.Equal("\u2581hello", tokens[3 + 256 + 8]);
        var types = file.GetInt32Array("tokenizer.ggml.token_type");
        Assert.Equal([2, 3, 3, 6], types[..4]);
        Assert.Equal(1, types[^1]);
        var scores = file.GetSingleArray("tokenizer.ggml.scores");
        Assert.Equal(-1f, scores[3 + 256]);
        Assert.Equal(GgufValueType.Array, file.Metadata["tokenizer.ggml.scores"].Type);
        Assert.Equal(GgufValueType.Float32, file.Metadata["tokenizer.ggml.scores"].ElementType);

        var expected = TinyGgufWriter.TensorShapes();
        Assert.Equal(expected.Select(e => e.Name), file.Tensors.Select(t => t.Name));
        foreach (var (name, shape) in expected)
        {
            var tensor = file.GetTensor(name);
            Assert.Equal(shape, tensor.Dimensions);
            Assert.Equal(GgmlType.F32, tensor.Type);
            Assert.Equal(tensor.ElementCount * 4, file.GetData(tensor).Length);
            Assert.Equal(0, tensor.DataOffset % 32);
        }
        Assert.Equal([64L, TinyGgufWriter.VocabSize], file.GetTensor("token_embd.weight").Dimensions);
        Assert.False(file.TryGetTensor("blk.2.attn_q.weight", out _));
    }

    [Fact]
    public void Reads_llama_hyper_parameters_with_grouped_query_attention()
    {
        using var file = GgufFile.Open(Tiny(new TinyGgufOptions { HeadCountKv = 2, ContextLength = 128 }));
        var hp = LlamaHyperParameters.From(file);

        Assert.Equal(128, hp.ContextLength);
        Assert.Equal(64, hp.EmbeddingLength);
        Assert.Equal(2, hp.BlockCount);
        Assert.Equal(128, hp.FeedForwardLength);
        Assert.Equal(4, hp.HeadCount);
        Assert.Equal(2, hp.HeadCountKv);
        Assert.Equal(16, hp.HeadDim);
        Assert.Equal(16, hp.RopeDimensionCount);
        Assert.Equal(1e-5f, hp.RmsNormEpsilon);
        Assert.Equal(10000f, hp.RopeFreqBase);
        Assert.Equal(TinyGgufWriter.VocabSize, hp.VocabSize);
    }

    [Fact]
    public void Hyper_parameters_default_head_count_kv_rope_base_and_dimensions_when_absent()
    {
        byte[] bytes = File.ReadAllBytes(Tiny());
        // Renaming keys (same length) makes them absent to the reader.
        Rename(bytes, "llama.attention.head_count_kv", "llama.attention.head_count_xx");
        Rename(bytes, "llama.rope.freq_base", "llama.rope.freq_xxxx");
        Rename(bytes, "llama.rope.dimension_count", "llama.rope.dimension_xxxxx");
        using var file = GgufFile.Open(Save(bytes));
        var hp = LlamaHyperParameters.From(file);
        Assert.Equal(4, hp.HeadCountKv);
        Assert.Equal(10000f, hp.RopeFreqBase);
        Assert.Equal(16, hp.RopeDimensionCount);
    }

    [Theory]
    [InlineData(TinyTensorType.F32)]
    [InlineData(TinyTensorType.F16)]
    [InlineData(TinyTensorType.Q8_0)]
    public void Dequantizes_every_tensor_close_to_the_writers_f32_weights(TinyTensorType type)
    {
        var options = new TinyGgufOptions { WeightType = type, Seed = 99 };
        using var file = GgufFile.Open(Tiny(options));
        var source = TinyGgufWriter.SourceWeights(options);
        Assert.Equal(type switch { TinyTensorType.F16 => 1u, TinyTensorType.Q8_0 => 7u, _ => 0u }, file.GetUInt32("general.file_type"));

        foreach (var tensor in file.Tensors)
        {
            float[] expected = source[tensor.Name];
            bool matrix = tensor.Dimensions.Length == 2;
            Assert.Equal(matrix ? (GgmlType)(uint)type : GgmlType.F32, tensor.Type);
            var actual = new float[tensor.ElementCount];
            file.Dequantize(tensor, actual);
            Assert.Contains(expected, v => v != 0);

            for (int i = 0; i < expected.Length; i++)
            {
                float x = expected[i];
                float tolerance = tensor.Type switch
                {
                    GgmlType.F32 => 0,
                    // Half has an 11-bit significand: a relative error of at most 2^-11, plus its subnormal step.
                    GgmlType.F16 => (MathF.Abs(x) / 2048) + 6e-8f,
                    // One quantization step of x's block: max |x| / 127.
                    _ => BlockMax(expected, i) / 127,
                };
                if (MathF.Abs(actual[i] - x) > tolerance)
                    Assert.Fail($"{tensor.Name}[{i}]: {actual[i]} is not within {tolerance} of {x}");
            }

            // A row read alone equals that row of the whole tensor.
            long row = tensor.RowCount - 1;
            var rowValues = new float[tensor.RowLength];
            file.DequantizeRow(tensor, row, rowValues);
            Assert.Equal(actual.AsSpan((int)(row * tensor.RowLength), (int)tensor.RowLength).ToArray(), rowValues);
        }
        Assert.Equal(
            file.GetTensor("output.weight").ElementCount * type switch { TinyTensorType.F16 => 2, TinyTensorType.Q8_0 => 34 / 32.0, _ => 4 },
            file.GetData(file.GetTensor("output.weight")).Length);
    }

    private static float BlockMax(float[] values, int i)
    {
        int start = i / 32 * 32;
        float max = 0;
        for (int j = start; j < start + 32; j++)
            max = Math.Max(max, Math.Abs(values[j]));
        return max;
    }

    [Fact]
    public void Reads_every_metadata_value_type_including_nested_arrays()
    {
        using var file = GgufFile.Open(Save(Handmade(w =>
        {
            Kv(w, "u8", 0, b => b.Write((byte)200));
            Kv(w, "i8", 1, b => b.Write((sbyte)-5));
            Kv(w, "u16", 2, b => b.Write((ushort)60000));
            Kv(w, "i16", 3, b => b.Write((short)-300));
            Kv(w, "u32", 4, b => b.Write(4_000_000_000u));
            Kv(w, "i32", 5, b => b.Write(-7));
            Kv(w, "f32", 6, b => b.Write(1.5f));
            Kv(w, "bool", 7, b => b.Write((byte)1));
            Kv(w, "str", 8, b => Str(b, "h\u00e9llo"));
            Kv(w, "u64", 10, b => b.Write(ulong.MaxValue));
            Kv(w, "i64", 11, b => b.Write(-9L));
            Kv(w, "f64", 12, b => b.Write(2.25));
            Kv(w, "ints", 9, b => { b.Write(5u); b.Write(3ul); b.Write(1); b.Write(-2); b.Write(3); });
            Kv(w, "nested", 9, b => { b.Write(9u); b.Write(1ul); b.Write(4u); b.Write(2ul); b.Write(10u); b.Write(20u); });
        }, 14)));

        Assert.Equal((byte)200, file.Get("u8").Value);
        Assert.Equal((sbyte)-5, file.Get("i8").Value);
        Assert.Equal((ushort)60000, file.Get("u16").Value);
        Assert.Equal((short)-300, file.Get("i16").Value);
        Assert.Equal(4_000_000_000u, file.GetUInt32("u32"));
        Assert.Equal(-7, file.GetInt32("i32"));
        Assert.Equal(1.5f, file.GetSingle("f32"));
        Assert.True(file.GetBool("bool"));
        Assert.Equal("h\u00e9llo", file.GetString("str"));
        Assert.Equal(ulong.MaxValue, file.GetUInt64("u64"));
        Assert.Equal(-9L, file.Get("i64").Value);
        Assert.Equal(2.25f, file.GetSingle("f64"));
        Assert.Equal([1, -2, 3], file.GetInt32Array("ints"));
        var nested = Assert.IsType<GgufValue[]>(file.Get("nested").Value);
        Assert.Equal([10u, 20u], Assert.IsType<uint[]>(Assert.Single(nested).Value));
        Assert.Empty(file.Tensors);
        Assert.Equal(200u, file.GetUInt32("u8"));
        Assert.Equal(60000, file.GetInt32("u16"));
        Assert.Contains("negative", Throws(() => file.GetUInt32("i32")));
        Assert.Contains("does not fit in UInt32", Throws(() => file.GetUInt32("u64")));
    }

    [Fact]
    public void Refuses_a_bad_magic()
    {
        byte[] bytes = File.ReadAllBytes(Tiny());
        bytes[0] = (byte)'X';
        Assert.Contains("bad magic", OpenFails(bytes));
    }

    [Fact]
    public void Refuses_version_2()
    {
        byte[] bytes = File.ReadAllBytes(Tiny());
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), 2);
        string message = OpenFails(bytes);
        Assert.Contains("unsupported GGUF version 2", message);
        Assert.Contains("at byte 4", message);
    }

    [Fact]
    public void Refuses_a_file_truncated_anywhere()
    {
        byte[] bytes = File.ReadAllBytes(Tiny());
        int inMetadata = Find(bytes, "tokenizer.ggml.tokens") + 400;
        int inTensorInfos = Find(bytes, "output.weight") + 10;
        foreach (int length in new[] { 0, 3, 6, 12, 20, 30, inMetadata, inTensorInfos })
        {
            string message = OpenFails(bytes[..length]);
            Assert.Contains("truncated", message);
        }
        // Cut inside the tensor data: the header parses, the last tensor no longer fits.
        string data = OpenFails(bytes[..(bytes.Length - 100)]);
        Assert.Contains("tensor 'output.weight'", data);
        Assert.Contains("outside the file", data);
    }

    [Fact]
    public void Refuses_tensor_data_beyond_the_end_and_an_unaligned_offset()
    {
        byte[] bytes = File.ReadAllBytes(Tiny());
        int offsetAt = TensorInfo(bytes, "output_norm.weight").OffsetAt;
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(offsetAt), (ulong)bytes.Length);
        string message = OpenFails(bytes);
        Assert.Contains("tensor 'output_norm.weight'", message);
        Assert.Contains("outside the file", message);
        Assert.Contains($"at byte {offsetAt}", message);

        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(offsetAt), 1ul << 62);
        Assert.Contains("outside the file", OpenFails(bytes));

        bytes = File.ReadAllBytes(Tiny());
        ulong original = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(offsetAt));
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(offsetAt), original + 4);
        Assert.Contains("is not aligned to 32", OpenFails(bytes));
    }

    [Fact]
    public void Refuses_to_dequantize_an_unsupported_tensor_type_and_to_open_an_unknown_one()
    {
        byte[] bytes = File.ReadAllBytes(Tiny());
        int typeAt = TensorInfo(bytes, "output.weight").TypeAt;
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(typeAt), 2);
        using (var file = GgufFile.Open(Save(bytes)))
        {
            var tensor = file.GetTensor("output.weight");
            Assert.Equal(GgmlType.Q4_0, tensor.Type);
            string message = Throws(() => file.Dequantize(tensor, new float[tensor.ElementCount]));
            Assert.Contains("tensor 'output.weight'", message);
            Assert.Contains("Q4_0", message);
        }

        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(typeAt), 99);
        string unknown = OpenFails(bytes);
        Assert.Contains("tensor 'output.weight' has unsupported ggml type 99", unknown);
        Assert.Contains($"at byte {typeAt}", unknown);
    }

    [Fact]
    public void Refuses_an_unknown_metadata_value_type()
    {
        byte[] bytes = File.ReadAllBytes(Tiny());
        int typeAt = Find(bytes, "general.name") + 8 + "general.name".Length;
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(typeAt), 77);
        string message = OpenFails(bytes);
        Assert.Contains("unknown value type 77 of metadata key 'general.name'", message);
        Assert.Contains($"at byte {typeAt}", message);
    }

    [Fact]
    public void Names_a_missing_or_wrong_typed_key()
    {
        byte[] bytes = File.ReadAllBytes(Tiny());
        Rename(bytes, "llama.block_count", "llama.block_xxxxx");
        // An f32 retyped as u32 keeps the file's layout but no longer reads as a float.
        int epsilonType = Find(bytes, "llama.attention.layer_norm_rms_epsilon") + 8 + "llama.attention.layer_norm_rms_epsilon".Length;
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(epsilonType), 4);
        using var file = GgufFile.Open(Save(bytes));

        var missing = Assert.Throws<WayangException>(() => LlamaHyperParameters.From(file));
        Assert.Equal(ErrorCode.InvalidArgument, missing.Code);
        Assert.Contains("metadata key 'llama.block_count' is missing", missing.Message);
        Assert.Contains("'llama.attention.layer_norm_rms_epsilon' is UInt32, expected Float32",
            Throws(() => file.GetSingle("llama.attention.layer_norm_rms_epsilon")));
        Assert.Contains("'general.name' is String, expected an unsigned integer", Throws(() => file.GetUInt32("general.name")));
        Assert.Contains("'tokenizer.ggml.scores' is array of Float32, expected array of String",
            Throws(() => file.GetStringArray("tokenizer.ggml.scores")));
        Assert.Contains("tensor 'nope' is missing", Throws(() => file.GetTensor("nope")));
    }

    [Fact]
    public void Refuses_hyper_parameters_of_a_non_llama_architecture()
    {
        byte[] bytes = File.ReadAllBytes(Tiny());
        int value = Find(bytes, "general.architecture") + 8 + "general.architecture".Length + 4 + 8;
        Encoding.ASCII.GetBytes("qwen2").CopyTo(bytes, value);
        using var file = GgufFile.Open(Save(bytes));
        Assert.Equal("qwen2", file.Architecture);
        Assert.Contains("architecture 'qwen2' is not supported", Throws(() => LlamaHyperParameters.From(file)));
    }

    [Fact]
    public void A_missing_file_is_model_not_found()
    {
        var e = Assert.Throws<WayangException>(() => GgufFile.Open(Path.Combine(_dir.Path, "absent.gguf")));
        Assert.Equal(ErrorCode.ModelNotFound, e.Code);
    }

    [Theory]
    [InlineData(TinyTensorType.F16)]
    [InlineData(TinyTensorType.Q8_0)]
    public void Llama_cpp_loads_and_decodes_the_f16_and_q8_0_files(TinyTensorType type)
    {
        string path = Tiny(new TinyGgufOptions { WeightType = type }, $"tiny-{type}.gguf");
        var parameters = new ModelParams(path) { ContextSize = 64, GpuLayerCount = 0 };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);
        var tokens = context.Tokenize("hello world", addBos: true, special: false);
        Assert.Equal(3, tokens.Length);
        var batch = new LLamaBatch();
        for (int i = 0; i < tokens.Length; i++)
            batch.Add(tokens[i], i, LLamaSeqId.Zero, i == tokens.Length - 1);
        Assert.Equal(DecodeResult.Ok, context.NativeHandle.Decode(batch));
        Assert.All(context.NativeHandle.GetLogitsIth(tokens.Length - 1).ToArray(), l => Assert.True(float.IsFinite(l)));
    }

    private string Save(byte[] bytes)
    {
        string path = Path.Combine(_dir.Path, $"copy-{Guid.NewGuid():N}.gguf");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private string OpenFails(byte[] bytes)
    {
        string path = Save(bytes);
        var e = Assert.Throws<WayangException>(() => GgufFile.Open(path).Dispose());
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Contains(path, e.Message);
        return e.Message;
    }

    private static string Throws(Action action) => Assert.Throws<WayangException>(action).Message;

    // The position of a GGUF string (u64 length, then the bytes): the length prefix makes it unique even where the
    // text is a suffix of another name.
    private static int Find(byte[] bytes, string s)
    {
        byte[] needle = new byte[8 + Encoding.UTF8.GetByteCount(s)];
        BinaryPrimitives.WriteUInt64LittleEndian(needle, (ulong)(needle.Length - 8));
        Encoding.UTF8.GetBytes(s).CopyTo(needle, 8);
        int at = bytes.AsSpan().IndexOf(needle);
        Assert.True(at >= 0, $"'{s}' is not in the file");
        return at;
    }

    private static void Rename(byte[] bytes, string from, string to) => Encoding.UTF8.GetBytes(to).CopyTo(bytes, Find(bytes, from) + 8);

    private static (int TypeAt, int OffsetAt) TensorInfo(byte[] bytes, string name)
    {
        int dimsAt = Find(bytes, name) + 8 + name.Length;
        int dims = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(dimsAt));
        int typeAt = dimsAt + 4 + (8 * dims);
        return (typeAt, typeAt + 4);
    }

    private static byte[] Handmade(Action<BinaryWriter> kvs, int kvCount)
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            w.Write("GGUF"u8);
            w.Write(3u);
            w.Write(0ul);
            w.Write((ulong)kvCount);
            kvs(w);
        }
        return stream.ToArray();
    }

    private static void Kv(BinaryWriter w, string key, uint type, Action<BinaryWriter> value)
    {
        Str(w, key);
        w.Write(type);
        value(w);
    }

    private static void Str(BinaryWriter w, string s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }
}
