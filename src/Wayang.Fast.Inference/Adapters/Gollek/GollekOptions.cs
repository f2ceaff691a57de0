using Wayang.Fast.Inference.Engine.Kernels;

namespace Wayang.Fast.Inference.Adapters.Gollek;

public sealed class GollekOptions
{
    public string Name { get; set; } = "gollek";
    // GGUF files; a model's name is its file name without ".gguf".
    public string ModelsDirectory { get; set; } = "";
    // Tokens one request may hold, prompt plus completion. 0: the model's trained context. Never more than the whole
    // KV cache holds (a request that could never be admitted would wait forever).
    public int ContextLength { get; set; }
    // Paged KV cache blocks of one model. 0: room for MaxSequences requests of min(ContextLength, 4096) tokens each.
    public int KvCacheBlocks { get; set; }
    // Tokens per KV block (vLLM's default).
    public int KvCacheBlockSize { get; set; } = 16;
    // Requests holding KV blocks and decoding together; more wait in the scheduler's queue by priority.
    public int MaxSequences { get; set; } = 4;
    // Tokens one scheduler step may run (decodes plus prompt chunks; longer prompts are prefilled over several steps):
    // smaller keeps running streams' gaps short while a long prompt is prefilled, larger prefills it in fewer steps.
    // 0: 2048, or the context length if shorter (never below MaxSequences). bench/RESULTS.md measures the trade-off.
    public int MaxBatchedTokens { get; set; }
    // After idle, how long the first step waits for more requests (a burst is then prefilled together); 0: start at
    // once, the lowest latency for a lone request.
    public TimeSpan MaxBatchWait { get; set; }
    // CPU kernel threads of one model; 0: one per processor.
    public int Threads { get; set; }
    // Where the forward pass runs (see GollekBackends): "cpu" (the SIMD CpuKernels), "cuda" (the ILGPU kernels on the first CUDA
    // device; loading a model fails as PROVIDER_UNAVAILABLE without one) or "ilgpu-cpu" (the same ILGPU kernels on
    // ILGPU's CPU accelerator, which emulates the thread grid: for tests, far slower than "cpu").
    public string Backend { get; set; } = GollekBackends.Cpu;
    // The completion budget of a request that names none (capped at what the context leaves after the prompt).
    public int DefaultMaxTokens { get; set; } = 512;

    // Tests only: wraps the kernels a model's forward pass runs on, so a test can hold the step loop at a known point.
    internal Func<IKernels<Memory<float>>, IKernels<Memory<float>>>? KernelsForTests { get; set; }
}

public static class GollekBackends
{
    public const string Cpu = "cpu";
    public const string IlgpuCpu = "ilgpu-cpu";
    public const string Cuda = "cuda";

    public static readonly IReadOnlyList<string> All = [Cpu, IlgpuCpu, Cuda];

    // The canonical name of a backend option (case and surrounding blanks ignored; empty is the default), or null.
    public static string? Normalize(string? backend) => string.IsNullOrWhiteSpace(backend)
        ? Cpu
        : All.FirstOrDefault(b => string.Equals(b, backend.Trim(), StringComparison.OrdinalIgnoreCase));
}
