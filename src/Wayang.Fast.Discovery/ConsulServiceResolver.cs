using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Discovery.Internal;

namespace Wayang.Fast.Discovery;

// Resolves services through Consul's health endpoint (GET /v1/health/service/:name?passing), so only instances
// whose checks all pass come back. The first ResolveAsync of a name starts a background watch for it: a loop of
// blocking queries (index/wait, per Consul's "Blocking Queries" guidance) that keeps a cached member list current.
// Later calls answer from that cache without a round trip. While nothing is cached and Consul cannot answer, the
// Fallback resolver answers; once a list is cached it is kept (last known good) through Consul outages.
public sealed class ConsulServiceResolver : IServiceWatcher, IAsyncDisposable, IDisposable
{
    private readonly Uri _base;
    private readonly string? _token;
    private readonly string? _datacenter;
    private readonly string? _tag;
    private readonly TimeSpan _wait;
    private readonly TimeSpan _requestTimeout;
    private readonly TimeSpan _minInterval;
    private readonly TimeSpan _backoffBase;
    private readonly TimeSpan _backoffMax;
    private readonly IServiceResolver? _fallback;
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<string, ServiceWatch> _watches = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private bool _disposed;

    // httpClient: shared with the caller (who keeps owning it); null creates one that this resolver disposes.
    public ConsulServiceResolver(ConsulServiceResolverOptions options, HttpClient? httpClient = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _base = ConsulHttp.BaseAddress(options.Address);
        if (options.WaitTime <= TimeSpan.Zero || options.WaitTime > TimeSpan.FromMinutes(10))
            throw new ArgumentException("WaitTime must be positive and at most 10 minutes (Consul's limit).", nameof(options));
        if (options.RequestTimeout <= TimeSpan.Zero)
            throw new ArgumentException("RequestTimeout must be positive.", nameof(options));
        if (options.MinQueryInterval < TimeSpan.Zero || options.ErrorBackoffBase < TimeSpan.Zero || options.ErrorBackoffMax < options.ErrorBackoffBase)
            throw new ArgumentException("MinQueryInterval and ErrorBackoffBase must not be negative, ErrorBackoffMax not below ErrorBackoffBase.", nameof(options));
        _token = string.IsNullOrEmpty(options.Token) ? null : options.Token;
        _datacenter = string.IsNullOrEmpty(options.Datacenter) ? null : options.Datacenter;
        _tag = string.IsNullOrEmpty(options.Tag) ? null : options.Tag;
        _wait = options.WaitTime;
        _requestTimeout = options.RequestTimeout;
        _minInterval = options.MinQueryInterval;
        _backoffBase = options.ErrorBackoffBase;
        _backoffMax = options.ErrorBackoffMax;
        _fallback = options.Fallback;
        _http = httpClient ?? ConsulHttp.CreateClient();
        _ownsHttp = httpClient is null;
        _time = timeProvider ?? TimeProvider.System;
    }

    public ValueTask<IReadOnlyList<ServiceEndpoint>> ResolveAsync(string serviceName, CancellationToken ct = default)
    {
        var watch = GetWatch(serviceName);
        var snapshot = watch.Snapshot;
        return snapshot is not null ? new ValueTask<IReadOnlyList<ServiceEndpoint>>(snapshot.Endpoints) : ResolveColdAsync(watch, ct);
    }

    private async ValueTask<IReadOnlyList<ServiceEndpoint>> ResolveColdAsync(ServiceWatch watch, CancellationToken ct)
    {
        // The watch's first query is the "one query" of a cold resolve; callers arriving later while Consul is
        // failing do not queue more queries behind it, they go straight to the fallback.
        await watch.FirstAttempt.Task.WaitAsync(ct).ConfigureAwait(false);
        if (watch.Snapshot is { } snapshot)
            return snapshot.Endpoints;
        if (_fallback is not null)
            return await _fallback.ResolveAsync(watch.Name, ct).ConfigureAwait(false);
        var error = watch.LastError;
        ObjectDisposedException.ThrowIf(error is null && Volatile.Read(ref _disposed), this);
        var message = $"Consul at {_base} could not resolve service '{watch.Name}': {error?.Message ?? "the resolver stopped"}";
        throw error is null
            ? new WayangException(ErrorCode.Unavailable, message)
            : new WayangException(new WayangError(ErrorCode.Unavailable, message), error);
    }

