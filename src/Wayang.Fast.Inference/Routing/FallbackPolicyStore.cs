using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Inference.Routing;

// Tenants' fallback policies, one JSON record each under "inference/policy/<tenantId>", cached in memory (read on
// every request). A write is answered once durable.
public sealed class FallbackPolicyStore
{
    private const string Prefix = "inference/policy/";
    // null: an in-memory store (the embedded gateway): policies live as long as the process.
    private readonly IStateStore? _store;
    private readonly ConcurrentDictionary<string, TenantFallbackPolicy> _policies = new(StringComparer.Ordinal);

    private FallbackPolicyStore(IStateStore? store) => _store = store;

    // Policies kept in memory only, for an in-process gateway without a data directory.
    public static FallbackPolicyStore InMemory() => new(null);

    public static FallbackPolicyStore Load(IStateStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        var loaded = new FallbackPolicyStore(store);
        foreach (var (key, value) in store.ScanPrefix(Encoding.UTF8.GetBytes(Prefix)))
        {
            var tenant = Encoding.UTF8.GetString(key.AsSpan(Prefix.Length));
            var policy = JsonSerializer.Deserialize(value, FallbackJsonContext.Default.TenantFallbackPolicy);
            if (policy is not null)
                loaded._policies[tenant] = policy;
        }
        return loaded;
    }

    // The tenant's policy; an empty one (no chain, default rules) when none is set.
    public TenantFallbackPolicy Get(string tenantId) => _policies.TryGetValue(tenantId, out var p) ? p : Empty;

    public bool TryGet(string tenantId, out TenantFallbackPolicy policy) => _policies.TryGetValue(tenantId, out policy!);

    public static TenantFallbackPolicy Empty { get; } = new();

    // Validates (FALLBACK_POLICY_INVALID), stores a copy, and answers once durable.
    public async ValueTask SetAsync(string tenantId, TenantFallbackPolicy policy, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(policy);
        FallbackRules.Validate(policy);
        var bytes = JsonSerializer.SerializeToUtf8Bytes(policy, FallbackJsonContext.Default.TenantFallbackPolicy);
        var copy = JsonSerializer.Deserialize(bytes, FallbackJsonContext.Default.TenantFallbackPolicy)!;
        if (_store is not null)
            await _store.PutAsync(Encoding.UTF8.GetBytes(Prefix + tenantId), bytes, cancellationToken).ConfigureAwait(false);
        _policies[tenantId] = copy;
    }

    public async ValueTask<bool> DeleteAsync(string tenantId, CancellationToken cancellationToken = default)
    {
        if (!_policies.ContainsKey(tenantId))
            return false;
        if (_store is not null)
            await _store.DeleteAsync(Encoding.UTF8.GetBytes(Prefix + tenantId), cancellationToken).ConfigureAwait(false);
        return _policies.TryRemove(tenantId, out _);
    }

    public static string ToJson(TenantFallbackPolicy policy) => JsonSerializer.Serialize(policy, FallbackJsonContext.Default.TenantFallbackPolicy);

    // FALLBACK_POLICY_INVALID for JSON that is not a policy.
    public static TenantFallbackPolicy FromJson(string json)
    {
        try
        {
            return JsonSerializer.Deserialize(json, FallbackJsonContext.Default.TenantFallbackPolicy)
                ?? throw new Common.Errors.WayangException(Common.Errors.ErrorCode.FallbackPolicyInvalid, "The policy is null.");
        }
        catch (JsonException ex)
        {
            throw new Common.Errors.WayangException(Common.Errors.ErrorCode.FallbackPolicyInvalid, $"The policy is not valid JSON for a fallback policy: {ex.Message}");
        }
    }
}

// The stored and exchanged form: camelCase, strict about unknown members (a misspelt field is an error, not a
// silently ignored setting).
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(TenantFallbackPolicy))]
internal sealed partial class FallbackJsonContext : JsonSerializerContext;
