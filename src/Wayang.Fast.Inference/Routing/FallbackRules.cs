using Wayang.Fast.Common;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Inference.Routing;

public static class FallbackRules
{
    // Without a rule: move on for what another target may not have (limits, outages, a model or key it lacks, a
    // larger context); fail for what no target will answer differently (a content refusal, an invalid request).
    public static FallbackAction DefaultFor(ErrorCode code) => code switch
    {
        ErrorCode.ContentFiltered or ErrorCode.InferenceRequestInvalid => FallbackAction.Fail,
        _ => FallbackAction.Next,
    };

    // The codes a rule may name: the inference codes a target can fail with.
    public static bool IsRuleCode(ErrorCode code) => code is >= ErrorCode.InferenceRateLimited and <= ErrorCode.ProviderNotFound
        and not ErrorCode.AllFallbacksFailed;

    public static FallbackRule RuleFor(FallbackPolicy policy, ErrorCode code)
    {
        ArgumentNullException.ThrowIfNull(policy);
        if (policy.OnError.TryGetValue(ErrorRegistry.NameOf(code), out var rule) && rule.Action != FallbackAction.Default)
            return rule;
        return new FallbackRule { Action = DefaultFor(code) };
    }

    // FALLBACK_POLICY_INVALID naming the first problem.
    public static void Validate(TenantFallbackPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        Validate(policy.Default, "default");
        foreach (var (agent, p) in policy.Agents)
        {
            if (!Ids.IsValidName(agent))
                throw Invalid($"Agent override '{agent}' is not a valid agent name.");
            Validate(p, $"agent '{agent}'");
        }
    }

    private static void Validate(FallbackPolicy? policy, string where)
    {
        if (policy is null)
            throw Invalid($"The {where} policy is missing.");
        if (policy.Chain.Count > 16)
            throw Invalid($"The {where} chain has {policy.Chain.Count} targets; at most 16.");
        for (int i = 0; i < policy.Chain.Count; i++)
            CheckTarget(policy.Chain[i], $"{where} chain[{i}]");
        if (policy.MaxCostPerRequest is double cost && (cost < 0 || double.IsNaN(cost) || double.IsInfinity(cost)))
            throw Invalid($"The {where} cost ceiling must be a non-negative number.");
        foreach (var (name, rule) in policy.OnError)
        {
            if (!ErrorRegistry.TryGetByName(name, out var info) || !IsRuleCode(info.Code))
                throw Invalid($"The {where} policy has a rule for '{name}', which is not an inference error a target can fail with.");
            if (rule is null)
                throw Invalid($"The {where} rule for {name} is empty.");
            if (!Enum.IsDefined(rule.Action))
                throw Invalid($"The {where} rule for {name} has an unknown action.");
            if (rule.Action == FallbackAction.Target)
            {
                if (rule.Target is null)
                    throw Invalid($"The {where} rule for {name} is TARGET without a target.");
                CheckTarget(rule.Target, $"{where} rule for {name}");
            }
            if (rule.Action == FallbackAction.Retry && rule.Retries is < 1 or > 10)
                throw Invalid($"The {where} rule for {name} retries {rule.Retries} times; 1 to 10.");
            if (rule.BackoffMs is < 0 or > 60_000)
                throw Invalid($"The {where} rule for {name} backs off {rule.BackoffMs} ms; 0 to 60000.");
        }
    }

    private static void CheckTarget(FallbackTarget? target, string where)
    {
        if (target is null || string.IsNullOrWhiteSpace(target.Model) || target.Model.Length > 256 || target.Provider is { Length: 0 or > 128 })
            throw Invalid($"The {where} target needs a model (and, when given, a provider name).");
    }

    private static WayangException Invalid(string message) => new(ErrorCode.FallbackPolicyInvalid, message);
}
