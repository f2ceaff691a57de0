namespace Wayang.Fast.Inference.Engine.Scheduling;

// The latency/throughput trade-off of the continuous batching scheduler.
public sealed class SchedulerOptions
{
    // Tokens one step may run: one per running sequence's decode, then prompt chunks up to what is left. Larger means
    // more prompt tokens per step (higher throughput, fewer steps to a long prompt's first token) but longer steps, so
    // running sequences wait longer between tokens. A prompt longer than this is prefilled in chunks over several
    // steps. Must be at least MaxSequences, so every running sequence's decode always fits in one step.
    public int MaxBatchedTokens { get; init; } = 2048;

    // Sequences holding KV blocks at once (running or part-way through their prefill). More means larger decode
    // batches (throughput) and more KV memory contention (preemptions).
    public int MaxSequences { get; init; } = 64;

    // How long RunAsync, woken from idle (nothing running) by a submission, holds the first step for more
    // submissions, so a burst is admitted and prefilled together; it stops waiting as soon as MaxSequences are queued.
    // Zero (the default) steps at once: the lowest latency for a lone request. Only the first step after idle waits;
    // Step, called by hand, never does.
    public TimeSpan MaxBatchWait { get; init; } = TimeSpan.Zero;

    // Generation stops after sampling this id (it is streamed); null means only max tokens stops it.
    public int? EosTokenId { get; init; }
}
