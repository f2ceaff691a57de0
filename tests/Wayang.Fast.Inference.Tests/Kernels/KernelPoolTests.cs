using Wayang.Fast.Inference.Engine.Kernels;

namespace Wayang.Fast.Inference.Tests.Kernels;

// Every item of every job runs exactly once, on the job's own state, however the workers' wake-ups interleave with
// back-to-back jobs of different sizes.
public sealed unsafe class KernelPoolTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Every_item_of_every_job_runs_exactly_once_with_that_jobs_state(int workers)
    {
        using var pool = new KernelPool(workers);
        var rng = new Random(5);
        var counts = new int[64];
        for (var job = 1; job <= 20_000; job++)
        {
            var count = rng.Next(2, counts.Length + 1);
            Array.Clear(counts);
            fixed (int* slots = counts)
            {
                var state = new JobState { Slots = slots, Job = job };
                pool.Run(&Item, &state, count);
            }
            // Each item added its job number to its own slot once; nothing past count was touched.
            for (var i = 0; i < counts.Length; i++)
                Assert.Equal(i < count ? job : 0, counts[i]);
        }
    }

    private static void Item(void* p, int index)
    {
        var state = (JobState*)p;
        Interlocked.Add(ref state->Slots[index], state->Job);
    }

    private struct JobState
    {
        public int* Slots;
        public int Job;
    }
}
