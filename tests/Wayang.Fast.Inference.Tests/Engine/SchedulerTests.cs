using System.Threading.Channels;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Engine.Kernels;
using Wayang.Fast.Inference.Engine.KvCache;
using Wayang.Fast.Inference.Engine.Model;
using Wayang.Fast.Inference.Engine.Sampling;
using Wayang.Fast.Inference.Engine.Scheduling;
using Wayang.Fast.Inference.Tests.Gguf;

namespace Wayang.Fast.Inference.Tests.Engine;

// The continuous batching scheduler (issue 8) on the tiny model, greedy, driven step by step so every assertion is
// about a known point in the schedule. Greedy output is the oracle: batching, chunking, preemption and recompute must
// not change it. Alone runs a request by itself with a budget that prefills its prompt whole.
public sealed class SchedulerTests : IDisposable
{
    private const int BlockSize = 4;
    // Far more steps than any test needs; reaching it means the scheduler stopped making progress.
    private const int StepLimit = 1000;
    // Only bounds a hang; no assertion depends on it.
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(60);
    private static readonly SamplerOptions Greedy = new() { Temperature = 0f };
    private static readonly int[] Long13 = [1, 101, 273, 262, 199, 30, 270, 250, 260, 271, 275, 200, 44];
    private static readonly int[] Long17 = [1, 55, 66, 77, 88, 99, 110, 121, 132, 143, 154, 165, 176, 187, 198, 209, 220];

    private readonly TempDirectory _dir = new("scheduler");
    private readonly LlamaModel _model;
    private readonly CpuKernels _kernels = new(2);

    public SchedulerTests()
    {
        string path = TinyGgufWriter.Write(Path.Combine(_dir.Path, "tiny.gguf"), new TinyGgufOptions { HeadCountKv = 2 });
        _model = LlamaModel.Load(path);
    }

