namespace Wayang.Fast.Inference.Engine.Kernels;

// A fixed set of worker threads that run work items 0..count-1 of one job at a time, the caller taking part. Jobs are
// an unmanaged function pointer plus a pointer to the caller's stack state, so a call allocates nothing (Parallel.For
// allocates a closure, tasks and partitions per call, and cannot capture spans). Items are claimed one by one with an
// interlocked counter, so uneven items (sequences of different lengths) balance themselves. Concurrent callers are
// serialized: a forward pass is one stream of kernels.
internal sealed unsafe class KernelPool : IDisposable
{
    private readonly Thread[] _workers;
    private readonly SemaphoreSlim _start = new(0);
    // Released once per job by the last worker. Not a ManualResetEventSlim: that allocates its lock object the first
    // time a caller has to block, so a job could allocate on the calling thread whenever its first blocking wait came.
    private readonly SemaphoreSlim _done = new(0);
    private readonly Lock _gate = new();
    private delegate*<void*, int, void> _work;
    private void* _state;
    private int _count;
    private int _next;
    private int _active;
    private volatile bool _disposed;

    public KernelPool(int workers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(workers);
        _workers = new Thread[workers];
        for (var i = 0; i < workers; i++)
        {
            _workers[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"wayang-kernel-{i}" };
            _workers[i].Start();
        }
    }

    public int Parallelism => _workers.Length + 1;

    // Work must not throw: a throwing item would leave the job half done with no one to report to.
    public void Run(delegate*<void*, int, void> work, void* state, int count)
    {
        if (count <= 0)
            return;
        if (count == 1 || _workers.Length == 0)
        {
            for (var i = 0; i < count; i++)
                work(state, i);
            return;
        }

        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _work = work;
            _state = state;
            _count = count;
            _next = 0;
            // Wake no more workers than there are items beyond the caller's own.
            var wake = Math.Min(_workers.Length, count - 1);
            _active = wake;
            _start.Release(wake);
            Drain();
            _done.Wait();
        }
    }

    private void WorkerLoop()
    {
        while (true)
        {
            _start.Wait();
            if (_disposed)
                return;
            Drain();
            if (Interlocked.Decrement(ref _active) == 0)
                _done.Release();
        }
    }

    private void Drain()
    {
        var work = _work;
        var state = _state;
        var count = _count;
        int i;
        while ((i = Interlocked.Increment(ref _next) - 1) < count)
            work(state, i);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            if (_workers.Length > 0)
                _start.Release(_workers.Length);
        }
        foreach (var t in _workers)
            t.Join();
        _start.Dispose();
        _done.Dispose();
    }
}
