using System.Runtime.CompilerServices;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Discovery;

// Bindable from configuration, e.g. section "Wayang:Discovery:Static":
//   { "Services": { "wayang": "10.0.0.5:7420,10.0.0.6:7420" } }
public sealed class StaticServiceResolverOptions
{
    // Service name -> comma-separated "host:port" list ("[v6]:port" for IPv6).
    public Dictionary<string, string> Services { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    // Used for entries written without ":port"; null makes the port mandatory.
    public int? DefaultPort { get; set; }
}

// A fixed member list per service name: the configuration-only resolver, and the fallback when a registry is down.
public sealed class StaticServiceResolver : IServiceWatcher
{
    private readonly Dictionary<string, IReadOnlyList<ServiceEndpoint>> _services = new(StringComparer.OrdinalIgnoreCase);

    public StaticServiceResolver(StaticServiceResolverOptions options)
        : this(options?.Services ?? throw new ArgumentNullException(nameof(options)), options.DefaultPort)
    {
    }

    // Every list is parsed here, so a typo in configuration fails at startup, not at the first connect.
    public StaticServiceResolver(IEnumerable<KeyValuePair<string, string>> services, int? defaultPort = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        foreach (var (name, list) in services)
            Add(name, ParseList(name, list, defaultPort));
    }

    public StaticServiceResolver(string serviceName, IEnumerable<ServiceEndpoint> endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        Add(serviceName, [.. endpoints]);
    }

    public IReadOnlyCollection<string> ServiceNames => _services.Keys;

    // "host:port,host:port"; blanks around entries are ignored, empty entries are not.
    public static IReadOnlyList<ServiceEndpoint> ParseList(string serviceName, string? list, int? defaultPort = null)
    {
        if (string.IsNullOrWhiteSpace(list))
            throw new ArgumentException($"Service '{serviceName}' has no endpoints; expected \"host:port,host:port\".", nameof(list));
        var parts = list.Split(',');
        var endpoints = new List<ServiceEndpoint>(parts.Length);
        foreach (var part in parts)
        {
            try
            {
                endpoints.Add(ServiceEndpoint.Parse(part, defaultPort));
            }
            catch (FormatException e)
            {
                throw new ArgumentException($"Service '{serviceName}': {e.Message}", nameof(list), e);
            }
        }
        return endpoints;
    }

    private void Add(string name, IReadOnlyList<ServiceEndpoint> endpoints)
    {
        if (string.IsNullOrWhiteSpace(name))
            throw new ArgumentException("A service name is empty.", nameof(name));
        if (endpoints.Count == 0)
            throw new ArgumentException($"Service '{name}' has no endpoints.", nameof(endpoints));
        if (endpoints.Any(e => e is null))
            throw new ArgumentException($"Service '{name}' has a null endpoint.", nameof(endpoints));
        if (!_services.TryAdd(name, endpoints))
            throw new ArgumentException($"Service '{name}' is configured twice.", nameof(name));
    }

    public ValueTask<IReadOnlyList<ServiceEndpoint>> ResolveAsync(string serviceName, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(serviceName);
        return _services.TryGetValue(serviceName, out var endpoints)
            ? new ValueTask<IReadOnlyList<ServiceEndpoint>>(endpoints)
            : ValueTask.FromException<IReadOnlyList<ServiceEndpoint>>(
                new WayangException(ErrorCode.NotFound, $"Service '{serviceName}' is not in the static discovery configuration."));
    }

    // The list never changes: yield it once, then wait for the consumer to stop.
    public async IAsyncEnumerable<IReadOnlyList<ServiceEndpoint>> WatchAsync(string serviceName, [EnumeratorCancellation] CancellationToken ct = default)
    {
        yield return await ResolveAsync(serviceName, ct).ConfigureAwait(false);
        await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
    }
}
