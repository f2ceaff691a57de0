using Wayang.Fast.Inference.Tests.Gguf;

namespace Wayang.Fast.Benchmarks.Inference;

// The generated models the engine benchmarks run on. Nothing is committed or downloaded: each benchmark process writes
// its GGUF into a temp directory at setup (TinyGgufWriter streams one tensor at a time, so the largest managed array is
// one matrix, ~11.5 MB for the realistic shape) and deletes it at cleanup.
//
// F32 weights on purpose: our engine dequantizes everything to f32 at load, so an F32 file is the only type on which
// both engines run the same model with the same arithmetic (llama.cpp would otherwise run its quantized dot products
// against our f32 ones, and the comparison would be of weight formats, not of engines).
public static class BenchModel
{
    // ~89M parameters (~357 MB f32), llama-shaped: 16 heads of 64, grouped-query attention with 4 KV heads, SwiGLU
    // feed-forward 2.75x. Large enough that a decode step is dominated by the matrix products (every weight read once per
    // step), small enough that two copies (ours and llama.cpp's) fit a developer machine.
    public static TinyGgufOptions Realistic { get; } = new()
    {
        Name = "bench-realistic",
        EmbeddingLength = 1024,
        BlockCount = 8,
        FeedForwardLength = 2816,
        HeadCount = 16,
        HeadCountKv = 4,
        ContextLength = 4096,
        WeightType = TinyTensorType.F32,
    };

    // ~11M parameters (~45 MB f32), the same proportions at half the width and half the depth: long prefills in seconds.
    public static TinyGgufOptions Mid { get; } = new()
    {
        Name = "bench-mid",
        EmbeddingLength = 512,
        BlockCount = 4,
        FeedForwardLength = 1408,
        HeadCount = 8,
        HeadCountKv = 2,
        ContextLength = 4096,
        WeightType = TinyTensorType.F32,
    };

    public static TinyGgufOptions ByName(string name) => name switch
    {
        "realistic" => Realistic,
        "mid" => Mid,
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "expected 'realistic' or 'mid'"),
    };

    // count prompts of length tokens each: BOS, then ids drawn from the normal vocabulary (past unk/bos/eos), different
    // for every prompt so no two sequences share a prefix.
    public static int[][] DistinctPrompts(int count, int length, int seed = 7)
    {
        var rng = new Random(seed);
        var prompts = new int[count][];
        var seen = new HashSet<string>();
        for (var i = 0; i < count; i++)
        {
            int[] prompt;
            do
            {
                prompt = new int[length];
                prompt[0] = TinyGgufWriter.BosId;
                for (var j = 1; j < length; j++)
                    prompt[j] = rng.Next(3, TinyGgufWriter.VocabSize);
            }
            while (!seen.Add(string.Join(',', prompt)));
            prompts[i] = prompt;
        }
        return prompts;
    }
}

// A model file in its own temp directory, deleted on Dispose.
public sealed class BenchModelFile : IDisposable
{
    private readonly string _directory;

    public BenchModelFile(TinyGgufOptions options)
    {
        _directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "wayang-bench-model-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        Path = System.IO.Path.Combine(_directory, options.Name + ".gguf");
        TinyGgufWriter.Write(Path, options);
    }

    public string Path { get; }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
            Directory.Delete(_directory, recursive: true);
    }
}