    public void Dispose()
    {
        _kernels.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public void Requests_batched_together_give_the_tokens_each_gives_alone()
    {
        int[][] prompts = [[1, 270, 250, 260, 271, 275, 200], [1, 270, 271, 272], [1, 101, 273, 262, 199, 30]];
        var (scheduler, cache) = Create();
        var readers = prompts.Select(p => scheduler.Submit(Request(p, 8))).ToArray();
        RunToCompletion(scheduler);

        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(Alone(prompts[i], 8), Drain(readers[i]));
        var metrics = scheduler.GetMetrics();
        Assert.Equal(3 * 8, metrics.TokensGenerated);
        Assert.Equal(0, metrics.Running);
        Assert.Equal(0, metrics.Waiting);
        Assert.Null(cache.CheckInvariants());
    }

    [Fact]
    public void A_running_sequence_decodes_first_and_the_budget_left_bounds_the_prefill_chunk()
    {
        var (scheduler, cache) = Create(maxBatchedTokens: 5, maxSequences: 2);
        var running = new Stream(scheduler.Submit(Request([1, 270, 250], 10)));
        Assert.Equal(new StepResult(0, 1, 0, 0, 0, PrefillTokens: 3), scheduler.Step());
        Assert.Equal(1, running.Pull());

        var arriving = new Stream(scheduler.Submit(Request(Long13, 4)));
        // Each step: the running sequence's decode (one token to it), then what the budget leaves of the 13 prompt
        // tokens: 4, 4, 4, then the last 1.
        Assert.Equal(new StepResult(1, 1, 0, 0, 0, PrefillTokens: 4), scheduler.Step());
        Assert.Equal((1, 0), (running.Pull(), arriving.Pull()));
        Assert.Equal(new StepResult(1, 0, 0, 0, 0, PrefillTokens: 4), scheduler.Step());
        Assert.Equal((1, 0), (running.Pull(), arriving.Pull()));
        Assert.Equal(new StepResult(1, 0, 0, 0, 0, PrefillTokens: 4), scheduler.Step());
        Assert.Equal((1, 0), (running.Pull(), arriving.Pull()));
        // The last chunk: the prompt's first token is sampled only now.
        Assert.Equal(new StepResult(1, 0, 0, 0, 0, PrefillTokens: 1), scheduler.Step());
        Assert.Equal((1, 1), (running.Pull(), arriving.Pull()));
        Assert.Equal(new StepResult(2, 0, 0, 0, 0, PrefillTokens: 0), scheduler.Step());
        Assert.Equal((1, 1), (running.Pull(), arriving.Pull()));

        RunToCompletion(scheduler);
        Assert.Equal(Alone([1, 270, 250], 10), running.Complete());
        Assert.Equal(Alone(Long13, 4), arriving.Complete());
        Assert.Null(cache.CheckInvariants());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(12)]
    public void A_prompt_longer_than_the_budget_is_prefilled_in_chunks_and_gives_the_whole_prefill_tokens(int maxBatchedTokens)
    {
        var (scheduler, cache) = Create(maxBatchedTokens: maxBatchedTokens, maxSequences: 1);
        var stream = new Stream(scheduler.Submit(Request(Long13, 8)));
        var chunks = (Long13.Length + maxBatchedTokens - 1) / maxBatchedTokens;
        for (int i = 1; i < chunks; i++)
        {
            Assert.Equal(Math.Min(maxBatchedTokens, Long13.Length - ((i - 1) * maxBatchedTokens)), scheduler.Step().PrefillTokens);
            Assert.Equal(0, stream.Pull());
            Assert.Equal(i * maxBatchedTokens, cache.GetMetrics().LiveTokens);
        }
        scheduler.Step();
        Assert.Equal(1, stream.Pull());

        RunToCompletion(scheduler);
        Assert.Equal(Alone(Long13, 8), stream.Complete());
    }

    [Theory]
    [InlineData(256)]
    [InlineData(3)]
    public void Preemption_by_recompute_leaves_every_sequence_its_alone_tokens(int maxBatchedTokens)
    {
        int[][] prompts = [[1, 270, 250, 260], [1, 101, 273, 262], [1, 30, 199, 271]];
        // 6 blocks of 4 slots; each request grows to 4 + 7 = 11 tokens (3 blocks), so the three cannot all finish together.
        var (scheduler, cache) = Create(numBlocks: 6, maxBatchedTokens: maxBatchedTokens, maxSequences: 3);
        var readers = prompts.Select(p => scheduler.Submit(Request(p, 8))).ToArray();
        RunToCompletion(scheduler);

        Assert.True(scheduler.GetMetrics().Preemptions > 0, "the cache was meant to be too small for all three");
        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(Alone(prompts[i], 8), Drain(readers[i]));
        Assert.Equal(0, cache.GetMetrics().UsedBlocks);
        Assert.Null(cache.CheckInvariants());
    }

    [Fact]
    public void The_lowest_priority_latest_arrival_is_preempted()
    {
        int[][] prompts = [[1, 270, 250, 260], [1, 101, 273, 262], [1, 30, 199, 271]];
        int[] priorities = [0, 1, 0];
        var (scheduler, cache) = Create(numBlocks: 6, maxSequences: 3);
        var streams = prompts.Select((p, i) => new Stream(scheduler.Submit(Request(p, 8, priorities[i])))).ToArray();

        StepResult result = default;
        for (int i = 0; i < StepLimit && result.Preempted == 0; i++)
        {
            foreach (var stream in streams)
                stream.Pull();
            result = scheduler.Step();
        }
        Assert.Equal(1, result.Preempted);
        // In the preempting step the two others decoded; the third (priority 0 like the first, but later) gave way.
        Assert.Equal([1, 1, 0], streams.Select(s => s.Pull()).ToArray());
        Assert.Equal(1, scheduler.GetMetrics().Preemptions);
        Assert.Equal((2, 1), (scheduler.GetMetrics().Running, scheduler.GetMetrics().Waiting));

        RunToCompletion(scheduler);
        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(Alone(prompts[i], 8), streams[i].Complete());
        Assert.Null(cache.CheckInvariants());
    }

    [Fact]
    public void A_prefill_left_without_blocks_by_the_decodes_gives_way_and_is_recomputed()
    {
        // 6 blocks of 4. The decoding request grows one token a step; the 13-token prompt is prefilled 3 tokens a step
        // (the budget left after the decode) and was admitted with room for its whole prompt, but the decode's growth
        // takes the last free block in step 6, just before the prompt's fourth block is needed.
        var (scheduler, cache) = Create(numBlocks: 6, maxBatchedTokens: 4, maxSequences: 2);
        var decoding = new Stream(scheduler.Submit(Request([1, 270, 250, 260], 16)));
        scheduler.Step();
        var prefilling = new Stream(scheduler.Submit(Request(Long13, 2)));
        for (int i = 2; i <= 5; i++)
            Assert.Equal(3, scheduler.Step().PrefillTokens);
        // One block left, 12 of the 13 prompt tokens computed in three full blocks; the decode now needs a new block.
        Assert.Equal(1, cache.AvailableBlocks);
        Assert.Equal(new StepResult(1, 0, 1, 0, 0, PrefillTokens: 0), scheduler.Step());
        Assert.Equal((1, 1), (scheduler.GetMetrics().Running, scheduler.GetMetrics().Waiting));

        RunToCompletion(scheduler);
        Assert.Equal(1, scheduler.GetMetrics().Preemptions);
        Assert.Equal(Alone([1, 270, 250, 260], 16), decoding.Complete());
        Assert.Equal(Alone(Long13, 2), prefilling.Complete());
        Assert.Null(cache.CheckInvariants());
    }

    [Fact]
    public async Task Cancellation_frees_the_blocks_at_the_next_step_and_faults_the_stream()
    {
        var (scheduler, cache) = Create(maxBatchedTokens: 5, maxSequences: 2);
        int available = cache.AvailableBlocks;
        using var cts = new CancellationTokenSource();
        var decoding = scheduler.Submit(Request([1, 270, 250], 20, cancellation: cts.Token));
        var prefilling = scheduler.Submit(Request(Long13, 4, cancellation: cts.Token));
        scheduler.Step();
        scheduler.Step();
        // One decoding (3 + 1 tokens), one part-way through its prompt (2 + 4 of 13).
        Assert.Equal(2, cache.SequenceCount);
        Assert.True(cache.GetMetrics().UsedBlocks > 0);
        Assert.Equal(0, scheduler.GetMetrics().Waiting);

        await cts.CancelAsync();
        Assert.Equal(2, scheduler.Step().Cancelled);
        Assert.Equal(0, cache.SequenceCount);
        Assert.Equal(0, cache.GetMetrics().UsedBlocks);
        Assert.Equal(available, cache.AvailableBlocks);
        Assert.False(scheduler.HasWork);

        Assert.Equal(2, Drain(decoding).Count);
        Assert.Empty(Drain(prefilling));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => decoding.Completion.WaitAsync(Guard));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => prefilling.Completion.WaitAsync(Guard));
    }

    [Fact]
    public void A_higher_priority_request_is_admitted_before_an_earlier_lower_one()
    {
        var (scheduler, _) = Create(maxSequences: 1);
        var low = new Stream(scheduler.Submit(Request([1, 270, 250, 260], 3, priority: 0)));
        var high = new Stream(scheduler.Submit(Request([1, 101, 273, 262], 3, priority: 5)));
        scheduler.Step();
        Assert.Equal((0, 1), (low.Pull(), high.Pull()));
        scheduler.Step();
        scheduler.Step();
        Assert.Equal((0, 2), (low.Pull(), high.Pull()));
        // The high one finished in that step, so the low one starts now.
        scheduler.Step();
        Assert.Equal((1, 0), (low.Pull(), high.Pull()));

        RunToCompletion(scheduler);
        Assert.Equal(Alone([1, 270, 250, 260], 3), low.Complete());
        Assert.Equal(Alone([1, 101, 273, 262], 3), high.Complete());
    }

    [Fact]
    public void Submit_refuses_an_empty_prompt_no_tokens_and_what_the_cache_can_never_hold()
    {
        // 4 blocks of 4: 16 slots. A request holds prompt + max tokens - 1 (the last token is never fed back).
        var (scheduler, _) = Create(numBlocks: 4, maxBatchedTokens: 5, maxSequences: 2);
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<WayangException>(() => scheduler.Submit(Request([], 4))).Code);
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<WayangException>(() => scheduler.Submit(Request([1, 2], 0))).Code);
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<WayangException>(() => scheduler.Submit(Request([1, 2], -3))).Code);
        var tooLong = Assert.Throws<WayangException>(() => scheduler.Submit(Request(Long13, 5)));
        Assert.Equal(ErrorCode.ContextLengthExceeded, tooLong.Code);
        Assert.Contains("needs 17 KV cache slots", tooLong.Message, StringComparison.Ordinal);
        Assert.Contains("holds 16", tooLong.Message, StringComparison.Ordinal);
        Assert.False(scheduler.HasWork);

        // Exactly full fits, though it is longer than the step budget.
        var fits = scheduler.Submit(Request(Long13, 4));
        RunToCompletion(scheduler);
        Assert.Equal(Alone(Long13, 4), Drain(fits));
    }

    [Fact]
    public void A_repeated_prompt_reuses_the_cached_blocks_and_gives_the_same_tokens()
    {
        var (scheduler, cache) = Create();
        var first = scheduler.Submit(Request(Long13, 5));
        RunToCompletion(scheduler);
        Assert.Equal(0, cache.GetMetrics().PrefixHitBlocks);

        var second = scheduler.Submit(Request(Long13, 5));
        // Three full blocks (12 tokens) are reused; only the last prompt token is computed.
        Assert.Equal(1, scheduler.Step().PrefillTokens);
        Assert.Equal(3, cache.GetMetrics().PrefixHitBlocks);
        RunToCompletion(scheduler);
        var expected = Drain(first);
        Assert.Equal(Alone(Long13, 5), expected);
        Assert.Equal(expected, Drain(second));
        Assert.Null(cache.CheckInvariants());
    }

    [Theory]
    [InlineData(256)]
    [InlineData(10)]
    public void Identical_prompts_admitted_together_share_blocks_computed_in_the_same_step(int maxBatchedTokens)
    {
        // With 256 both are admitted in step 1 and the second reuses the four blocks the first's prefill writes in that
        // very forward pass. With 10 the first runs 10 tokens, then its last 7 (filling its third and fourth blocks)
        // alongside the second's admission, which reuses all four and computes only the last token.
        var (scheduler, cache) = Create(maxBatchedTokens: maxBatchedTokens, maxSequences: 2);
        var a = scheduler.Submit(Request(Long17, 6));
        var b = scheduler.Submit(Request(Long17, 6));
        RunToCompletion(scheduler);

        Assert.Equal(4, cache.GetMetrics().PrefixHitBlocks);
        var expected = Alone(Long17, 6);
        Assert.Equal(expected, Drain(a));
        Assert.Equal(expected, Drain(b));
        Assert.Null(cache.CheckInvariants());
    }

    [Fact]
    public async Task RunAsync_holds_the_first_step_after_idle_until_a_burst_of_MaxSequences_is_queued()
    {
        const int MaxSequences = 4;
        var (scheduler, _) = Create(maxSequences: MaxSequences, maxBatchWait: TimeSpan.FromSeconds(30));
        using var cts = new CancellationTokenSource();
        var run = Task.Run(() => scheduler.RunAsync(cts.Token));
        int[][] prompts = [[1, 270, 250], [1, 101, 273, 262], [1, 30, 199], [1, 44, 55, 66, 77]];

        var readers = new List<ChannelReader<int>> { scheduler.Submit(Request(prompts[0], 1)) };
        // The loop woke for the first request and is now waiting for more: no step has run.
        Assert.True(SpinWait.SpinUntil(() => scheduler.GetMetrics().BatchWaits == 1, Guard), "RunAsync never started a batch wait");
        Assert.Equal(0, scheduler.GetMetrics().Steps);
        readers.AddRange(prompts.Skip(1).Select(p => scheduler.Submit(Request(p, 1))));

        var outputs = await Task.WhenAll(readers.Select(r => r.ReadAllAsync().ToListAsync().AsTask().WaitAsync(Guard)));
        // One token each and all from the first step: the four were admitted together, long before the 30 s ran out.
        Assert.Equal(1, scheduler.GetMetrics().Steps);
        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(Alone(prompts[i], 1), outputs[i]);

        await cts.CancelAsync();
        try
        {
            await run.WaitAsync(Guard);
        }
        catch (OperationCanceledException)
        {
            // RunAsync ends by cancellation, either at its loop check or inside its wait.
        }
    }

    private (BatchScheduler Scheduler, PagedKvCache Cache) Create(int numBlocks = 64, int maxBatchedTokens = 256, int maxSequences = 8, TimeSpan maxBatchWait = default)
    {
        var forward = new LlamaForward(_model, _kernels, numBlocks, BlockSize);
        var cache = new PagedKvCache(new KvCacheOptions { NumBlocks = numBlocks, BlockSize = BlockSize });
        // No EOS: every request runs to its max tokens, so the schedules the tests reason about are fixed.
        var options = new SchedulerOptions { MaxBatchedTokens = maxBatchedTokens, MaxSequences = maxSequences, MaxBatchWait = maxBatchWait };
        return (new BatchScheduler(forward, cache, options), cache);
    }

    private static GenerationRequest Request(int[] prompt, int maxTokens, int priority = 0, CancellationToken cancellation = default) => new()
    {
        PromptTokens = prompt,
        MaxTokens = maxTokens,
        Sampler = Greedy,
        Priority = priority,
        CancellationToken = cancellation,
    };

    private List<int> Alone(int[] prompt, int maxTokens)
    {
        var (scheduler, _) = Create();
        var reader = scheduler.Submit(Request(prompt, maxTokens));
        RunToCompletion(scheduler);
        return Drain(reader);
    }

    private static void RunToCompletion(BatchScheduler scheduler)
    {
        for (int i = 0; i < StepLimit && scheduler.HasWork; i++)
            scheduler.Step();
        Assert.False(scheduler.HasWork, $"work left after {StepLimit} steps");
    }

    private static List<int> Drain(ChannelReader<int> reader)
    {
        var tokens = new List<int>();
        while (reader.TryRead(out int token))
            tokens.Add(token);
        return tokens;
    }

    // A request's stream read as the test goes: Pull says how many tokens arrived since the last Pull.
    private sealed class Stream(ChannelReader<int> reader)
    {
        private readonly List<int> _tokens = [];

        public int Pull()
        {
            int before = _tokens.Count;
            _tokens.AddRange(Drain(reader));
            return _tokens.Count - before;
        }

        public List<int> Complete()
        {
            Pull();
            Assert.True(reader.Completion.IsCompletedSuccessfully, "the stream did not complete");
            return _tokens;
        }
    }
}
