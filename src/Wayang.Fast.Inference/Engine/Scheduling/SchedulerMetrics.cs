namespace Wayang.Fast.Inference.Engine.Scheduling;

// A snapshot; Preemptions, Steps, TokensGenerated and BatchWaits are cumulative since the scheduler was created.
public readonly record struct SchedulerMetrics
{
    // Admitted and holding KV blocks: decoding, or part-way through a chunked prefill.
    public int Running { get; init; }

    // Submitted or preempted and not yet (re)admitted.
    public int Waiting { get; init; }

    public long Preemptions { get; init; }

    public long Steps { get; init; }

    public long TokensGenerated { get; init; }

    // Times RunAsync held a first step after idle for MaxBatchWait.
    public long BatchWaits { get; init; }
}

// What one Step did, for callers (and tests) that drive the scheduler by hand. Decoded counts sequences that fed their
// last sampled token; PrefillTokens counts prompt (or recompute) tokens computed, cached prefix tokens excluded.
public readonly record struct StepResult(int Decoded, int Admitted, int Preempted, int Finished, int Cancelled, int PrefillTokens)
{
    public bool DidWork => Decoded + Admitted + Preempted + Finished + Cancelled + PrefillTokens > 0;
}
