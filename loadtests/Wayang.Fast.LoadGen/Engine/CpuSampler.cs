using System.Diagnostics;
using System.Globalization;

namespace Wayang.Fast.LoadGen.Engine;

// CPU time of this process and, optionally, of the server under test (--server-pid, Linux /proc), so a report can say
// how much CPU each side spent per request: on a machine where client and server share the cores that is the fairer
// efficiency number, and it shows how much of the machine the generator itself took.
internal static class CpuSampler
{
    public static TimeSpan Self()
    {
        using var p = Process.GetCurrentProcess();
        return p.TotalProcessorTime;
    }

    // utime + stime of another process, from /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
    public static TimeSpan? Of(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            long ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            return TimeSpan.FromSeconds(ticks / 100.0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }
}
