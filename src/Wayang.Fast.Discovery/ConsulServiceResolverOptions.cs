namespace Wayang.Fast.Discovery;

// Bindable from configuration, e.g. section "Wayang:Discovery:Consul" (Fallback is set in code).
public sealed class ConsulServiceResolverOptions
{
    // The local Consul agent's HTTP API.
    public Uri Address { get; set; } = new("http://127.0.0.1:8500");

    // Sent as X-Consul-Token when set; needs service:read and node:read for the watched services.
    public string? Token { get; set; }

    // null: the agent's own datacenter.
    public string? Datacenter { get; set; }

    // Only instances carrying this tag.
    public string? Tag { get; set; }

    // How long one blocking query may hang at Consul (sent as "wait"; Consul caps it at 10 minutes).
    public TimeSpan WaitTime { get; set; } = TimeSpan.FromMinutes(1);

    // Deadline of a non-blocking request; a blocking one gets WaitTime + WaitTime/16 (Consul's jitter) on top.
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    // Least time between two queries of one service: a service that changes constantly must not turn the watch
    // into a busy loop against the Consul servers (Consul's blocking-query guidance asks clients to rate-limit).
    public TimeSpan MinQueryInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    // Backoff after a failed query: exponential from ErrorBackoffBase up to ErrorBackoffMax, with jitter.
    public TimeSpan ErrorBackoffBase { get; set; } = TimeSpan.FromSeconds(1);
    public TimeSpan ErrorBackoffMax { get; set; } = TimeSpan.FromSeconds(30);

    // Answers when Consul cannot and no member list has been cached yet (typically a StaticServiceResolver).
    public IServiceResolver? Fallback { get; set; }
}
