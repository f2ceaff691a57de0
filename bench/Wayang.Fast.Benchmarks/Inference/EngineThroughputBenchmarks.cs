using BenchmarkDotNet.Attributes;

namespace Wayang.Fast.Benchmarks.Inference;

// Issue 8: aggregate generation throughput of our engine (BatchScheduler + LlamaForward + CpuKernels, "Gollek") against
// llama.cpp (LLamaSharp, raw batched llama_decode) at 1, 4, 16 and 64 concurrent sequences, on the same generated
// ~89M-parameter F32 llama model (BenchModel.Realistic), the same prompts, the same token counts and the same threads
// (Environment.ProcessorCount for both). See EngineThroughputHarness for exactly what each engine does per operation.
//
// Reading the table: one invocation generates Sequences x 32 tokens (8-token prompts included in the time, prefill
// and all), and OperationsPerInvoke = 32, so Mean is the time of one generation step for all the sequences together
// (amortized over the run, prefill included). Aggregate tokens/s = Sequences / Mean. The baseline is LlamaCpp, so
// Ratio = our time / llama.cpp's time for the same tokens: below 1 means we are faster (Ratio 0.5 = twice
// llama.cpp's tokens/s). The batching gain is (Sequences / Mean) over the Sequences = 1 row's (1 / Mean).
//
// Each invocation is seconds long at 64 sequences, so the job is a monitoring one (no pilot, no overhead runs, one
// invocation per iteration) with 1 warmup and 5 measured iterations (MonitoringJobConfig; `--job dry` on the command line
// replaces it for a smoke run). `dotnet run -c Release -- engine-throughput` (EngineThroughputConsole) measures the
// same thing in one process without BenchmarkDotNet and prints tokens/s.
[MemoryDiagnoser]
[Config(typeof(MonitoringJobConfig))]
public class EngineThroughputBenchmarks
{
    private EngineThroughputHarness _harness = null!;

    [Params(1, 4, 16, 64)]
    public int Sequences { get; set; }

    // The warmup iteration pays the first-run costs (JIT, page cache, scratch buffers); nothing is primed here.
    [GlobalSetup]
    public void Setup() => _harness = new EngineThroughputHarness(Sequences, Environment.ProcessorCount);

    [GlobalCleanup]
    public void Cleanup() => _harness.Dispose();

    [Benchmark(OperationsPerInvoke = EngineThroughputHarness.GeneratedTokens)]
    public int Gollek() => _harness.RunGollek(out _);

    [Benchmark(Baseline = true, OperationsPerInvoke = EngineThroughputHarness.GeneratedTokens)]
    public int LlamaCpp() => _harness.RunLlamaCpp(out _);
}
