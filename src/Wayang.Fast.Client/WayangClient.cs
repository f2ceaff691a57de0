using System.Runtime.CompilerServices;
using Wayang.Fast.Client.Internal;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Discovery;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Client;

// The .NET SDK entry point: one multiplexed connection shared by every call, thread-safe, reconnecting on
// demand (README.md "Reconnect policy"). Every failure surfaces as WayangException.
public sealed partial class WayangClient : IAsyncDisposable
{
    private readonly WayangClientOptions _options;
    private readonly SemaphoreSlim _connectLock = new(1, 1);
    private WayangConnection? _connection;
    private int _connectionCount;

    // Which resolved member the next dial starts with (guarded by _connectLock). It stays on a member that answered
    // and moves past one that did not; it starts at a random member so many clients spread over the service.
    private int _endpointCursor = Random.Shared.Next();
    private volatile bool _disposed;

    // Connects lazily, on the first call (the DI registration uses this).
    public WayangClient(WayangClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Resolver is not null)
        {
            if (string.IsNullOrWhiteSpace(options.ServiceName))
                throw new ArgumentException("ServiceName is required with a Resolver.", nameof(options));
        }
        else if (string.IsNullOrWhiteSpace(options.Host))
            throw new ArgumentException("Host is required.", nameof(options));
        else if (options.Port is <= 0 or > 65535)
            throw new ArgumentException("Port must be 1..65535.", nameof(options));
        _options = options;
    }

    public static async Task<WayangClient> ConnectAsync(WayangClientOptions options, CancellationToken ct = default)
    {
        var client = new WayangClient(options);
        try
        {
            await client.ConnectAsync(ct).ConfigureAwait(false);
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return client;
    }

    public WayangClientOptions Options => _options;

    // The session of the current connection; null before the first connect.
    public WayangSession? Session => Volatile.Read(ref _connection)?.Session;

    public bool IsConnected => Volatile.Read(ref _connection) is { IsAcceptingCalls: true };

    // How many connections this client has opened (diagnostics; tests use it to observe reconnects).
    public int ConnectionCount => Volatile.Read(ref _connectionCount);

    public async Task ConnectAsync(CancellationToken ct = default) => await GetConnectionAsync(ct).ConfigureAwait(false);

    // Round trip of opcode Ping (a REQUEST answered by an empty RESPONSE).
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<TimeSpan> PingAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        await InvokeAsync<NoBody, NoBody>(Opcode.Ping, default, hasBody: false, timeout, ct).ConfigureAwait(false);
        return System.Diagnostics.Stopwatch.GetElapsedTime(start);
    }

    public IAsyncEnumerable<TickItem> TickAsync(int count, int intervalMs = 0, CancellationToken ct = default) =>
        StreamAsync<TickRequest, TickItem>(Opcode.Tick, new TickRequest { Count = count, IntervalMs = intervalMs }, ct);

    public async Task<TenantInfo> CreateTenantAsync(string tenantId, string? displayName = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var dto = await CallAsync<TenantCreateRequest, TenantInfoDto>(
            Opcode.TenantCreate, new TenantCreateRequest { TenantId = tenantId, DisplayName = displayName ?? "" }, timeout, ct).ConfigureAwait(false);
        return ToTenant(dto);
    }

    public async Task<IReadOnlyList<TenantInfo>> ListTenantsAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var list = await CallAsync<TenantListResponse>(Opcode.TenantList, timeout, ct).ConfigureAwait(false);
        return [.. (list.Tenants ?? []).Select(ToTenant)];
    }

    public async Task<CreatedApiKey> CreateKeyAsync(string tenantId, string name, IEnumerable<string> roles, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(roles);
        var created = await CallAsync<KeyCreateRequest, KeyCreateResponse>(
            Opcode.KeyCreate, new KeyCreateRequest { TenantId = tenantId, Name = name, Roles = [.. roles] }, timeout, ct).ConfigureAwait(false);
        return new CreatedApiKey(created.Secret, ToKey(created.Key));
    }

    // tenantId null or empty: the caller's own tenant.
    public async Task<IReadOnlyList<ApiKeyInfo>> ListKeysAsync(string? tenantId = null, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var list = await CallAsync<KeyListRequest, KeyListResponse>(
            Opcode.KeyList, new KeyListRequest { TenantId = tenantId ?? "" }, timeout, ct).ConfigureAwait(false);
        return [.. (list.Keys ?? []).Select(ToKey)];
    }

    public async Task<ApiKeyInfo> RevokeKeyAsync(string keyId, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var dto = await CallAsync<KeyRevokeRequest, ApiKeyInfoDto>(
            Opcode.KeyRevoke, new KeyRevokeRequest { KeyId = keyId }, timeout, ct).ConfigureAwait(false);
        return ToKey(dto);
    }

    // Generic unary call: TReq and TRes are MessagePack contracts from Wayang.Fast.Protocol.Messages.
    public ValueTask<TRes> CallAsync<TReq, TRes>(Opcode opcode, TReq request, TimeSpan? timeout = null, CancellationToken ct = default) =>
        InvokeAsync<TReq, TRes>(opcode, request, hasBody: true, timeout, ct);

    // Generic unary call whose request has no fields (an empty body on the wire).
    public ValueTask<TRes> CallAsync<TRes>(Opcode opcode, TimeSpan? timeout = null, CancellationToken ct = default) =>
        InvokeAsync<NoBody, TRes>(opcode, default, hasBody: false, timeout, ct);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<TRes> InvokeAsync<TReq, TRes>(Opcode opcode, TReq request, bool hasBody, TimeSpan? timeout, CancellationToken ct)
    {
        var effectiveTimeout = timeout ?? _options.DefaultTimeout;
        while (true)
        {
            var connection = await GetConnectionAsync(ct).ConfigureAwait(false);
            if (connection.TryStartUnary<TReq, TRes>(opcode, request, hasBody, effectiveTimeout, ct, out var reply))
                return await reply.ConfigureAwait(false);
            // GOAWAY or close won the race with this call before anything was sent: use a fresh connection.
        }
    }

    // Generic server stream. Credit is granted as the caller consumes: after each item the caller has taken,
    // and in batches of half the window, so a consumer that stops reading stops the server.
    public async IAsyncEnumerable<TItem> StreamAsync<TReq, TItem>(Opcode opcode, TReq request, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var call = new StreamCall<TItem>();
        WayangConnection connection;
        uint streamId;
        while (true)
        {
            connection = await GetConnectionAsync(ct).ConfigureAwait(false);
            if (connection.TryRegister(call, out streamId))
                break;
        }

        bool finished = false;
        try
        {
            try
            {
                await connection.SendAsync(FrameType.Request, opcode, streamId, request, hasBody: true).ConfigureAwait(false);
            }
            catch (WayangException)
            {
                finished = true;
                connection.TryTake(streamId, call);
                throw;
            }

            uint window = connection.InitialStreamCredit;
            uint batch = Math.Max(1, window / 2);
            uint consumed = 0;
            var reader = call.Reader;
            while (true)
            {
                bool more;
                try
                {
                    more = await reader.WaitToReadAsync(ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    throw new WayangException(ErrorCode.Cancelled, "The stream was cancelled by the caller.");
                }
                catch (WayangException)
                {
                    finished = true;
                    throw;
                }
                if (!more)
                {
                    finished = true;
                    yield break;
                }
                while (reader.TryRead(out var item))
                {
                    yield return item;
                    // The caller asked for the next item: the previous one is consumed.
                    if (++consumed >= batch)
                    {
                        try
                        {
                            await connection.SendCreditAsync(streamId, consumed).ConfigureAwait(false);
                        }
                        catch (WayangException)
                        {
                            // The connection is failing; the read loop completes the stream with the reason.
                        }
                        consumed = 0;
                    }
                }
            }
        }
        finally
        {
            // The caller stopped early (break, exception, cancellation): free the server's side.
            if (!finished && connection.TryTake(streamId, call))
                connection.SendCancel(streamId);
        }
    }

    internal ValueTask<WayangConnection> GetConnectionAsync(CancellationToken ct)
    {
        var connection = Volatile.Read(ref _connection);
        if (connection is { IsAcceptingCalls: true })
            return new ValueTask<WayangConnection>(connection);
        return ConnectSlowAsync(ct);
    }

    private async ValueTask<WayangConnection> ConnectSlowAsync(CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        try
        {
            await _connectLock.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw new WayangException(ErrorCode.Cancelled, "The call was cancelled while waiting for a connection.");
        }
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var current = _connection;
            if (current is { IsAcceptingCalls: true })
                return current;
            // A draining connection (GOAWAY) finishes its in-flight calls and closes itself; a closed one is done.
            if (current is { IsClosed: true })
                await current.DisposeAsync().ConfigureAwait(false);

            var policy = _options.Reconnect;
            int attempts = Math.Max(1, policy.MaxAttempts);
            WayangException? last = null;
            for (int attempt = 1; attempt <= attempts; attempt++)
            {
                if (attempt > 1)
                {
                    try
                    {
                        await Task.Delay(BackoffDelay(policy, attempt - 1), ct).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (ct.IsCancellationRequested)
                    {
                        throw new WayangException(ErrorCode.Cancelled, "The call was cancelled while reconnecting.");
                    }
                }
                try
                {
                    var connection = await DialAsync(ct).ConfigureAwait(false);
                    Volatile.Write(ref _connection, connection);
                    Interlocked.Increment(ref _connectionCount);
                    return connection;
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    throw new WayangException(ErrorCode.Cancelled, "The call was cancelled while connecting.");
                }
                catch (WayangException e) when (IsRetryableConnectFailure(e.Code))
                {
                    last = e;
                }
            }
            var target = _options.Resolver is null ? $"{_options.Host}:{_options.Port}" : $"service '{_options.ServiceName}'";
            throw new WayangException(new WayangError(ErrorCode.NotConnected,
                $"Could not connect to {target} after {attempts} attempt(s): {last?.Error.Message}"), last!);
        }
        finally
        {
            _connectLock.Release();
        }
    }

    // One connect attempt (caller holds _connectLock). With a resolver, the service is resolved again on every attempt
    // (membership may have changed since the last one) and its members are dialed in turn from the cursor, so a dead
    // member costs one failed dial, not a whole attempt with its backoff.
    private async Task<WayangConnection> DialAsync(CancellationToken ct)
    {
        var resolver = _options.Resolver;
        if (resolver is null)
            return await WayangConnection.ConnectAsync(_options, _options.Host, _options.Port, ct).ConfigureAwait(false);

        var service = _options.ServiceName;
        IReadOnlyList<ServiceEndpoint> endpoints;
        try
        {
            endpoints = await resolver.ResolveAsync(service, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not WayangException && !(e is OperationCanceledException && ct.IsCancellationRequested))
        {
            // A resolver of the application's own making (or its own timeout): this attempt failed, the next may not.
            throw new WayangException(new WayangError(ErrorCode.Unavailable, $"Resolving service '{service}' failed: {e.Message}"), e);
        }
        if (endpoints.Count == 0)
            throw new WayangException(ErrorCode.Unavailable, $"Service '{service}' has no healthy member.");

        WayangException? last = null;
        var failures = new List<string>();
        for (int i = 0; i < endpoints.Count; i++)
        {
            int cursor = _endpointCursor;
            var endpoint = endpoints[(int)((uint)cursor % (uint)endpoints.Count)];
            try
            {
                return await WayangConnection.ConnectAsync(_options, endpoint.Host, endpoint.Port, ct).ConfigureAwait(false);
            }
            catch (WayangException e) when (IsRetryableConnectFailure(e.Code) && !ct.IsCancellationRequested)
            {
                last = e;
                failures.Add(e.Error.Message);
                _endpointCursor = unchecked(cursor + 1);
            }
        }
        throw new WayangException(new WayangError(last!.Code,
            $"No member of service '{service}' answered ({endpoints.Count} tried): {string.Join("; ", failures)}"), last);
    }

    // Tests pin the starting member.
    internal int EndpointCursor
    {
        get => _endpointCursor;
        set => _endpointCursor = value;
    }

    // Authentication and version failures are final: retrying with the same key cannot succeed.
    private static bool IsRetryableConnectFailure(ErrorCode code) => code is
        ErrorCode.Unavailable or ErrorCode.ClientTimeout or ErrorCode.ConnectionClosed or ErrorCode.TooManyConnections
        or ErrorCode.ShuttingDown or ErrorCode.IdleTimeout or ErrorCode.Timeout;

    internal static TimeSpan BackoffDelay(WayangReconnectOptions policy, int retry)
    {
        // Exponential with "equal jitter": half fixed, half random, so many clients do not reconnect in step.
        double exp = policy.BaseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(retry - 1, 30));
        double capped = Math.Min(exp, policy.MaxDelay.TotalMilliseconds);
        return TimeSpan.FromMilliseconds((capped / 2) + (Random.Shared.NextDouble() * capped / 2));
    }

    private static TenantInfo ToTenant(TenantInfoDto dto) =>
        new(dto.TenantId, dto.DisplayName, DateTimeOffset.FromUnixTimeMilliseconds(dto.CreatedAtMs));

    private static ApiKeyInfo ToKey(ApiKeyInfoDto dto) =>
        new(dto.KeyId, dto.TenantId, dto.Name, dto.Roles ?? [], DateTimeOffset.FromUnixTimeMilliseconds(dto.CreatedAtMs), dto.Revoked,
            dto.Revoked && dto.RevokedAtMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(dto.RevokedAtMs) : null);

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
            return;
        _disposed = true;
        await _connectLock.WaitAsync().ConfigureAwait(false);
        try
        {
            var connection = Interlocked.Exchange(ref _connection, null);
            if (connection is not null)
                await connection.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            _connectLock.Release();
        }
    }
}
