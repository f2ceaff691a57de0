using System.Diagnostics;

namespace Wayang.Fast.LoadGen.Engine;

// The clock and the budget every worker shares. Times are Stopwatch timestamps.
// A request is MEASURED when its send time (closed) or intended send time (open) is in [MeasureStart, MeasureEnd);
// warmup requests run the same code but are not recorded.
internal sealed class RunControl
{
    private readonly CancellationTokenSource _abort;
    private readonly TimeSpan _drainTimeout;
    private readonly bool _budgeted;
    private long _budget;
    private int _stopped;

    public RunControl(long start, TimeSpan warmup, TimeSpan duration, long requests, TimeSpan drainTimeout, CancellationTokenSource abort)
    {
        Start = start;
        MeasureStart = start + ToTimestamp(warmup);
        // With a request budget the run ends when the budget is spent, not at a time.
        MeasureEnd = requests > 0 ? long.MaxValue : MeasureStart + ToTimestamp(duration);
        _budgeted = requests > 0;
        _budget = requests;
        _drainTimeout = drainTimeout;
        _abort = abort;
    }

    public long Start { get; }

    public long MeasureStart { get; }

    public long MeasureEnd { get; }

    public bool StopIssuing => Volatile.Read(ref _stopped) != 0;

    public CancellationToken Aborted => _abort.Token;

    public static long ToTimestamp(TimeSpan t) => (long)(t.TotalSeconds * Stopwatch.Frequency);

    // How many of `wanted` requests, sent at `at`, may go out. Warmup requests are free; measured ones come out of
    // the budget (requests mode); nothing goes out after the measured window or once stopped.
    // The open model passes endsOnlyCaller: each connection reaches the end of the window at its own intended times,
    // and one connection reaching it must not cancel the others' last due requests.
    public int Claim(int wanted, long at, bool endsOnlyCaller = false)
    {
        if (StopIssuing)
            return 0;
        if (at < MeasureStart)
            return wanted;
        if (at >= MeasureEnd)
        {
            if (!endsOnlyCaller)
                Stop();
            return 0;
        }
        if (!_budgeted)
            return wanted;
        long left = Interlocked.Add(ref _budget, -wanted);
        if (left >= 0)
        {
            if (left == 0)
                Stop();
            return wanted;
        }
        Stop();
        long granted = wanted + left;
        return granted > 0 ? (int)granted : 0;
    }

    // First stop starts the drain clock: in-flight replies get drainTimeout, then reads are aborted.
    public void Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 0)
        {
            try
            {
                _abort.CancelAfter(_drainTimeout);
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }
}
