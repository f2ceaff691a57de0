using Wayang.Fast.Execution.Definitions;

namespace Wayang.Fast.Execution.Retries;

// Retry arithmetic (STUB: implemented by the retry work item).
public static class RetryMath
{
    // Whether attempt `failedAttempt` (1-based) may be followed by another.
    public static bool ShouldRetry(RetryPolicy policy, int failedAttempt, string? errorCode, bool retryable) => throw new NotImplementedException();

    // Delay before attempt failedAttempt + 1: initial * multiplier^(failedAttempt-1), capped at max, then +/- jitter
    // using random01 in [0,1).
    public static long NextDelayMs(RetryPolicy policy, int failedAttempt, double random01) => throw new NotImplementedException();
}
