using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Retries;

namespace Wayang.Fast.Execution.Tests;

public class RetryMathTests
{
    private static RetryPolicy Policy(int maxAttempts = 5, long initial = 100, double multiplier = 2, long max = 1000, double jitter = 0) =>
        new() { MaxAttempts = maxAttempts, InitialDelayMs = initial, Multiplier = multiplier, MaxDelayMs = max, Jitter = jitter, NonRetryableErrors = ["BAD_INPUT"] };

    [Theory]
    [InlineData(1, 100)]
    [InlineData(2, 200)]
    [InlineData(3, 400)]
    [InlineData(4, 800)]
    public void Delay_grows_exponentially_from_the_initial_delay(int failedAttempt, long expected) =>
        Assert.Equal(expected, RetryMath.NextDelayMs(Policy(), failedAttempt, 0.5));

    [Theory]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(60)]
    [InlineData(int.MaxValue)]
    public void Delay_is_capped_at_the_maximum(int failedAttempt) =>
        Assert.Equal(1000, RetryMath.NextDelayMs(Policy(), failedAttempt, 0.5));

    [Fact]
    public void Multiplier_one_keeps_the_delay_constant()
    {
        for (int attempt = 1; attempt < 10; attempt++)
            Assert.Equal(100, RetryMath.NextDelayMs(Policy(multiplier: 1), attempt, 0.5));
    }

    [Fact]
    public void Zero_initial_delay_retries_immediately() => Assert.Equal(0, RetryMath.NextDelayMs(Policy(initial: 0), 3, 0.9));

    [Theory]
    [InlineData(0.0, 800)]
    [InlineData(0.5, 1000)]
    [InlineData(0.999999, 1200)]
    public void Jitter_spreads_the_delay_within_its_fraction(double random01, long expected) =>
        Assert.Equal(expected, RetryMath.NextDelayMs(Policy(initial: 1000, max: 10_000, jitter: 0.2), 1, random01));

    [Fact]
    public void Jittered_delays_stay_within_bounds_for_any_random_value()
    {
        var policy = Policy(initial: 100, multiplier: 3, max: 5000, jitter: 0.5);
        for (int attempt = 1; attempt <= 10; attempt++)
        {
            long nominal = RetryMath.NextDelayMs(policy, attempt, 0.5);
            for (double r = 0; r < 1; r += 0.01)
            {
                long delay = RetryMath.NextDelayMs(policy, attempt, r);
                Assert.InRange(delay, (long)Math.Floor(nominal * 0.5), (long)Math.Ceiling(nominal * 1.5));
            }
        }
    }

    [Fact]
    public void Out_of_range_random_values_are_clamped()
    {
        var policy = Policy(initial: 1000, max: 10_000, jitter: 0.2);
        Assert.Equal(800, RetryMath.NextDelayMs(policy, 1, -5));
        Assert.Equal(1200, RetryMath.NextDelayMs(policy, 1, 7));
        Assert.Equal(1000, RetryMath.NextDelayMs(policy, 1, double.NaN));
    }

    [Theory]
    [InlineData(1, true)]
    [InlineData(2, true)]
    [InlineData(3, false)]
    [InlineData(4, false)]
    public void Retries_stop_at_max_attempts(int failedAttempt, bool expected) =>
        Assert.Equal(expected, RetryMath.ShouldRetry(Policy(maxAttempts: 3), failedAttempt, "BOOM", retryable: true));

    [Fact]
    public void Max_attempts_one_never_retries() => Assert.False(RetryMath.ShouldRetry(Policy(maxAttempts: 1), 1, null, retryable: true));

    [Fact]
    public void Non_retryable_codes_are_never_retried()
    {
        Assert.False(RetryMath.ShouldRetry(Policy(), 1, "BAD_INPUT", retryable: true));
        // Codes compare exactly (ordinal): a different spelling is a different code.
        Assert.True(RetryMath.ShouldRetry(Policy(), 1, "bad_input", retryable: true));
        Assert.True(RetryMath.ShouldRetry(Policy(), 1, null, retryable: true));
    }

    [Fact]
    public void A_failure_marked_not_retryable_is_never_retried() => Assert.False(RetryMath.ShouldRetry(Policy(), 1, "BOOM", retryable: false));
}
