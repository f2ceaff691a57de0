using HdrHistogram;

namespace Wayang.Fast.LoadGen.Engine;

// Per-connection counters and histograms, written by one connection's loops only and merged after the run,
// so recording never contends.
internal sealed class WorkerStats
{
    // Recorded unit: 100 ns (TimeSpan ticks), 3 significant digits, up to 60 s (larger values are clamped).
    public const long HighestTicks = 60L * TimeSpan.TicksPerSecond;

    public WorkerStats(bool open)
    {
        Latency = new LongHistogram(HighestTicks, 3);
        Uncorrected = open ? new LongHistogram(HighestTicks, 3) : null;
    }

    // Ok requests only; open model: from the intended send time (coordinated-omission corrected).
    public LongHistogram Latency { get; }

    // Open model: from the actual send time (service time as the server saw it, plus the wire).
    public LongHistogram? Uncorrected { get; }

    public long Ok;
    public long Failed;
    public long TimedOut;
    public long BytesSent;
    public long BytesReceived;
    public long LastCompletion;
    public long UnexpectedFrames;
    public Dictionary<string, long>? ErrorsByName;
    public string? ConnectionError;

    public void CountError(string name)
    {
        ErrorsByName ??= [];
        ErrorsByName[name] = ErrorsByName.GetValueOrDefault(name) + 1;
    }
}
