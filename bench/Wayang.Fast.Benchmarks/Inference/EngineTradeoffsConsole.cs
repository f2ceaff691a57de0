using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using Wayang.Fast.Inference.Engine.Kernels;
using Wayang.Fast.Inference.Engine.KvCache;
using Wayang.Fast.Inference.Engine.Model;
using Wayang.Fast.Inference.Engine.Sampling;
using Wayang.Fast.Inference.Engine.Scheduling;

namespace Wayang.Fast.Benchmarks.Inference;

// `dotnet run -c Release --project bench/Wayang.Fast.Benchmarks -- engine-tradeoffs [generated]`
// Issue 8's "latency/throughput trade-off is configuration": the measured effect of each SchedulerOptions knob, on the
// realistic model (BenchModel.Realistic, the engine-throughput model) with the scheduler running its real RunAsync loop
// on a background thread and requests submitted from the calling thread. Every token is timestamped
// (Stopwatch.GetTimestamp) when its consumer reads it from the request's channel; consumers are async (one per request,
// on the thread pool), so waiting for tokens costs no CPU the kernels could use.
//
//   (a) MaxSequences {4, 16, 64}: 64 requests submitted at once, 8-token prompts, `generated` (default 32) tokens each,
//       greedy. Aggregate tokens/s, time to first token (from submission) and inter-token gaps per request.
//   (b) MaxBatchedTokens {64, 256, 2048}: 8 requests decoding, then one 1024-token prompt arrives. The 8's worst gap
//       between tokens while it is prefilled (chunked prefill keeps it short) against the long request's TTFT.
//   (c) MaxBatchWait {0, 2 ms, 10 ms}: 16 requests arriving one every 0.5 ms (spin-timed) at an idle scheduler. Steps
//       with prompt rows (prefill passes), how many the first step admitted, TTFT and aggregate tokens/s; 5 runs each.
// Steps are counted exactly by a forward-pass decorator (PassLog: one pass per step with rows, timed, rows fed and
// sampled). One run per configuration of (a) and (b), five of (c), after one warmup (~1.5 minutes on 2 cores, idle);
// prefix caching is off and the cache holds every sequence whole, so no run recomputes (each checks Preemptions == 0)
// and runs are independent. Prints one markdown table per experiment.
public static class EngineTradeoffsConsole
{
    private const int BlockSize = 16;
    private const int NumBlocks = 256;
    private const int PromptTokens = 8;
    private const int LongPromptTokens = 1024;
    // (c) is cheap (16 short requests) and the most timing-sensitive, so it is repeated.
    private const int StaggeredRuns = 5;
    private static readonly SamplerOptions Greedy = new() { Temperature = 0 };

