namespace Wayang.Fast.Inference.Engine.Scheduling;

// A snapshot; Preemptions, Steps and TokensGenerated are cumulative since the scheduler was created.
public readonly record struct SchedulerMetrics
{
    public int Running { get; init; }

    // Submitted or preempted and not yet (re)admitted.
    public int Waiting { get; init; }

    public long Preemptions { get; init; }

    public long Steps { get; init; }

    public long TokensGenerated { get; init; }
}

// What one Step did, for callers (and tests) that drive the scheduler by hand.
public readonly record struct StepResult(int Decoded, int Admitted, int Preempted, int Finished, int Cancelled)
{
    public bool DidWork => Decoded + Admitted + Preempted + Finished + Cancelled > 0;
}
