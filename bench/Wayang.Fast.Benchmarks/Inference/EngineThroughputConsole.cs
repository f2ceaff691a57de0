using System.Diagnostics;
using System.Globalization;

namespace Wayang.Fast.Benchmarks.Inference;

// `dotnet run -c Release --project bench/Wayang.Fast.Benchmarks -- engine-throughput [runs] [sequences,...]`
// The EngineThroughputBenchmarks measurement without BenchmarkDotNet: one process, the model written and loaded once,
// both engines re-sized for each concurrency, one warmup run and `runs` (default 3) timed runs of each engine per
// concurrency, the median reported. Prints a markdown table on stdout (llama.cpp's warnings go to stderr).
public static class EngineThroughputConsole
{
    public static int Run(string[] args)
    {
        var runs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 3;
        int[] counts = args.Length > 1 ? [.. args[1].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))] : [1, 4, 16, 64];
        var threads = Environment.ProcessorCount;
        var setup = Stopwatch.StartNew();
        using var harness = new EngineThroughputHarness(counts.Max(), threads);
        var p = harness.Model.Parameters;
        Console.WriteLine($"model: {p.EmbeddingLength} wide, {p.BlockCount} blocks, ff {p.FeedForwardLength}, {p.HeadCount} heads / {p.HeadCountKv} KV heads, vocab {p.VocabSize}, F32 (written and loaded by both engines in {setup.Elapsed.TotalSeconds:F1} s)");
        Console.WriteLine($"threads: {threads} for both engines; prompt {EngineThroughputHarness.PromptTokens} tokens, {EngineThroughputHarness.GeneratedTokens} generated per sequence, greedy; median of {runs} runs after 1 warmup");
        Console.WriteLine();
        Console.WriteLine("| sequences | ours tok/s | llama.cpp tok/s | ours / llama.cpp tok/s (>1: we are faster) | ours decode-phase tok/s | llama.cpp decode-phase tok/s | ours gain vs 1 | llama.cpp gain vs 1 | first tokens equal |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        double? ours1 = null, llama1 = null;
        foreach (var n in counts)
        {
            harness.Prepare(n);
            var ours = Measure(runs, () => (harness.RunGollek(out var first), first));
            var llama = Measure(runs, () => (harness.RunLlamaCpp(out var first), first));
            ours1 ??= n == 1 ? ours.TokensPerSecond : null;
            llama1 ??= n == 1 ? llama.TokensPerSecond : null;
            var equal = harness.GollekFirstTokens.Zip(harness.LlamaCppFirstTokens).Count(x => x.First == x.Second);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {n} | {ours.TokensPerSecond:F1} | {llama.TokensPerSecond:F1} | {ours.TokensPerSecond / llama.TokensPerSecond:F2}x | {ours.DecodeTokensPerSecond:F1} | {llama.DecodeTokensPerSecond:F1} | {Gain(ours.TokensPerSecond, ours1)} | {Gain(llama.TokensPerSecond, llama1)} | {equal}/{n} |"));
        }
        Console.WriteLine();
        Console.WriteLine("tok/s: generated tokens over the whole run (prefill of the prompts included). decode-phase: the tokens after each");
        Console.WriteLine("sequence's first over the time after the step that prefilled the prompts. gain vs 1: tok/s over tok/s at 1 sequence.");
        return 0;
    }

    private static string Gain(double tokensPerSecond, double? atOne) =>
        atOne is double one ? string.Create(CultureInfo.InvariantCulture, $"{tokensPerSecond / one:F2}x") : "-";

    private static (double TokensPerSecond, double DecodeTokensPerSecond) Measure(int runs, Func<(int Tokens, TimeSpan FirstStep)> run)
    {
        run();
        var total = new List<double>();
        var decode = new List<double>();
        for (var i = 0; i < runs; i++)
        {
            var start = Stopwatch.GetTimestamp();
            var (tokens, first) = run();
            var elapsed = Stopwatch.GetElapsedTime(start);
            var sequences = tokens / EngineThroughputHarness.GeneratedTokens;
            total.Add(tokens / elapsed.TotalSeconds);
            decode.Add((tokens - sequences) / (elapsed - first).TotalSeconds);
        }
        return (Median(total), Median(decode));
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values.Count % 2 == 1 ? values[values.Count / 2] : (values[(values.Count / 2) - 1] + values[values.Count / 2]) / 2;
    }
}
