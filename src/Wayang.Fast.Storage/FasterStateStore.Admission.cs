using System.Collections.Concurrent;

namespace Wayang.Fast.Storage;

// Admission of writes when the journal's in-memory tail is nearly full (overload, or a slow disk). Writing then would
// spin inside FasterLog.Enqueue on the caller's pool thread until page flushes free the tail, and the flush
// completions need pool threads too: enough writers spinning there starved the pool (bench/RESULTS.md, third pass).
// Instead such writes queue here, copied at once (callers reuse their buffers as soon as PutAsync returns), and one
// drainer applies them in order after waiting, without a thread, for room.
//
// Order: a write issued after another has returned is applied after it. A queued write counts in _queued from before
// PutAsync returns until it is applied, and while _queued > 0 every new write queues behind it; a write that took the
// direct path was applied before it returned. Writes that race each other were never ordered.
public sealed partial class FasterStateStore
{
    private readonly ConcurrentQueue<QueuedWrite> _admission = new();
    private int _queued;
    private int _draining;

    private bool MustQueue() => Volatile.Read(ref _queued) > 0 || _journal.NearlyFull;

    private ValueTask Queue(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, bool delete, CancellationToken cancellationToken)
    {
        var write = new QueuedWrite(key.ToArray(), delete ? null : value.ToArray(), cancellationToken);
        Interlocked.Increment(ref _queued);
        _admission.Enqueue(write);
        Metrics.OnAdmissionQueued();
        if (Interlocked.CompareExchange(ref _draining, 1, 0) == 0)
            _ = DrainAdmissionAsync();
        return new ValueTask(write.Durable.Task);
    }

    private async Task DrainAdmissionAsync()
    {
        while (true)
        {
            while (_admission.TryPeek(out var write))
            {
                ValueTask durable;
                try
                {
                    await _journal.WaitForRoomAsync().ConfigureAwait(false);
                    ThrowIfDisposed();
                    durable = write.Value is null
                        ? DeleteNow(write.Key, write.CancellationToken)
                        : PutNow(write.Key, write.Value, write.CancellationToken);
                }
                catch (Exception ex)
                {
                    durable = ValueTask.FromException(ex);
                }
                // Applied (or failed): later writes may pass it now.
                _admission.TryDequeue(out _);
                Interlocked.Decrement(ref _queued);
                _ = CompleteWhenDurableAsync(write, durable);
            }
            Volatile.Write(ref _draining, 0);
            // A write queued after the last TryPeek but before the flag cleared found the drainer still running.
            if (_admission.IsEmpty || Interlocked.CompareExchange(ref _draining, 1, 0) != 0)
                return;
        }
    }

    private static async Task CompleteWhenDurableAsync(QueuedWrite write, ValueTask durable)
    {
        try
        {
            await durable.ConfigureAwait(false);
            write.Durable.TrySetResult();
        }
        catch (OperationCanceledException) when (write.CancellationToken.IsCancellationRequested)
        {
            write.Durable.TrySetCanceled(write.CancellationToken);
        }
        catch (Exception ex)
        {
            write.Durable.TrySetException(ex);
        }
    }

    // Value null: a delete.
    private sealed class QueuedWrite(byte[] key, byte[]? value, CancellationToken cancellationToken)
    {
        public byte[] Key { get; } = key;
        public byte[]? Value { get; } = value;
        public CancellationToken CancellationToken { get; } = cancellationToken;
        public TaskCompletionSource Durable { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
