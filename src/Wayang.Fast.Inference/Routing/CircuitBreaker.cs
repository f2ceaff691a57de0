using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Inference.Routing;

public sealed class CircuitBreakerOptions
{
    // Consecutive failures that open the breaker.
    public int FailureThreshold { get; set; } = 5;
    // How long an open breaker refuses before it lets one probe through (half-open).
    public TimeSpan OpenDuration { get; set; } = TimeSpan.FromSeconds(30);
}

public enum BreakerState
{
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

public sealed record BreakerSnapshot(string Target, BreakerState State, int ConsecutiveFailures, DateTimeOffset? OpenUntil, long Opened);

// One per target (provider/model). Closed: everything passes, consecutive failures of the kinds that say "this target
// is unwell" are counted; at the threshold it opens. Open: refused until OpenDuration has passed, then one request is
// let through as a probe (half-open): its success closes the breaker, its failure opens it again. Errors that are
// about the request (context length, content, auth) neither count nor reset.
public sealed class CircuitBreaker(string target, CircuitBreakerOptions options, TimeProvider time)
{
    private readonly Lock _gate = new();
    private BreakerState _state;
    private int _failures;
    private long _openUntil;
    private bool _probing;
    private long _opened;

    public string Target => target;

    public static bool Counts(ErrorCode code) => code is ErrorCode.ProviderUnavailable or ErrorCode.InferenceTimeout
        or ErrorCode.ProviderBadResponse or ErrorCode.StreamBroken or ErrorCode.InferenceRateLimited;

    // Whether a request may go to the target now; a true in half-open state makes this request the probe.
    public bool TryEnter()
    {
        lock (_gate)
        {
            switch (_state)
            {
                case BreakerState.Closed:
                    return true;
                case BreakerState.Open when time.GetTimestamp() >= _openUntil:
                    _state = BreakerState.HalfOpen;
                    _probing = true;
                    return true;
                case BreakerState.HalfOpen when !_probing:
                    _probing = true;
                    return true;
                default:
                    return false;
            }
        }
    }

    public void OnSuccess()
    {
        lock (_gate)
        {
            _state = BreakerState.Closed;
            _failures = 0;
            _probing = false;
        }
    }

    public void OnFailure(ErrorCode code)
    {
        lock (_gate)
        {
            if (!Counts(code))
            {
                // The probe answered, just not for this request: let the next one probe.
                _probing = false;
                return;
            }
            _failures++;
            if (_state == BreakerState.HalfOpen || _failures >= options.FailureThreshold)
            {
                _state = BreakerState.Open;
                _openUntil = time.GetTimestamp() + (long)(options.OpenDuration.TotalSeconds * time.TimestampFrequency);
                _probing = false;
                _opened++;
            }
        }
    }

    // A probe that ended without an outcome (the caller cancelled): another request may probe.
    public void OnAbandoned()
    {
        lock (_gate)
            _probing = false;
    }

    public BreakerSnapshot Snapshot()
    {
        lock (_gate)
        {
            DateTimeOffset? until = null;
            if (_state == BreakerState.Open)
            {
                long left = _openUntil - time.GetTimestamp();
                until = time.GetUtcNow() + TimeSpan.FromSeconds(Math.Max(0, left) / (double)time.TimestampFrequency);
            }
            return new BreakerSnapshot(target, _state, _failures, until, _opened);
        }
    }
}
