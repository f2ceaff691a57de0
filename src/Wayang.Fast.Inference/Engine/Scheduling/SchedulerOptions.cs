namespace Wayang.Fast.Inference.Engine.Scheduling;

public sealed class SchedulerOptions
{
    // Tokens one step may run: one per running sequence's decode plus the whole prompts admitted. Prompts are prefilled
    // whole (no chunking yet), so a prompt longer than this can never be admitted and Submit refuses it.
    public int MaxBatchedTokens { get; init; } = 2048;

    // Sequences holding KV blocks at once.
    public int MaxSequences { get; init; } = 64;

    // Generation stops after sampling this id (it is streamed); null means only max tokens stops it.
    public int? EosTokenId { get; init; }
}
