using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;

namespace Wayang.Fast.Benchmarks.Inference;

// The engine benchmarks' own bounded jobs, added only when the command line names no job: `--job dry` (a smoke run)
// then replaces them instead of running next to them, as a job attribute would.
internal static class BenchJobs
{
    public static bool CommandLineHasJob =>
        Environment.GetCommandLineArgs().Any(a => a is "--job" or "-j" || a.StartsWith("--job=", StringComparison.Ordinal));
}

// No pilot, no overhead runs, one invocation per iteration: for operations that take seconds.
internal sealed class MonitoringJobConfig : ManualConfig
{
    public MonitoringJobConfig()
    {
        if (!BenchJobs.CommandLineHasJob)
            AddJob(Job.Default.WithStrategy(RunStrategy.Monitoring).WithLaunchCount(1).WithWarmupCount(1).WithIterationCount(5));
    }
}

// Throughput runs with BenchmarkDotNet's pilot, bounded to 1 launch, 2 warmups and 8 iterations.
internal class ShortJobConfig : ManualConfig
{
    public ShortJobConfig()
    {
        if (!BenchJobs.CommandLineHasJob)
            AddJob(Job.Default.WithLaunchCount(1).WithWarmupCount(2).WithIterationCount(8));
    }
}
