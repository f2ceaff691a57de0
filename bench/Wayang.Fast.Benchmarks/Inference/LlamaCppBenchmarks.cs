using BenchmarkDotNet.Attributes;
using Wayang.Fast.Inference.Adapters.LlamaCpp;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Tests.Gguf;

namespace Wayang.Fast.Benchmarks.Inference;

// llama.cpp (LLamaSharp's CPU backend) generating from the tiny 2-layer, 64-wide model the tests write: the adapter's
// per-token cost (decode batch, sampling, incremental detokenizing, the delta hand-off), not a real model's speed.
// One request alone against four at once (decoded as four sequences of one batch per step). Each operation is one
// generated token, so the Mean column is the time per token.
[MemoryDiagnoser]
public class LlamaCppBenchmarks
{
    private const int Tokens = 64;
    private string _directory = "";
    private LlamaCppProvider _provider = null!;

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), "wayang-bench-llama-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        TinyGgufWriter.Write(Path.Combine(_directory, "tiny.gguf"));
        _provider = new LlamaCppProvider(new LlamaCppOptions { ModelsDirectory = _directory, MaxSequences = 4, ContextLength = 256 });
        _provider.ChatAsync(Request(), "tiny", CancellationToken.None).GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _provider.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private static ChatRequest Request() => new()
    {
        Messages = [ChatMessage.Text(ChatRole.User, "hello world")],
        MaxTokens = Tokens,
        Temperature = 0,
    };

    [Benchmark(Baseline = true, OperationsPerInvoke = Tokens)]
    public async Task<int> OneSequence() => (await _provider.ChatAsync(Request(), "tiny", CancellationToken.None)).Usage.CompletionTokens;

    [Benchmark(OperationsPerInvoke = Tokens * 4)]
    public async Task<int> FourSequences()
    {
        var all = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => _provider.ChatAsync(Request(), "tiny", CancellationToken.None)));
        return all.Sum(r => r.Usage.CompletionTokens);
    }
}