    public static int Run(string[] args)
    {
        var generated = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 32;
        var threads = Environment.ProcessorCount;
        var setup = Stopwatch.StartNew();
        using var file = new BenchModelFile(BenchModel.Realistic);
        var model = LlamaModel.Load(file.Path);
        using var kernels = new CpuKernels(threads);
        // One set of K/V buffers; each run gets a fresh cache over them (one scheduler runs at a time).
        var log = new PassLog(new LlamaForward(model, kernels, NumBlocks, BlockSize));
        var p = model.Parameters;
        Console.WriteLine($"model: {p.EmbeddingLength} wide, {p.BlockCount} blocks, ff {p.FeedForwardLength}, {p.HeadCount} heads / {p.HeadCountKv} KV heads, vocab {p.VocabSize}, F32 (written and loaded in {setup.Elapsed.TotalSeconds:F1} s)");
        Console.WriteLine($"threads: {threads}; greedy; {PromptTokens}-token prompts; {generated} generated tokens per request; one run per configuration after one warmup");

        // Warmup: JIT, scratch buffers, page cache, one chunked long prefill.
        var warm = Stopwatch.StartNew();
        RunMaxSequences(log, 16, 16, Math.Min(generated, 8));
        RunChunkedPrefill(log, 128, 256);
        Console.WriteLine($"warmup: {warm.Elapsed.TotalSeconds:F1} s");
        Console.WriteLine();

        Console.WriteLine($"### (a) MaxSequences: 64 requests submitted at once, {PromptTokens}-token prompts, {generated} tokens each (MaxBatchedTokens 2048, MaxBatchWait 0)");
        Console.WriteLine();
        Console.WriteLine("| MaxSequences | aggregate tok/s | TTFT p50 ms | TTFT p99 ms | inter-token p50 ms | inter-token p99 ms | total s | steps |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var maxSequences in new[] { 4, 16, 64 })
        {
            var r = RunMaxSequences(log, maxSequences, 64, generated);
            Console.WriteLine(Inv($"| {maxSequences} | {r.TokensPerSecond:F1} | {r.TtftP50:F0} | {r.TtftP99:F0} | {r.GapP50:F1} | {r.GapP99:F1} | {r.TotalSeconds:F2} | {r.Steps} |"));
        }
        Console.WriteLine();
        Console.WriteLine("More sequences per step: the weights are read once for a larger batch (throughput up) and each step takes longer (inter-token gap up); requests beyond MaxSequences queue for a free slot, so the late ones' TTFT (p99) falls as MaxSequences rises.");
        Console.WriteLine();

        Console.WriteLine($"### (b) MaxBatchedTokens: 8 requests decoding, then one {LongPromptTokens}-token prompt arrives (MaxSequences 16)");
        Console.WriteLine();
        Console.WriteLine("| MaxBatchedTokens | decoders' gap before it, p50 ms | decoders' worst gap while it is prefilled, ms | longest step ms | long prompt TTFT ms | steps prefilling it |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|");
        foreach (var budget in new[] { 64, 256, 2048 })
        {
            var r = RunChunkedPrefill(log, budget, LongPromptTokens);
            Console.WriteLine(Inv($"| {budget} | {r.GapBeforeP50:F1} | {r.WorstGapDuring:F0} | {r.LongestStep:F0} | {r.LongTtft:F0} | {r.PrefillSteps} |"));
        }
        Console.WriteLine();
        Console.WriteLine("A prompt longer than the budget left after the decodes is prefilled in chunks, one per step: a small budget keeps every step (so the running requests' worst gap) short by spreading the prompt over more steps, each re-reading the weights, which can delay its first token (by little where the prefill is compute-bound, as on a few CPU cores); 2048 prefills it in one long step that stalls everyone.");
        Console.WriteLine();

        var waitGenerated = Math.Min(generated, 16);
        Console.WriteLine($"### (c) MaxBatchWait: 16 requests, one every 0.5 ms, at an idle scheduler ({PromptTokens}-token prompts, {waitGenerated} tokens each, MaxSequences 16; {StaggeredRuns} runs each, medians)");
        Console.WriteLine();
        Console.WriteLine($"| MaxBatchWait ms | admitted by the first step (each run) | steps with prompt rows (each run) | TTFT p50 ms | TTFT p99 ms | aggregate tok/s | steps |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var waitMs in new[] { 0.0, 2.0, 10.0 })
        {
            var runs = Enumerable.Range(0, StaggeredRuns).Select(_ => RunStaggered(log, TimeSpan.FromMilliseconds(waitMs), waitGenerated)).ToList();
            var admitted = string.Join(",", runs.Select(r => r.FirstStepAdmitted));
            var prefills = string.Join(",", runs.Select(r => r.PrefillSteps));
            var ttft50 = Median(runs.Select(r => r.TtftP50));
            var ttft99 = Median(runs.Select(r => r.TtftP99));
            var tps = Median(runs.Select(r => r.TokensPerSecond));
            var steps = Median(runs.Select(r => (double)r.Steps));
            Console.WriteLine(Inv($"| {waitMs:F0} | {admitted} | {prefills} | {ttft50:F1} | {ttft99:F1} | {tps:F1} | {steps:F0} |"));
        }
        Console.WriteLine();
        Console.WriteLine("Zero starts the first step on the first arrival, so the rest of the burst waits for that step and joins the next (a lone request's lowest latency); waiting lets the burst be admitted and prefilled together (stops early once MaxSequences are queued), trading up to MaxBatchWait of first-request latency for fewer steps. The wait sleeps on SemaphoreSlim.Wait(TimeSpan), which truncates to whole milliseconds, so a wait with under 1 ms left ends at once: the hold can end up to 1 ms early (2 ms holds about 1 to 2 ms).");
        Console.WriteLine();
        Console.WriteLine($"total: {setup.Elapsed.TotalSeconds:F0} s");
        return 0;
    }

    private readonly record struct MaxSequencesResult(double TokensPerSecond, double TtftP50, double TtftP99, double GapP50, double GapP99, double TotalSeconds, int Steps);

    private readonly record struct ChunkedPrefillResult(double GapBeforeP50, double WorstGapDuring, double LongestStep, double LongTtft, int PrefillSteps);

    private readonly record struct StaggeredResult(int FirstStepAdmitted, int PrefillSteps, double TtftP50, double TtftP99, double TokensPerSecond, int Steps);

    private static MaxSequencesResult RunMaxSequences(PassLog log, int maxSequences, int requests, int generated)
    {
        using var run = new SchedulerRun(log, new SchedulerOptions { MaxSequences = maxSequences, MaxBatchedTokens = 2048, EosTokenId = null });
        var prompts = BenchModel.DistinctPrompts(requests, PromptTokens);
        var start = Stopwatch.GetTimestamp();
        var consumers = new Consumer[requests];
        for (var i = 0; i < requests; i++)
            consumers[i] = run.Submit(prompts[i], generated);
        run.WaitAll(consumers, generated);
        run.Finish();
        var end = consumers.Max(c => c.Stamps[generated - 1]);
        var ttft = consumers.Select(c => Ms(c.Stamps[0] - start)).ToList();
        var gaps = consumers.SelectMany(Gaps).ToList();
        var seconds = Stopwatch.GetElapsedTime(start, end).TotalSeconds;
        return new(requests * generated / seconds, Percentile(ttft, 50), Percentile(ttft, 99), Percentile(gaps, 50), Percentile(gaps, 99), seconds, log.Passes.Length);
    }

    private static ChunkedPrefillResult RunChunkedPrefill(PassLog log, int budget, int longTokens)
    {
        const int decoders = 8;
        const int warmTokens = 6;
        using var run = new SchedulerRun(log, new SchedulerOptions { MaxSequences = 16, MaxBatchedTokens = budget, EosTokenId = null });
        // Enough tokens that the decoders are still streaming when the long prompt's first token comes: warmTokens
        // before it arrives, one per step while it is prefilled in chunks of (budget - decoders), a margin after.
        var chunks = (longTokens + budget - decoders - 1) / (budget - decoders);
        var decodeTokens = warmTokens + chunks + 8;
        var prompts = BenchModel.DistinctPrompts(decoders + 1, longTokens, seed: 11);
        var consumers = new Consumer[decoders];
        using var ready = new CountdownEvent(decoders);
        for (var i = 0; i < decoders; i++)
            consumers[i] = run.Submit(prompts[i].AsSpan(0, PromptTokens).ToArray(), decodeTokens, warmTokens, ready);
        if (!ready.Wait(TimeSpan.FromMinutes(1)))
            throw new TimeoutException("the decoders did not start streaming");
        var arrived = Stopwatch.GetTimestamp();
        var longRequest = run.Submit(prompts[decoders], 2);
        run.WaitAll([longRequest], 2);
        run.WaitAll(consumers, decodeTokens);
        run.Finish();
        var first = longRequest.Stamps[0];
        // Gaps before the arrival: the decoders' steady pace. During: any gap that overlaps [arrival, first token].
        var before = new List<double>();
        var worst = 0.0;
        foreach (var c in consumers)
        {
            for (var t = 1; t < decodeTokens; t++)
            {
                var (a, b) = (c.Stamps[t - 1], c.Stamps[t]);
                if (b <= arrived)
                    before.Add(Ms(b - a));
                else if (a <= first)
                    worst = Math.Max(worst, Ms(b - a));
            }
        }
        // Passes that started after the arrival and fed prompt rows: the long prompt's chunks (the decoders' prompts
        // were prefilled long before).
        var prefillSteps = 0;
        var longest = 0.0;
        foreach (var pass in log.Passes)
        {
            if (pass.Start < arrived || !pass.Prefilled)
                continue;
            prefillSteps++;
            longest = Math.Max(longest, Ms(pass.End - pass.Start));
        }
        return new(Percentile(before, 50), worst, longest, Ms(first - arrived), prefillSteps);
    }

    private static StaggeredResult RunStaggered(PassLog log, TimeSpan maxBatchWait, int generated)
    {
        const int requests = 16;
        var interval = Stopwatch.Frequency / 2000; // 0.5 ms
        using var run = new SchedulerRun(log, new SchedulerOptions { MaxSequences = requests, MaxBatchedTokens = 2048, MaxBatchWait = maxBatchWait, EosTokenId = null });
        // The loop has started and, nothing submitted, is idle.
        run.WaitStarted();
        var prompts = BenchModel.DistinctPrompts(requests, PromptTokens, seed: 13);
        var submitted = new long[requests];
        var consumers = new Consumer[requests];
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < requests; i++)
        {
            var due = start + (i * interval);
            while (Stopwatch.GetTimestamp() < due)
                Thread.SpinWait(20);
            submitted[i] = Stopwatch.GetTimestamp();
            consumers[i] = run.Submit(prompts[i], generated);
        }
        run.WaitAll(consumers, generated);
        run.Finish();
        var ttft = consumers.Select((c, i) => Ms(c.Stamps[0] - submitted[i])).ToList();
        var end = consumers.Max(c => c.Stamps[generated - 1]);
        var seconds = Stopwatch.GetElapsedTime(start, end).TotalSeconds;
        var passes = log.Passes;
        var prefillSteps = 0;
        foreach (var pass in passes)
            prefillSteps += pass.Prefilled ? 1 : 0;
        // Each 8-token prompt is admitted whole and samples its first token in the step that admits it.
        return new(passes[0].Sampled, prefillSteps, Percentile(ttft, 50), Percentile(ttft, 99), requests * generated / seconds, passes.Length);
    }

    private static IEnumerable<double> Gaps(Consumer c)
    {
        for (var t = 1; t < c.Stamps.Length; t++)
            yield return Ms(c.Stamps[t] - c.Stamps[t - 1]);
    }
    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    // Nearest rank.
    private static double Percentile(List<double> values, int percentile)
    {
        if (values.Count == 0)
            return double.NaN;
        values.Sort();
        var rank = (int)Math.Ceiling(percentile / 100.0 * values.Count);
        return values[Math.Clamp(rank - 1, 0, values.Count - 1)];
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    // One request's stream: every token's read time.
    private sealed class Consumer
    {
        public required long[] Stamps { get; init; }

        public int Count;

        public Task Done { get; set; } = Task.CompletedTask;
    }

    // The scheduler's forward passes (one per step that had rows), timed: rows fed and rows sampled. A pass with more
    // rows than sampled ones carried prompt tokens (a decode row is always sampled; a prompt chunk samples at most its
    // last row). Written by the scheduler thread only, read after the run stops (or up to a volatile count).
    private sealed class PassLog(IForwardPass inner) : IForwardPass
    {
        private readonly Pass[] _passes = new Pass[1 << 16];
        private int _count;

        public readonly record struct Pass(long Start, long End, int Rows, int Sampled)
        {
            public bool Prefilled => Rows > Sampled;
        }

        public int VocabSize => inner.VocabSize;

        public ReadOnlySpan<Pass> Passes => _passes.AsSpan(0, Volatile.Read(ref _count));

        public void Clear() => Volatile.Write(ref _count, 0);

        public void Prefill(PagedKvCache cache, long sequenceId, ReadOnlySpan<int> tokens, ReadOnlySpan<int> slotMapping, int cachedTokens, Span<float> logits) =>
            inner.Prefill(cache, sequenceId, tokens, slotMapping, cachedTokens, logits);

        public void Decode(PagedKvCache cache, ReadOnlySpan<long> sequenceIds, ReadOnlySpan<int> tokens, ReadOnlySpan<int> slotMapping, Span<float> logits) =>
            inner.Decode(cache, sequenceIds, tokens, slotMapping, logits);

        public void Forward(PagedKvCache cache, ReadOnlySpan<long> sequenceIds, ReadOnlySpan<int> tokens, ReadOnlySpan<int> positions,
            ReadOnlySpan<int> slotMapping, ReadOnlySpan<int> logitRows, Span<float> logits)
        {
            var start = Stopwatch.GetTimestamp();
            inner.Forward(cache, sequenceIds, tokens, positions, slotMapping, logitRows, logits);
            _passes[_count] = new Pass(start, Stopwatch.GetTimestamp(), tokens.Length, logitRows.Length);
            Volatile.Write(ref _count, _count + 1);
        }
    }

    // A scheduler over a fresh cache with RunAsync on its own thread; Finish stops it and checks nothing was recomputed.
    private sealed class SchedulerRun : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Thread _thread;
        private Exception? _failure;
        private volatile bool _started;

        public SchedulerRun(PassLog log, SchedulerOptions options)
        {
            log.Clear();
            var cache = new PagedKvCache(new KvCacheOptions { NumBlocks = NumBlocks, BlockSize = BlockSize, EnablePrefixCaching = false });
            Scheduler = new BatchScheduler(log, cache, options);
            _thread = new Thread(Loop) { IsBackground = true, Name = "scheduler" };
            _thread.Start();
        }

        public BatchScheduler Scheduler { get; }

        private void Loop()
        {
            try
            {
                _started = true;
                Scheduler.RunAsync(_stop.Token).GetAwaiter().GetResult();
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                _failure = e;
            }
        }

        // The loop thread is running (RunAsync, nothing submitted, goes straight to awaiting a submission).
        public void WaitStarted()
        {
            if (!SpinWait.SpinUntil(() => _started, TimeSpan.FromSeconds(10)))
                throw new TimeoutException("the scheduler loop did not start");
        }

        public Consumer Submit(int[] prompt, int maxTokens, int signalAt = 0, CountdownEvent? signal = null)
        {
            var reader = Scheduler.Submit(new GenerationRequest { PromptTokens = prompt, MaxTokens = maxTokens, Sampler = Greedy });
            var consumer = new Consumer { Stamps = new long[maxTokens] };
            consumer.Done = Consume(reader, consumer, signalAt, signal);
            return consumer;
        }

        private static async Task Consume(ChannelReader<int> reader, Consumer consumer, int signalAt, CountdownEvent? signal)
        {
            var stamps = consumer.Stamps;
            var count = 0;
            while (await reader.WaitToReadAsync().ConfigureAwait(false))
            {
                while (reader.TryRead(out _))
                {
                    stamps[count] = Stopwatch.GetTimestamp();
                    count++;
                    Volatile.Write(ref consumer.Count, count);
                    if (count == signalAt)
                        signal!.Signal();
                }
            }
            if (count != stamps.Length)
                throw new InvalidOperationException($"a request streamed {count} tokens, expected {stamps.Length}");
        }

        // Blocks until each consumer has read `tokens` tokens (its whole stream when that is its MaxTokens).
        public void WaitAll(Consumer[] consumers, int tokens)
        {
            var deadline = Stopwatch.GetTimestamp() + (Stopwatch.Frequency * 300);
            foreach (var c in consumers)
            {
                if (tokens == c.Stamps.Length)
                {
                    if (!c.Done.Wait(TimeSpan.FromMinutes(5)))
                        throw new TimeoutException("a request did not finish");
                    continue;
                }
                while (Volatile.Read(ref c.Count) < tokens)
                {
                    if (c.Done.IsCompleted)
                        c.Done.GetAwaiter().GetResult();
                    if (_failure is not null)
                        throw new InvalidOperationException("the scheduler loop failed", _failure);
                    if (Stopwatch.GetTimestamp() > deadline)
                        throw new TimeoutException("a request did not stream enough tokens");
                    Thread.Sleep(1);
                }
            }
        }

        // Stops the loop (after the run's requests have finished) and checks nothing was recomputed.
        public void Finish()
        {
            _stop.Cancel();
            _thread.Join();
            if (_failure is not null)
                throw new InvalidOperationException("the scheduler loop failed", _failure);
            if (Scheduler.GetMetrics().Preemptions != 0)
                throw new InvalidOperationException("the scheduler preempted a sequence; the cache is too small for the run");
        }

        public void Dispose()
        {
            if (!_stop.IsCancellationRequested)
            {
                _stop.Cancel();
                _thread.Join();
            }
            _stop.Dispose();
        }
    }
}
