namespace Wayang.Fast.Discovery.Tests;

// Waits on a condition, never on time: polls until it holds, failing only after a generous deadline
// (a loaded 2-core machine may be slow, it is never wrong).
internal static class Eventually
{
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    public static async Task<T> UntilAsync<T>(Func<Task<T>> probe, Func<T, bool> done, string what)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (true)
        {
            var value = await probe();
            if (done(value))
                return value;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"Timed out waiting for {what}.");
            await Task.Delay(20);
        }
    }

    public static Task UntilAsync(Func<bool> condition, string what) =>
        UntilAsync(() => Task.FromResult(condition()), static ok => ok, what);

    public static Task<T> Within<T>(this Task<T> task) => task.WaitAsync(Deadline);

    public static Task<T> Within<T>(this ValueTask<T> task) => task.AsTask().WaitAsync(Deadline);
}
