using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Wayang.Fast.Discovery.Tests;

// Consul cannot be installed here, so the tests talk to this: a Kestrel server on 127.0.0.1 that follows the
// documented HTTP API for what discovery uses (https://developer.hashicorp.com/consul/api-docs):
//   GET /v1/health/service/:service   ?passing ?dc ?tag, blocking with ?index and ?wait, X-Consul-Index header
//   PUT /v1/agent/service/register    JSON body with ID, Name, Tags, Address, Port, Meta, Check { CheckID, TTL, ... }
//   PUT /v1/agent/check/pass/:check_id
//   PUT /v1/agent/service/deregister/:service_id
// ACLs: with RequiredToken set, a request without that X-Consul-Token is refused with 403 "ACL not found".
// Every request is recorded. The raft index is one counter bumped by every change, as in a small cluster.
internal sealed class FakeConsulAgent : IAsyncDisposable
{
    public const string NodeName = "node-1";
    public const string NodeAddress = "10.20.30.40";

    private readonly Lock _gate = new();
    private readonly Dictionary<string, Instance> _instances = new(StringComparer.Ordinal);
    private readonly List<RecordedRequest> _requests = [];
    private readonly CancellationTokenSource _shutdown = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _requestSeen = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ulong _index = 10;
    private WebApplication _app = null!;

    public Uri Address { get; private set; } = null!;

    public string? RequiredToken { get; init; }

    private volatile int _healthErrorStatus;

    // Non-zero: health queries answer this status (a Consul server error, no leader, ...).
    public int HealthErrorStatus
    {
        get => _healthErrorStatus;
        set => _healthErrorStatus = value;
    }

    public ulong Index
    {
        get
        {
            lock (_gate)
                return _index;
        }
    }

    public static async Task<FakeConsulAgent> StartAsync(string? requiredToken = null)
    {
        var agent = new FakeConsulAgent { RequiredToken = requiredToken };
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(o => o.Listen(IPAddress.Loopback, 0));
        agent._app = builder.Build();
        agent._app.Run(agent.HandleAsync);
        await agent._app.StartAsync();
        var address = agent._app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        agent.Address = new Uri(address);
        return agent;
    }

