namespace Wayang.Fast.Benchmarks.Inference;

// The engine's KernelPool design (internal to Wayang.Fast.Inference), repeated for the bench's reference kernels so they
// are threaded exactly like CpuKernels: threads - 1 workers plus the caller, items claimed one by one with an
// interlocked counter, jobs as a function pointer plus a state pointer, so a call allocates nothing.
internal sealed unsafe class BenchWorkerPool : IDisposable
{
    private readonly Thread[] _workers;
    private readonly SemaphoreSlim _start = new(0);
    private readonly ManualResetEventSlim _done = new(false);
    private readonly Lock _gate = new();
    private delegate*<void*, int, void> _work;
    private void* _state;
    private int _count;
    private int _next;
    private int _active;
    private volatile bool _disposed;

    public BenchWorkerPool(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(threads);
        _workers = new Thread[threads - 1];
        for (var i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"bench-worker-{i}" };
            _workers[i].Start();
        }
    }

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
            var wake = Math.Min(_workers.Length, count - 1);
            _active = wake;
            _done.Reset();
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
                _done.Set();
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
