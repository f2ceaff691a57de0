using Wayang.Fast.Inference.Engine.Gguf;

namespace Wayang.Fast.Inference.Engine.Model;

// One transformer block's weights, dequantized to f32, each matrix [rows x cols] as GGUF's [ne1 x ne0].
public sealed record LlamaLayer(
    float[] AttentionNorm,
    float[] Query,
    float[] Key,
    float[] Value,
    float[] AttentionOutput,
    float[] FeedForwardNorm,
    float[] Gate,
    float[] Up,
    float[] Down);

// A llama-architecture model's weights, dequantized to f32 once at load: the engine's kernels work on f32, and the
// mapped file can be closed afterwards. The forward pass itself is LlamaForward, which owns the KV cache buffers.
public sealed class LlamaModel
{
    private LlamaModel(LlamaHyperParameters parameters, float[] tokenEmbedding, LlamaLayer[] layers, float[] outputNorm, float[] output)
    {
        Parameters = parameters;
        TokenEmbedding = tokenEmbedding;
        Layers = layers;
        OutputNorm = outputNorm;
        Output = output;
    }

    public LlamaHyperParameters Parameters { get; }

    // [vocab x embedding]: row t is token t's embedding.
    public float[] TokenEmbedding { get; }

    public IReadOnlyList<LlamaLayer> Layers { get; }

    public float[] OutputNorm { get; }

    // [vocab x embedding]; the token embedding itself when the model ties them (no output.weight), as llama.cpp does.
    public float[] Output { get; }

    // Opens the GGUF at path, loads the model and closes the file again (the model keeps no view of the mapping).
    public static LlamaModel Load(string path)
    {
        using var file = GgufFile.Open(path);
        return Load(file);
    }

    public static LlamaModel Load(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var p = LlamaHyperParameters.From(file);
        int embd = p.EmbeddingLength, qDim = p.HeadCount * p.HeadDim, kvDim = p.HeadCountKv * p.HeadDim, ff = p.FeedForwardLength;
        var embedding = Read(file, "token_embd.weight", p.VocabSize, embd);
        var layers = new LlamaLayer[p.BlockCount];
        for (int n = 0; n < layers.Length; n++)
        {
            string b = $"blk.{n}.";
            layers[n] = new LlamaLayer(
                Read(file, b + "attn_norm.weight", 1, embd),
                Read(file, b + "attn_q.weight", qDim, embd),
                Read(file, b + "attn_k.weight", kvDim, embd),
                Read(file, b + "attn_v.weight", kvDim, embd),
                Read(file, b + "attn_output.weight", embd, qDim),
                Read(file, b + "ffn_norm.weight", 1, embd),
                Read(file, b + "ffn_gate.weight", ff, embd),
                Read(file, b + "ffn_up.weight", ff, embd),
                Read(file, b + "ffn_down.weight", embd, ff));
        }
        var outputNorm = Read(file, "output_norm.weight", 1, embd);
        var output = file.TryGetTensor("output.weight", out _) ? Read(file, "output.weight", p.VocabSize, embd) : embedding;
        return new LlamaModel(p, embedding, layers, outputNorm, output);
    }

    // Checks the shape against the hyperparameters, so a malformed file fails here rather than as a kernel's bounds error.
    private static float[] Read(GgufFile file, string name, int rows, int cols)
    {
        var tensor = file.GetTensor(name);
        if (tensor.RowLength != cols || tensor.RowCount != rows)
            throw GgufErrors.Invalid(file.Path, $"tensor '{name}' is {tensor.RowCount} x {tensor.RowLength}, expected {rows} x {cols}");
        var values = new float[(long)rows * cols];
        file.Dequantize(tensor, values);
        return values;
    }
}
