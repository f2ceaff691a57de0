using Wayang.Fast.Execution.Definitions;

namespace Wayang.Fast.Execution.Retries;

// Retry arithmetic: pure functions of the policy, so the engine's decisions are testable and replayable.
public static class RetryMath
{
    // Whether attempt `failedAttempt` (1-based) may be followed by another.
    public static bool ShouldRetry(RetryPolicy policy, int failedAttempt, string? errorCode, bool retryable)
    {
        if (!retryable || failedAttempt >= policy.MaxAttempts)
            return false;
        if (errorCode is not null && policy.NonRetryableErrors is { } nonRetryable)
        {
            foreach (var code in nonRetryable)
            {
                if (string.Equals(code, errorCode, StringComparison.Ordinal))
                    return false;
            }
        }
        return true;
    }

    // Delay before attempt failedAttempt + 1: initial * multiplier^(failedAttempt-1), capped at max, then +/- jitter
    // using random01 in [0,1).
    public static long NextDelayMs(RetryPolicy policy, int failedAttempt, double random01)
    {
        long initial = Math.Max(0, policy.InitialDelayMs);
        long max = Math.Max(initial, policy.MaxDelayMs);
        // Math.Pow overflows to +Infinity for large attempts, which the cap then absorbs; a NaN (a bad multiplier
        // that slipped past validation) falls back to the cap too.
        double delay = initial * Math.Pow(Math.Max(1.0, policy.Multiplier), Math.Max(0, failedAttempt - 1));
        if (!(delay <= max))
            delay = max;
        double jitter = double.IsNaN(policy.Jitter) ? 0 : Math.Clamp(policy.Jitter, 0, 1);
        double r = double.IsNaN(random01) ? 0.5 : Math.Clamp(random01, 0, 1);
        // r = 0.5 is the nominal delay; r -> 0 and r -> 1 reach -jitter and +jitter.
        delay *= 1 + (jitter * ((2 * r) - 1));
        return Math.Max(0, (long)Math.Round(delay, MidpointRounding.AwayFromZero));
    }
}
