using System.Net.Http.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Discovery.Internal;

namespace Wayang.Fast.Discovery;

// Bindable from configuration, e.g. section "Wayang:Discovery:Registration".
public sealed class ConsulRegistrationOptions
{
    // The local Consul agent's HTTP API (registrations belong to an agent, not to the catalog servers).
    public Uri Address { get; set; } = new("http://127.0.0.1:8500");

    // Sent as X-Consul-Token when set; needs service:write for ServiceName.
    public string? Token { get; set; }

    public string ServiceName { get; set; } = "wayang";

    // Unique on the agent; null: "<ServiceName>-<ServiceAddress or machine name>-<ServicePort>".
    public string? ServiceId { get; set; }

    // The address clients should dial; null lets Consul answer with the agent node's address.
    public string? ServiceAddress { get; set; }

    public int ServicePort { get; set; }

    public List<string> Tags { get; set; } = [];

    public Dictionary<string, string> Meta { get; set; } = [];

    // The TTL check turns critical when no heartbeat arrived for this long (then the instance leaves ?passing answers).
    public TimeSpan Ttl { get; set; } = TimeSpan.FromSeconds(15);

    // null: Ttl / 3, so two heartbeats may be lost before the check expires.
    public TimeSpan? HeartbeatInterval { get; set; }

    // Consul removes an instance whose check stayed critical this long (a crashed server cleans itself up).
    // Consul's minimum is one minute.
    public TimeSpan DeregisterCriticalServiceAfter { get; set; } = TimeSpan.FromMinutes(1);

    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);
}

// Self-registration with the local Consul agent: PUT /v1/agent/service/register with a TTL check, a heartbeat
// (PUT /v1/agent/check/pass/service:<id>) every HeartbeatInterval, PUT /v1/agent/service/deregister/<id> on dispose.
// If the agent stops knowing the check (an agent restart loses API registrations) the next heartbeat registers again.
public sealed class ConsulServiceRegistration : IAsyncDisposable
{
    private readonly Uri _base;
    private readonly string? _token;
    private readonly ConsulRegistrationBody _body;
    private readonly TimeSpan _interval;
    private readonly TimeSpan _requestTimeout;
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stopping = new();
    private Task _heartbeat = Task.CompletedTask;
    private long _heartbeats;
    private int _registrations;
    private Exception? _lastError;
    private int _deregistered;

    private ConsulServiceRegistration(ConsulRegistrationOptions options, HttpClient? httpClient, TimeProvider? timeProvider)
    {
        _base = ConsulHttp.BaseAddress(options.Address);
        if (string.IsNullOrWhiteSpace(options.ServiceName))
            throw new ArgumentException("ServiceName is required.", nameof(options));
        if (options.ServicePort is <= 0 or > 65535)
            throw new ArgumentException("ServicePort must be 1..65535.", nameof(options));
        if (options.ServiceAddress is { Length: > 0 } a && Uri.CheckHostName(a) == UriHostNameType.Unknown)
            throw new ArgumentException($"ServiceAddress '{a}' is not a host name or IP address.", nameof(options));
        if (options.Ttl < TimeSpan.FromSeconds(0.01))
            throw new ArgumentException("Ttl must be at least 10 ms.", nameof(options));
        var interval = options.HeartbeatInterval ?? options.Ttl / 3;
        if (interval <= TimeSpan.Zero || interval >= options.Ttl)
            throw new ArgumentException("HeartbeatInterval must be positive and shorter than Ttl.", nameof(options));
        if (options.RequestTimeout <= TimeSpan.Zero)
            throw new ArgumentException("RequestTimeout must be positive.", nameof(options));

        var address = string.IsNullOrEmpty(options.ServiceAddress) ? null : options.ServiceAddress;
        var id = string.IsNullOrWhiteSpace(options.ServiceId)
            ? $"{options.ServiceName}-{address ?? Environment.MachineName}-{options.ServicePort}"
            : options.ServiceId;
        _body = new ConsulRegistrationBody
        {
            Id = id,
            Name = options.ServiceName,
            Tags = options.Tags is { Count: > 0 } tags ? [.. tags] : null,
            Address = address,
            Port = options.ServicePort,
            Meta = options.Meta is { Count: > 0 } meta ? new Dictionary<string, string>(meta) : null,
            Check = new ConsulCheckBody
            {
                // Spelled out (Consul's default for a service's only check is the same) so heartbeats can name it.
                CheckId = "service:" + id,
                Name = $"{options.ServiceName} heartbeat",
                Ttl = ConsulDuration.Format(options.Ttl),
                DeregisterCriticalServiceAfter = ConsulDuration.Format(options.DeregisterCriticalServiceAfter),
            },
        };
        _token = string.IsNullOrEmpty(options.Token) ? null : options.Token;
        _interval = interval;
        _requestTimeout = options.RequestTimeout;
        _http = httpClient ?? ConsulHttp.CreateClient();
        _ownsHttp = httpClient is null;
        _time = timeProvider ?? TimeProvider.System;
    }

