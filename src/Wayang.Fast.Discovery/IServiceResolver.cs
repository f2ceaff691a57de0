namespace Wayang.Fast.Discovery;

// Finds the instances of a named service. Failures surface as WayangException: NOT_FOUND when the resolver
// does not know the name at all, UNAVAILABLE when it cannot answer right now (retryable).
// An empty list is a valid answer: the service is known and has no healthy instance at the moment.
public interface IServiceResolver
{
    ValueTask<IReadOnlyList<ServiceEndpoint>> ResolveAsync(string serviceName, CancellationToken ct = default);
}

// For long-lived consumers (load balancers, connection pools) that react to membership changes instead of
// resolving before every use.
public interface IServiceWatcher : IServiceResolver
{
    // Yields the current member list as soon as one is known, then again after every change, until ct is cancelled
    // or the resolver is disposed. Never yields the same list twice in a row.
    IAsyncEnumerable<IReadOnlyList<ServiceEndpoint>> WatchAsync(string serviceName, CancellationToken ct = default);
}
