using Microsoft.Extensions.Logging;

namespace Wayang.Fast.Execution.Engine;

internal enum TimerKind : byte
{
    // A Retrying node's next attempt is due.
    Retry = 1,
    // A WAIT node's timer (or its signal's longest wait) ran out.
    Wait = 2,
}

internal readonly record struct TimerItem(TimerKind Kind, string RunId, string NodeId, int Attempt);

// What the timer loop calls; implemented by the engine.
internal interface ITimerSink
{
    long NextLeaseExpiryMs { get; }

    // Called on the loop, outside every lock the timers hold.
    void OnDue(long nowMs, List<TimerItem> items, List<DeadlineEntry> deadlines, bool leasesDue);
}

// The engine's one timer loop (TimeProvider-based, so FakeTimeProvider drives it in tests). It sleeps until the
// earliest of: retry and WAIT timers (a priority queue with lazy invalidation: handlers check the node still
// waits for that timer), attempt deadlines, and the dispatcher's earliest lease expiry.
//
// Attempt deadlines are not in the priority queue: every dispatched task arms one (an hour by default) and nearly
// all are cancelled by their result moments later, so they live in one linked list per timeout length. Entries of a
// list are appended in start order and so stay sorted by due time; a result unlinks its entry in O(1), and memory is
// bounded by the tasks in flight.
internal sealed class EngineTimers : IAsyncDisposable
{
    // Task.Delay refuses delays beyond ~49 days; a far-off timer is simply re-examined daily.
    private const long MaxSleepMs = 24 * 60 * 60 * 1000;

    private readonly TimeProvider _time;
    private readonly ITimerSink _sink;
    private readonly ILogger _logger;
    private readonly long _leaseMs;
    private readonly Lock _gate = new();
    private readonly PriorityQueue<TimerItem, long> _items = new();
    private readonly Dictionary<long, DeadlineList> _deadlines = [];
    private readonly CancellationTokenSource _stop = new();
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    // When the loop will next wake by itself (long.MinValue while it is processing: it recomputes afterwards).
    private long _loopDueMs = long.MinValue;
    // Bumped after every dispatcher call that may have created a lease (see Kick).
    private long _kickSeq;
    private Task _loop = Task.CompletedTask;

    public EngineTimers(TimeProvider time, ITimerSink sink, ILogger logger, TimeSpan leaseDuration)
    {
        _time = time;
        _sink = sink;
        _logger = logger;
        _leaseMs = (long)leaseDuration.TotalMilliseconds;
    }

    public int PendingItems
    {
        get
        {
            lock (_gate)
                return _items.Count;
        }
    }

    public void Start() => _loop = Task.Run(LoopAsync);

    private long NowMs => _time.GetUtcNow().ToUnixTimeMilliseconds();

    public void Schedule(TimerItem item, long dueAtMs)
    {
        lock (_gate)
        {
            _items.Enqueue(item, dueAtMs);
            if (dueAtMs < _loopDueMs)
                WakeLocked();
        }
    }

    public void AddDeadline(DeadlineEntry entry)
    {
        lock (_gate)
        {
            if (!_deadlines.TryGetValue(entry.TimeoutMs, out var list))
            {
                list = new DeadlineList();
                _deadlines[entry.TimeoutMs] = list;
            }
            list.InsertSorted(entry);
            if (entry.DueAtMs < _loopDueMs)
                WakeLocked();
        }
    }

    public void RemoveDeadline(DeadlineEntry entry)
    {
        lock (_gate)
        {
            if (entry.Linked && _deadlines.TryGetValue(entry.TimeoutMs, out var list))
                list.Unlink(entry);
        }
    }

    // The dispatcher creates leases inside its own calls, which the timers cannot observe. After any dispatcher call
    // that may have leased a task the engine calls Kick: if the earliest lease is earlier than the loop's wake-up,
    // wake it. The sequence number closes the race with a loop that read NextLeaseExpiryMs before the lease existed
    // and is about to go to sleep: it sees the bump under the lock and reads again.
    public void Kick()
    {
        Interlocked.Increment(ref _kickSeq);
        // A lease made now expires at now + LeaseDuration at the earliest: if the loop wakes before that anyway, it
        // will see it then, and the dispatcher need not be asked (the common case under load: one cheap check).
        if (Volatile.Read(ref _loopDueMs) <= NowMs + _leaseMs)
            return;
        long lease = _sink.NextLeaseExpiryMs;
        if (lease >= Volatile.Read(ref _loopDueMs))
            return;
        lock (_gate)
        {
            if (lease < _loopDueMs)
                WakeLocked();
        }
    }

