using System.Threading.Channels;

namespace Wayang.Fast.Control.Secrets;

// On the wire in secret watch streams: explicit values, append-only (a golden test freezes them).
public enum SecretEventKind : byte
{
    Written = 0,
    Rotated = 1,
    VersionDisabled = 2,
    VersionEnabled = 3,
    Destroyed = 4,
    RotationDue = 5,
    RotationFailed = 6,
    PolicyChanged = 7,
}

// Version 0 where the event concerns the whole secret. Detail is a reason or a policy, never a value.
public sealed record SecretEvent(SecretEventKind Kind, string Tenant, string Path, int Version, long AtMs, string? Detail);

// Delivered after the change is durable, in the order of the changes (mutations are serialized). Callbacks run on
// the mutating thread and must be quick; protocol streams use Open, whose bounded channel never blocks a writer.
public sealed class SecretEvents
{
    private readonly Lock _gate = new();
    private Action<SecretEvent>[] _handlers = [];
    private SecretSubscription[] _subscriptions = [];

    public IDisposable Subscribe(Action<SecretEvent> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        lock (_gate)
            _handlers = [.. _handlers, handler];
        return new Unsubscriber(() =>
        {
            lock (_gate)
                _handlers = [.. _handlers.Where(h => h != handler)];
        });
    }

    // tenant null: every tenant's events (an operator's view). When the reader falls behind by capacity events, the
    // oldest are dropped and counted in Dropped, so a slow stream costs bounded memory.
    public SecretSubscription Open(string? tenant, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        var subscription = new SecretSubscription(tenant, capacity, Remove);
        lock (_gate)
            _subscriptions = [.. _subscriptions, subscription];
        return subscription;
    }

    internal void Publish(SecretEvent e)
    {
        foreach (var handler in Volatile.Read(ref _handlers))
        {
            try
            {
                handler(e);
            }
            catch
            {
                // A failing subscriber must not fail a change that is already durable, nor starve the others.
            }
        }
        foreach (var subscription in Volatile.Read(ref _subscriptions))
            subscription.Offer(e);
    }

    private void Remove(SecretSubscription subscription)
    {
        lock (_gate)
            _subscriptions = [.. _subscriptions.Where(s => s != subscription)];
    }

    private sealed class Unsubscriber(Action dispose) : IDisposable
    {
        private Action? _dispose = dispose;

        public void Dispose() => Interlocked.Exchange(ref _dispose, null)?.Invoke();
    }
}

public sealed class SecretSubscription : IDisposable
{
    private readonly string? _tenant;
    private readonly Channel<SecretEvent> _channel;
    private readonly Action<SecretSubscription> _remove;
    private long _dropped;

    internal SecretSubscription(string? tenant, int capacity, Action<SecretSubscription> remove)
    {
        _tenant = tenant;
        _remove = remove;
        _channel = Channel.CreateBounded<SecretEvent>(
            new BoundedChannelOptions(capacity) { FullMode = BoundedChannelFullMode.DropOldest },
            _ => Interlocked.Increment(ref _dropped));
    }

    public ChannelReader<SecretEvent> Reader => _channel.Reader;

    public long Dropped => Interlocked.Read(ref _dropped);

    internal void Offer(SecretEvent e)
    {
        if (_tenant is null || _tenant == e.Tenant)
            _channel.Writer.TryWrite(e);
    }

    public void Dispose()
    {
        _remove(this);
        _channel.Writer.TryComplete();
    }
}
