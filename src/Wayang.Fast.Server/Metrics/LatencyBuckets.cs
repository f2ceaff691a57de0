using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Wayang.Fast.Server.Metrics;

// Fixed histogram buckets (seconds) shared by request latency and journal commit latency. Bounds are kept
// in Stopwatch ticks so recording is a compare loop, no floating point and no allocation.
internal static class LatencyBuckets
{
    public static readonly double[] BoundsSeconds =
        [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    // Bucket count including +Inf.
    public static readonly int Count = BoundsSeconds.Length + 1;

    private static readonly long[] BoundsTicks = BuildTicks();

    public static readonly string[] LeLabels = BuildLabels();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int IndexOf(long elapsedTicks)
    {
        var bounds = BoundsTicks;
        for (int i = 0; i < bounds.Length; i++)
        {
            if (elapsedTicks <= bounds[i])
                return i;
        }
        return bounds.Length;
    }

    private static long[] BuildTicks()
    {
        var ticks = new long[BoundsSeconds.Length];
        for (int i = 0; i < ticks.Length; i++)
            ticks[i] = (long)(BoundsSeconds[i] * Stopwatch.Frequency);
        return ticks;
    }

    private static string[] BuildLabels()
    {
        var labels = new string[BoundsSeconds.Length + 1];
        for (int i = 0; i < BoundsSeconds.Length; i++)
            labels[i] = BoundsSeconds[i].ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        labels[^1] = "+Inf";
        return labels;
    }
}
