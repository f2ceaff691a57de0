using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Routing;

namespace Wayang.Fast.Inference.Gateway;

public sealed class InferenceGatewayOptions
{
    // What a request's own InferenceTimeouts leaves unset. Connect is the adapters' (HttpProviderOptions).
    public TimeSpan FirstTokenTimeout { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan BetweenTokensTimeout { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan TotalTimeout { get; set; } = TimeSpan.FromMinutes(2);
    public CircuitBreakerOptions CircuitBreaker { get; set; } = new();
    // Output tokens assumed for a request without MaxTokens when a cost ceiling is checked.
    public int AssumedOutputTokens { get; set; } = 256;

    internal (TimeSpan FirstToken, TimeSpan BetweenTokens, TimeSpan Total) Resolve(InferenceTimeouts? t) =>
        (Positive(t?.FirstToken) ?? FirstTokenTimeout, Positive(t?.BetweenTokens) ?? BetweenTokensTimeout, Positive(t?.Total) ?? TotalTimeout);

    private static TimeSpan? Positive(TimeSpan? value) => value is { } v && v > TimeSpan.Zero ? v : null;
}