    private void WakeLocked()
    {
        _loopDueMs = long.MinValue;
        _wake.TrySetResult();
    }

    private async Task LoopAsync()
    {
        var items = new List<TimerItem>();
        var deadlines = new List<DeadlineEntry>();
        while (!_stop.IsCancellationRequested)
        {
            long now = NowMs;
            long seq = Volatile.Read(ref _kickSeq);
            long lease = _sink.NextLeaseExpiryMs;
            long next;
            TaskCompletionSource wake;
            lock (_gate)
            {
                while (_items.TryPeek(out var item, out long due) && due <= now)
                {
                    _items.Dequeue();
                    items.Add(item);
                }
                next = _items.TryPeek(out _, out long firstDue) ? firstDue : long.MaxValue;
                foreach (var list in _deadlines.Values)
                {
                    while (list.Head is { } head && head.DueAtMs <= now)
                    {
                        list.Unlink(head);
                        deadlines.Add(head);
                    }
                    if (list.Head is { } h && h.DueAtMs < next)
                        next = h.DueAtMs;
                }
                bool leasesDue = lease <= now;
                if (items.Count > 0 || deadlines.Count > 0 || leasesDue)
                {
                    _loopDueMs = long.MinValue;
                    wake = _wake;
                    next = now;
                }
                else if (Volatile.Read(ref _kickSeq) != seq)
                {
                    continue;
                }
                else
                {
                    next = Math.Min(next, lease);
                    if (_wake.Task.IsCompleted)
                        _wake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    wake = _wake;
                    _loopDueMs = next;
                }
            }

            if (next <= now)
            {
                try
                {
                    _sink.OnDue(now, items, deadlines, lease <= now);
                }
                catch (Exception ex)
                {
                    EngineLog.TimerFailed(_logger, ex);
                }
                items.Clear();
                deadlines.Clear();
                continue;
            }

            try
            {
                if (next == long.MaxValue)
                {
                    await wake.Task.WaitAsync(_stop.Token).ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
                }
                else
                {
                    // The delay counts from when it is created, so read the clock right before and after creating it:
                    // if time moved meanwhile (a test advancing a fake clock, a millisecond tick), compute again, or
                    // the wake-up would land later than the due time.
                    long before = NowMs;
                    if (before >= next)
                        continue;
                    using var delayCancel = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                    var delay = Task.Delay(TimeSpan.FromMilliseconds(Math.Min(next - before, MaxSleepMs)), _time, delayCancel.Token);
                    if (NowMs != before)
                    {
                        await delayCancel.CancelAsync().ConfigureAwait(false);
                        continue;
                    }
                    // ForceYielding: with a fake clock the delay completes inside the test's Advance call; the engine's
                    // work then runs on the pool instead of re-entering the clock.
                    await Task.WhenAny(delay, wake.Task).ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
                    await delayCancel.CancelAsync().ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                break;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
            return;
        await _stop.CancelAsync().ConfigureAwait(false);
        lock (_gate)
            _wake.TrySetResult();
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
    }

    private sealed class DeadlineList
    {
        public DeadlineEntry? Head;
        private DeadlineEntry? _tail;

        // Nearly always an append: entries of one list share a timeout and arrive in start order. Walking back keeps
        // the list sorted if the clock ever steps backwards.
        public void InsertSorted(DeadlineEntry entry)
        {
            var after = _tail;
            while (after is not null && after.DueAtMs > entry.DueAtMs)
                after = after.Prev;
            entry.Prev = after;
            entry.Next = after is null ? Head : after.Next;
            if (after is null)
                Head = entry;
            else
                after.Next = entry;
            if (entry.Next is null)
                _tail = entry;
            else
                entry.Next.Prev = entry;
            entry.Linked = true;
        }

        public void Unlink(DeadlineEntry entry)
        {
            if (entry.Prev is null)
                Head = entry.Next;
            else
                entry.Prev.Next = entry.Next;
            if (entry.Next is null)
                _tail = entry.Prev;
            else
                entry.Next.Prev = entry.Prev;
            entry.Prev = null;
            entry.Next = null;
            entry.Linked = false;
        }
    }
}