    // A loopback address nothing listens on: connections are refused at once.
    public static Uri UnreachableAddress()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return new Uri($"http://127.0.0.1:{port}");
    }

    public sealed record Instance(string Id, string Service, string Address, int Port, string[] Tags, Dictionary<string, string>? Meta = null)
    {
        public string Status { get; set; } = "passing";
        public string? CheckId { get; init; }
        public string? Ttl { get; init; }
        public string? DeregisterAfter { get; init; }
    }

    public sealed record RecordedRequest(string Method, string Path, IReadOnlyDictionary<string, string> Query, string? Token, string Body)
    {
        public ulong? IndexParam => Query.TryGetValue("index", out var v) ? ulong.Parse(v, CultureInfo.InvariantCulture) : null;
    }

    public IReadOnlyList<RecordedRequest> Requests
    {
        get
        {
            lock (_gate)
                return [.. _requests];
        }
    }

    public void Upsert(Instance instance)
    {
        lock (_gate)
            _instances[instance.Id] = instance;
        Changed();
    }

    public void SetStatus(string id, string status)
    {
        lock (_gate)
            _instances[id].Status = status;
        Changed();
    }

    public void Remove(string id)
    {
        lock (_gate)
            _instances.Remove(id);
        Changed();
    }

    public bool Has(string id)
    {
        lock (_gate)
            return _instances.ContainsKey(id);
    }

    public Instance Get(string id)
    {
        lock (_gate)
            return _instances[id];
    }

    // An agent restart: API registrations are gone, and nothing tells the registrant.
    public void Forget(string id)
    {
        lock (_gate)
            _instances.Remove(id);
        Changed();
    }

    // The cluster's state replaced by an older snapshot: the index goes backwards and the members differ.
    public void Restore(ulong index, params Instance[] instances)
    {
        TaskCompletionSource signal;
        lock (_gate)
        {
            _instances.Clear();
            foreach (var i in instances)
                _instances[i.Id] = i;
            _index = index;
            signal = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        signal.TrySetResult();
    }

    private void Changed()
    {
        TaskCompletionSource signal;
        lock (_gate)
        {
            _index++;
            signal = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        signal.TrySetResult();
    }

    // Waits (generously) until a recorded request matches; returns it.
    public async Task<RecordedRequest> WaitForRequestAsync(Func<RecordedRequest, bool> match, int timeoutSeconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (true)
        {
            Task seen;
            lock (_gate)
            {
                var found = _requests.FirstOrDefault(match);
                if (found is not null)
                    return found;
                seen = _requestSeen.Task;
            }
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                throw new TimeoutException("The expected request never reached the fake Consul agent. Seen: "
                    + string.Join(", ", Requests.Select(r => r.Method + " " + r.Path + "?" + string.Join('&', r.Query.Select(q => q.Key + "=" + q.Value)))));
            try
            {
                await seen.WaitAsync(left);
            }
            catch (TimeoutException)
            {
            }
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        string body;
        using (var reader = new StreamReader(request.Body, Encoding.UTF8))
            body = await reader.ReadToEndAsync(context.RequestAborted);
        var query = request.Query.ToDictionary(q => q.Key, q => q.Value.ToString(), StringComparer.Ordinal);
        var token = request.Headers.TryGetValue("X-Consul-Token", out var t) ? t.ToString() : null;
        var path = request.Path.Value ?? "";
        var recorded = new RecordedRequest(request.Method, path, query, token, body);
        TaskCompletionSource seen;
        lock (_gate)
        {
            _requests.Add(recorded);
            seen = _requestSeen;
            _requestSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        seen.TrySetResult();

        if (RequiredToken is not null && token != RequiredToken)
        {
            await WriteTextAsync(context, 403, "ACL not found");
            return;
        }

        const string Health = "/v1/health/service/";
        const string Pass = "/v1/agent/check/pass/";
        const string Deregister = "/v1/agent/service/deregister/";
        if (HttpMethods.IsGet(request.Method) && path.StartsWith(Health, StringComparison.Ordinal))
            await HealthServiceAsync(context, path[Health.Length..], query);
        else if (HttpMethods.IsPut(request.Method) && path == "/v1/agent/service/register")
            await RegisterAsync(context, body);
        else if (HttpMethods.IsPut(request.Method) && path.StartsWith(Pass, StringComparison.Ordinal))
            await PassAsync(context, path[Pass.Length..]);
        else if (HttpMethods.IsPut(request.Method) && path.StartsWith(Deregister, StringComparison.Ordinal))
            await DeregisterAsync(context, path[Deregister.Length..]);
        else
            await WriteTextAsync(context, 404, "404 page not found");
    }

    private async Task HealthServiceAsync(HttpContext context, string service, Dictionary<string, string> query)
    {
        if (HealthErrorStatus is var error and not 0)
        {
            await WriteTextAsync(context, error, "No cluster leader");
            return;
        }
        // Blocking query: hold the request while the index has not moved past the client's, up to "wait".
        if (query.TryGetValue("index", out var indexText) && ulong.TryParse(indexText, CultureInfo.InvariantCulture, out var minIndex) && minIndex > 0)
        {
            var wait = query.TryGetValue("wait", out var w) ? ParseWait(w) : TimeSpan.FromMinutes(5);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _shutdown.Token);
            timeout.CancelAfter(wait);
            while (true)
            {
                Task changed;
                lock (_gate)
                {
                    if (_index != minIndex)
                        break;
                    changed = _changed.Task;
                }
                try
                {
                    await changed.WaitAsync(timeout.Token);
                }
                catch (OperationCanceledException)
                {
                    if (context.RequestAborted.IsCancellationRequested)
                        return;
                    break; // wait elapsed (or shutdown): answer with the unchanged state
                }
            }
        }

        bool passingOnly = query.TryGetValue("passing", out var p) && p is not ("false" or "0");
        query.TryGetValue("tag", out var tag);
        List<Instance> members;
        ulong index;
        lock (_gate)
        {
            index = _index;
            members = [.. _instances.Values
                .Where(i => i.Service == service)
                .Where(i => !passingOnly || i.Status == "passing")
                .Where(i => string.IsNullOrEmpty(tag) || i.Tags.Contains(tag))
                .OrderBy(i => i.Id, StringComparer.Ordinal)];
        }

        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/json";
        context.Response.Headers["X-Consul-Index"] = index.ToString(CultureInfo.InvariantCulture);
        context.Response.Headers["X-Consul-KnownLeader"] = "true";
        context.Response.Headers["X-Consul-LastContact"] = "0";
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartArray();
            foreach (var m in members)
            {
                json.WriteStartObject();
                json.WriteStartObject("Node");
                json.WriteString("ID", "40e4a748-2192-161a-0510-9bf59fe950b5");
                json.WriteString("Node", NodeName);
                json.WriteString("Address", NodeAddress);
                json.WriteString("Datacenter", "dc1");
                json.WriteEndObject();
                json.WriteStartObject("Service");
                json.WriteString("ID", m.Id);
                json.WriteString("Service", m.Service);
                json.WriteStartArray("Tags");
                foreach (var tg in m.Tags)
                    json.WriteStringValue(tg);
                json.WriteEndArray();
                json.WriteString("Address", m.Address);
                json.WriteStartObject("Meta");
                foreach (var (k, v) in m.Meta ?? [])
                    json.WriteString(k, v);
                json.WriteEndObject();
                json.WriteNumber("Port", m.Port);
                json.WriteEndObject();
                json.WriteStartArray("Checks");
                json.WriteStartObject();
                json.WriteString("Node", NodeName);
                json.WriteString("CheckID", "serfHealth");
                json.WriteString("Status", "passing");
                json.WriteEndObject();
                json.WriteStartObject();
                json.WriteString("Node", NodeName);
                json.WriteString("CheckID", m.CheckId ?? "service:" + m.Id);
                json.WriteString("Status", m.Status);
                json.WriteString("ServiceID", m.Id);
                json.WriteEndObject();
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndArray();
        }
        await context.Response.Body.WriteAsync(buffer.ToArray());
    }

    private async Task RegisterAsync(HttpContext context, string body)
    {
        JsonElement root;
        try
        {
            root = JsonDocument.Parse(body).RootElement;
        }
        catch (JsonException e)
        {
            await WriteTextAsync(context, 400, "Request decode failed: " + e.Message);
            return;
        }
        var name = root.GetProperty("Name").GetString()!;
        var id = root.TryGetProperty("ID", out var idEl) ? idEl.GetString()! : name;
        var address = root.TryGetProperty("Address", out var a) ? a.GetString() ?? "" : "";
        var tags = root.TryGetProperty("Tags", out var tg) && tg.ValueKind == JsonValueKind.Array ? tg.EnumerateArray().Select(x => x.GetString()!).ToArray() : [];
        var meta = root.TryGetProperty("Meta", out var me) && me.ValueKind == JsonValueKind.Object
            ? me.EnumerateObject().ToDictionary(x => x.Name, x => x.Value.GetString()!) : null;
        string? checkId = null, ttl = null, deregisterAfter = null, status = "critical";
        if (root.TryGetProperty("Check", out var check) && check.ValueKind == JsonValueKind.Object)
        {
            // A service's only check is "service:<id>" unless the registration names it.
            checkId = check.TryGetProperty("CheckID", out var c) ? c.GetString() : "service:" + id;
            ttl = check.TryGetProperty("TTL", out var tt) ? tt.GetString() : null;
            deregisterAfter = check.TryGetProperty("DeregisterCriticalServiceAfter", out var d) ? d.GetString() : null;
            status = check.TryGetProperty("Status", out var s) ? s.GetString() ?? "critical" : "critical";
        }
        Upsert(new Instance(id, name, address, root.GetProperty("Port").GetInt32(), tags, meta)
        {
            Status = status,
            CheckId = checkId,
            Ttl = ttl,
            DeregisterAfter = deregisterAfter,
        });
        context.Response.StatusCode = 200;
    }

    private async Task PassAsync(HttpContext context, string checkId)
    {
        Instance? target;
        lock (_gate)
            target = _instances.Values.FirstOrDefault(i => i.CheckId == checkId);
        if (target is null)
        {
            await WriteTextAsync(context, 404, $"Unknown check ID \"{checkId}\". Ensure that the check ID is passed, not the check name.");
            return;
        }
        if (target.Status != "passing")
            SetStatus(target.Id, "passing");
        context.Response.StatusCode = 200;
    }

    private async Task DeregisterAsync(HttpContext context, string id)
    {
        if (!Has(id))
        {
            await WriteTextAsync(context, 404, $"Unknown service ID \"{id}\". Ensure that the service ID is passed, not the service name.");
            return;
        }
        Remove(id);
        context.Response.StatusCode = 200;
    }

    private static async Task WriteTextAsync(HttpContext context, int status, string text)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        await context.Response.WriteAsync(text);
    }

    // Go durations as Consul reads them: "10s", "5m", "250ms" (a bare number is seconds).
    private static TimeSpan ParseWait(string text)
    {
        if (text.EndsWith("ms", StringComparison.Ordinal))
            return TimeSpan.FromMilliseconds(double.Parse(text[..^2], CultureInfo.InvariantCulture));
        if (text.EndsWith('s'))
            return TimeSpan.FromSeconds(double.Parse(text[..^1], CultureInfo.InvariantCulture));
        if (text.EndsWith('m'))
            return TimeSpan.FromMinutes(double.Parse(text[..^1], CultureInfo.InvariantCulture));
        return TimeSpan.FromSeconds(double.Parse(text, CultureInfo.InvariantCulture));
    }

    public async ValueTask DisposeAsync()
    {
        await _shutdown.CancelAsync();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _shutdown.Dispose();
    }
}
