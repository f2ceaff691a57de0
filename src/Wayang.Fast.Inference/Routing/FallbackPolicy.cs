using System.Text.Json.Serialization;

namespace Wayang.Fast.Inference.Routing;

// A tenant's fallback policy: stored durably (FallbackPolicyStore), managed through opcodes and the CLI. Default
// applies to every request of the tenant; Agents overrides it for requests made for one agent (AGENT nodes).
public sealed class TenantFallbackPolicy
{
    public FallbackPolicy Default { get; set; } = new();
    public Dictionary<string, FallbackPolicy> Agents { get; set; } = new(StringComparer.Ordinal);
}

// The targets tried after the requested model's own target, in order, and what each class of error does.
public sealed class FallbackPolicy
{
    public List<FallbackTarget> Chain { get; set; } = [];
    // Keyed by error code name (INFERENCE_RATE_LIMITED, CONTEXT_LENGTH_EXCEEDED, ...); a code without a rule takes
    // FallbackRules.DefaultFor.
    public Dictionary<string, FallbackRule> OnError { get; set; } = new(StringComparer.Ordinal);
    // US dollars: a target whose estimated cost for the request (prompt characters / 4 at the input price, plus the
    // request's max tokens at the output price) exceeds it is skipped. Null: no ceiling.
    public double? MaxCostPerRequest { get; set; }
}

// A model id or alias from the registry, or Provider plus the provider-side Model for a target outside it.
public sealed record FallbackTarget(string Model, string? Provider = null)
{
    public override string ToString() => Provider is null ? Model : $"{Provider}/{Model}";
}

public sealed class FallbackRule
{
    public FallbackAction Action { get; set; }
    // TARGET: where to go instead (a larger-context model, say). Tried once; the chain goes on after it.
    public FallbackTarget? Target { get; set; }
    // RETRY: attempts on the same target before the chain goes on, with jittered exponential backoff from BackoffMs
    // (a provider's Retry-After wins when it is longer).
    public int Retries { get; set; }
    public int BackoffMs { get; set; } = 200;
}

// Persisted as names in stored policies: explicit values, append-only.
[JsonConverter(typeof(JsonStringEnumConverter<FallbackAction>))]
public enum FallbackAction
{
    [JsonStringEnumMemberName("DEFAULT")] Default = 0,
    [JsonStringEnumMemberName("NEXT")] Next = 1,
    [JsonStringEnumMemberName("TARGET")] Target = 2,
    [JsonStringEnumMemberName("RETRY")] Retry = 3,
    [JsonStringEnumMemberName("FAIL")] Fail = 4,
}