    // Registers (failing with UNAVAILABLE when the agent cannot be reached or refuses) and starts the heartbeat.
    public static async Task<ConsulServiceRegistration> RegisterAsync(
        ConsulRegistrationOptions options, HttpClient? httpClient = null, TimeProvider? timeProvider = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var registration = new ConsulServiceRegistration(options, httpClient, timeProvider);
        try
        {
            await registration.RegisterCoreAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            registration.ReleaseHttp();
            throw new WayangException(new WayangError(ErrorCode.Unavailable,
                $"Registering service '{options.ServiceName}' with Consul at {registration._base} failed: {e.Message}"), e);
        }
        catch
        {
            registration.ReleaseHttp();
            throw;
        }
        registration._heartbeat = Task.Run(registration.HeartbeatLoopAsync);
        return registration;
    }

    public string ServiceId => _body.Id;

    public string CheckId => _body.Check!.CheckId;

    public TimeSpan HeartbeatInterval => _interval;

    // Diagnostics: heartbeats the agent accepted, registrations sent (more than 1 after an agent forgot us),
    // and the last failure (null after a success).
    public long HeartbeatsSent => Interlocked.Read(ref _heartbeats);

    public int Registrations => Volatile.Read(ref _registrations);

    public Exception? LastError => Volatile.Read(ref _lastError);

    private async Task RegisterCoreAsync(CancellationToken ct)
    {
        var content = JsonContent.Create(_body, ConsulJsonContext.Default.ConsulRegistrationBody);
        using var response = await ConsulHttp.SendAsync(
            _http, HttpMethod.Put, new Uri(_base, "v1/agent/service/register"), _token, content, _requestTimeout, _time, ct).ConfigureAwait(false);
        Interlocked.Increment(ref _registrations);
    }

    private async Task HeartbeatLoopAsync()
    {
        var ct = _stopping.Token;
        var passUri = new Uri(_base, "v1/agent/check/pass/service:" + Uri.EscapeDataString(_body.Id));
        try
        {
            while (true)
            {
                await Task.Delay(_interval, _time, ct).ConfigureAwait(false);
                try
                {
                    using var response = await ConsulHttp.SendAsync(_http, HttpMethod.Put, passUri, _token, null, _requestTimeout, _time, ct).ConfigureAwait(false);
                    Interlocked.Increment(ref _heartbeats);
                    Volatile.Write(ref _lastError, null);
                }
                catch (ConsulHttpException e)
                {
                    // The agent answered but refused the heartbeat: typically it restarted and lost our registration
                    // (unknown check). Registering again is idempotent for the same ID.
                    Volatile.Write(ref _lastError, e);
                    try
                    {
                        await RegisterCoreAsync(ct).ConfigureAwait(false);
                    }
                    catch (Exception again) when (!ct.IsCancellationRequested)
                    {
                        Volatile.Write(ref _lastError, again);
                    }
                }
                catch (Exception e) when (!ct.IsCancellationRequested)
                {
                    // Agent unreachable: the TTL check expires on its own; keep trying at the same pace.
                    Volatile.Write(ref _lastError, e);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    // Stops the heartbeat and removes the instance from Consul; throws UNAVAILABLE when the agent refuses or is gone.
    public async Task DeregisterAsync(CancellationToken ct = default)
    {
        await StopHeartbeatAsync().ConfigureAwait(false);
        if (Interlocked.Exchange(ref _deregistered, 1) != 0)
            return;
        try
        {
            using var response = await ConsulHttp.SendAsync(
                _http, HttpMethod.Put, new Uri(_base, "v1/agent/service/deregister/" + Uri.EscapeDataString(_body.Id)), _token, null,
                _requestTimeout, _time, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            throw new WayangException(new WayangError(ErrorCode.Unavailable,
                $"Deregistering '{_body.Id}' from Consul at {_base} failed: {e.Message}"), e);
        }
    }

    private async Task StopHeartbeatAsync()
    {
        if (!_stopping.IsCancellationRequested)
            await _stopping.CancelAsync().ConfigureAwait(false);
        await _heartbeat.ConfigureAwait(false);
    }

    // Best effort: a server shutting down must not hang or fail on Consul; DeregisterCriticalServiceAfter
    // removes the instance anyway if this request is lost.
    public async ValueTask DisposeAsync()
    {
        try
        {
            await DeregisterAsync().ConfigureAwait(false);
        }
        catch (WayangException)
        {
        }
        ReleaseHttp();
    }

    private void ReleaseHttp()
    {
        _stopping.Cancel();
        if (_ownsHttp)
            _http.Dispose();
    }
}