    public async IAsyncEnumerable<IReadOnlyList<ServiceEndpoint>> WatchAsync(string serviceName, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var watch = GetWatch(serviceName);
        long seen = 0;
        while (true)
        {
            var (snapshot, changed, stopped) = watch.Observe();
            if (snapshot is not null && snapshot.Version != seen)
            {
                seen = snapshot.Version;
                yield return snapshot.Endpoints;
                continue;
            }
            if (stopped)
                yield break;
            await changed.WaitAsync(ct).ConfigureAwait(false);
        }
    }

    // Diagnostics (and tests): the index the next blocking query of this service will send; null when not watched.
    internal ulong? CurrentIndex(string serviceName) => _watches.TryGetValue(serviceName, out var w) ? w.Index : null;

    // Diagnostics (and tests): the last failed query of this service; null after a success.
    internal Exception? LastError(string serviceName) => _watches.TryGetValue(serviceName, out var w) ? w.LastError : null;

    private ServiceWatch GetWatch(string serviceName)
    {
        if (string.IsNullOrWhiteSpace(serviceName))
            throw new ArgumentException("A service name is required.", nameof(serviceName));
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
        if (_watches.TryGetValue(serviceName, out var watch))
            return watch;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_watches.TryGetValue(serviceName, out watch))
                return watch;
            watch = new ServiceWatch(serviceName);
            _watches[serviceName] = watch;
            watch.Loop = Task.Run(() => RunAsync(watch));
            return watch;
        }
    }

    private async Task RunAsync(ServiceWatch watch)
    {
        var ct = _stopping.Token;
        int failures = 0;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                TimeSpan pause;
                try
                {
                    ulong sent = watch.Index;
                    var (endpoints, returned) = await QueryAsync(watch.Name, sent, ct).ConfigureAwait(false);
                    watch.Index = NextIndex(sent, returned);
                    watch.LastError = null;
                    watch.Publish(endpoints);
                    failures = 0;
                    pause = _minInterval;
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception e)
                {
                    // Unreachable, timed out, ACL denied, unparsable: keep the cached list and the index, retry later.
                    watch.LastError = e;
                    pause = Backoff(++failures);
                }
                finally
                {
                    watch.FirstAttempt.TrySetResult();
                }
                if (pause > TimeSpan.Zero)
                    await Task.Delay(pause, _time, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        finally
        {
            watch.FirstAttempt.TrySetResult();
            watch.Stop();
        }
    }

    // Consul's "Blocking Queries" implementation details: an index that goes backwards (a restored snapshot,
    // a different server's view) means the old one is meaningless, so restart with a plain read (index 0);
    // an index of 0 after a read would make every "blocking" query return at once, so wait on 1 instead.
    internal static ulong NextIndex(ulong sent, ulong returned)
    {
        if (returned < sent)
            return 0;
        return returned == 0 ? 1 : returned;
    }

    private TimeSpan Backoff(int failures)
    {
        // Exponential with "equal jitter" (half fixed, half random) so many clients do not retry in step.
        double exp = _backoffBase.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 20));
        double capped = Math.Min(exp, _backoffMax.TotalMilliseconds);
        return TimeSpan.FromMilliseconds((capped / 2) + (Random.Shared.NextDouble() * capped / 2));
    }

    private async Task<(IReadOnlyList<ServiceEndpoint> Endpoints, ulong Index)> QueryAsync(string serviceName, ulong index, CancellationToken ct)
    {
        var path = new StringBuilder("v1/health/service/").Append(Uri.EscapeDataString(serviceName)).Append("?passing");
        if (_datacenter is not null)
            path.Append("&dc=").Append(Uri.EscapeDataString(_datacenter));
        if (_tag is not null)
            path.Append("&tag=").Append(Uri.EscapeDataString(_tag));
        var timeout = _requestTimeout;
        if (index > 0)
        {
            path.Append("&index=").Append(index.ToString(CultureInfo.InvariantCulture)).Append("&wait=").Append(ConsulDuration.Format(_wait));
            // Consul may hold a blocking query up to wait + wait/16 before answering.
            timeout += _wait + (_wait / 16);
        }

        using var response = await ConsulHttp.SendAsync(_http, HttpMethod.Get, new Uri(_base, path.ToString()), _token, null, timeout, _time, ct).ConfigureAwait(false);
        ulong returned = ConsulHttp.ReadIndex(response);
        using var deadline = new CancellationTokenSource(timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, deadline.Token);
        var stream = await response.Content.ReadAsStreamAsync(linked.Token).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var entries = await JsonSerializer.DeserializeAsync(stream, ConsulJsonContext.Default.ListConsulHealthEntry, linked.Token).ConfigureAwait(false);
            return (ToEndpoints(entries), returned);
        }
    }

    internal static IReadOnlyList<ServiceEndpoint> ToEndpoints(List<ConsulHealthEntry>? entries)
    {
        if (entries is null || entries.Count == 0)
            return [];
        var endpoints = new List<ServiceEndpoint>(entries.Count);
        foreach (var entry in entries)
        {
            var service = entry.Service;
            if (service is null || service.Port is <= 0 or > 65535)
                continue;
            // An empty Service.Address means "the node's address" in Consul's model.
            var host = string.IsNullOrEmpty(service.Address) ? entry.Node?.Address : service.Address;
            if (string.IsNullOrEmpty(host) || Uri.CheckHostName(host) == UriHostNameType.Unknown)
                continue;
            endpoints.Add(new ServiceEndpoint(host, service.Port, service.Id, service.Tags ?? [], service.Meta));
        }
        return endpoints;
    }

    public async ValueTask DisposeAsync()
    {
        Task[] loops;
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            loops = [.. _watches.Values.Select(w => w.Loop)];
        }
        await _stopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(loops).ConfigureAwait(false);
        _stopping.Dispose();
        if (_ownsHttp)
            _http.Dispose();
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private sealed class Snapshot(IReadOnlyList<ServiceEndpoint> endpoints, long version)
    {
        public IReadOnlyList<ServiceEndpoint> Endpoints { get; } = endpoints;
        public long Version { get; } = version;
    }

    // One watched service: the loop's state and the cached list. Only the loop writes Index and publishes.
    private sealed class ServiceWatch(string name)
    {
        private readonly Lock _gate = new();
        private Snapshot? _snapshot;
        private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private bool _stopped;
        private long _index;
        private Exception? _lastError;

        public string Name { get; } = name;
        public Task Loop { get; set; } = Task.CompletedTask;

        // Completes after the first query has succeeded or failed (or the resolver stopped).
        public TaskCompletionSource FirstAttempt { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Snapshot? Snapshot => Volatile.Read(ref _snapshot);

        public ulong Index
        {
            get => (ulong)Interlocked.Read(ref _index);
            set => Interlocked.Exchange(ref _index, (long)value);
        }

        public Exception? LastError
        {
            get => Volatile.Read(ref _lastError);
            set => Volatile.Write(ref _lastError, value);
        }

        // A blocking query returning is no guarantee of a change (Consul's docs): publish only real changes.
        public void Publish(IReadOnlyList<ServiceEndpoint> endpoints)
        {
            TaskCompletionSource signal;
            lock (_gate)
            {
                if (_snapshot is not null && _snapshot.Endpoints.SequenceEqual(endpoints))
                    return;
                Volatile.Write(ref _snapshot, new Snapshot(endpoints, (_snapshot?.Version ?? 0) + 1));
                signal = _changed;
                _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
            signal.TrySetResult();
        }

        public void Stop()
        {
            TaskCompletionSource signal;
            lock (_gate)
            {
                _stopped = true;
                signal = _changed;
            }
            signal.TrySetResult();
        }

        public (Snapshot? Snapshot, Task Changed, bool Stopped) Observe()
        {
            lock (_gate)
                return (_snapshot, _changed.Task, _stopped);
        }
    }
}
