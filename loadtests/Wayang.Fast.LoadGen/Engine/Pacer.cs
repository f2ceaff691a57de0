using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Wayang.Fast.LoadGen.Engine;

// The open model's clock: one dedicated thread sends every connection's due requests with a synchronous Socket.Send.
// Async timers tick at ~1 ms here and a hop to a pool thread adds its own delay, both of which would be charged to
// the server as latency; a thread that sleeps with nanosleep (timer slack ~50 us) and sends directly keeps the
// generator's own lateness small. Whatever lateness remains is still counted, because latency runs from the
// intended time, and the uncorrected (actual-send) histogram is reported next to it.
internal static partial class Pacer
{
    private static readonly long MaxSleep = Stopwatch.Frequency / 1000;   // wake at least every 1 ms to see stops
    private static readonly long PollWhenFull = Stopwatch.Frequency / 20_000; // 50 us: in-flight cap reached

    public static void Run(LoadWorker[] workers, RunControl control)
    {
        while (true)
        {
            long now = Stopwatch.GetTimestamp();
            long earliest = long.MaxValue;
            bool anyActive = false;
            foreach (var w in workers)
            {
                if (w.IssuingDone)
                    continue;
                w.SendDue(now);
                if (w.IssuingDone)
                    continue;
                anyActive = true;
                long next = w.NextIntended;
                // Still due after sending: the in-flight cap is full; poll again soon for freed slots.
                earliest = Math.Min(earliest, next <= now ? now + PollWhenFull : next);
            }
            if (!anyActive || control.StopIssuing || control.Aborted.IsCancellationRequested)
                return;
            long wait = earliest - Stopwatch.GetTimestamp();
            if (wait > 0)
                Sleep(Math.Min(wait, MaxSleep));
        }
    }

    private static void Sleep(long timestamps)
    {
        long ns = (long)(timestamps * (1e9 / Stopwatch.Frequency));
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            var ts = new TimeSpec { Seconds = ns / 1_000_000_000, Nanoseconds = ns % 1_000_000_000 };
            _ = NanoSleep(ref ts, IntPtr.Zero);
        }
        else
        {
            Thread.Sleep(TimeSpan.FromTicks(Math.Max(1, ns / 100)));
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "nanosleep")]
    private static partial int NanoSleep(ref TimeSpec request, IntPtr remaining);
}
