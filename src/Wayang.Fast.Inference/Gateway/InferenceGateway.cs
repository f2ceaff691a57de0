using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Routing;

namespace Wayang.Fast.Inference.Gateway;

// The inference plane's front door: resolves a request's model to a target (a provider instance and its model
// name), tries the tenant's fallback chain under the per-class rules, keeps one circuit breaker per target, and
// enforces the request's timeouts: total over the whole request (fallbacks included), time to first token and
// between tokens on streams. Every surface (protocol opcodes, the OpenAI-compatible HTTP face, the embedded SDK,
// AGENT nodes) calls this one class, so they all route, fail over and time out alike.
public sealed partial class InferenceGateway
{
    private readonly Dictionary<string, IInferenceProvider> _providers;
    private readonly ModelRegistry _models;
    private readonly FallbackPolicyStore? _policies;
    private readonly InferenceGatewayOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, CircuitBreaker> _breakers = new(StringComparer.OrdinalIgnoreCase);

    public InferenceGateway(IEnumerable<IInferenceProvider> providers, ModelRegistry models, FallbackPolicyStore? policies = null,
        InferenceGatewayOptions? options = null, TimeProvider? time = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(providers);
        ArgumentNullException.ThrowIfNull(models);
        _providers = providers.ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        _models = models;
        _policies = policies;
        _options = options ?? new InferenceGatewayOptions();
        _time = time ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
    }

    public ModelRegistry Models => _models;
    public FallbackPolicyStore? Policies => _policies;
    public GatewayMetrics Metrics { get; } = new();
    public IReadOnlyCollection<IInferenceProvider> Providers => _providers.Values;
    // Told when each attempt on a target starts, produces its first output and ends (cache warming: last use, requests
    // in flight, popularity, cold starts). Null: nobody is told.
    public IModelUsage? Usage { get; set; }

    public async Task<ChatResponse> ChatAsync(ChatRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var plan = Plan(request.Model, request.TenantId, request.Agent, request.Preference);
        var (_, _, total) = _options.Resolve(request.Timeouts);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(total);
        var (response, target, path) = await RunAsync(plan, EstimateCost(request), deadline, total, cancellationToken,
            (t, ct) => UseAsync(t, () => t.Provider.ChatAsync(request, t.ProviderModel, ct))).ConfigureAwait(false);
        response.Provider = target.Provider.Name;
        if (string.IsNullOrEmpty(response.Model))
            response.Model = target.ProviderModel;
        response.FallbackPath = path;
        return response;
    }

    public async IAsyncEnumerable<ChatDelta> StreamChatAsync(ChatRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var plan = Plan(request.Model, request.TenantId, request.Agent, request.Preference);
        var (firstToken, betweenTokens, total) = _options.Resolve(request.Timeouts);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(total);
        // A stream falls back only until its first delta: after that the caller has tokens and a failure ends it.
        var (opened, target, _) = await RunAsync(plan, EstimateCost(request), deadline, total, cancellationToken,
            (t, ct) => OpenStreamAsync(t, request, firstToken, ct)).ConfigureAwait(false);
        await using (opened.ConfigureAwait(false))
        {
            var first = opened.Enumerator.Current;
            first.Provider = target.Provider.Name;
            first.Model = target.ProviderModel;
            yield return first;
            while (true)
            {
                opened.Step.CancelAfter(betweenTokens);
                if (!await NextAsync(opened, target, "between_tokens", betweenTokens, deadline, total, cancellationToken).ConfigureAwait(false))
                    yield break;
                yield return opened.Enumerator.Current;
            }
        }
    }

    public async Task<EmbeddingResponse> EmbedAsync(EmbeddingRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var plan = Plan(request.Model, request.TenantId, agent: null);
        var (_, _, total) = _options.Resolve(request.Timeouts);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(total);
        var (response, target, _) = await RunAsync(plan, default, deadline, total, cancellationToken,
            (t, ct) => UseAsync(t, () => t.Provider.EmbedAsync(request, t.ProviderModel, ct))).ConfigureAwait(false);
        response.Provider = target.Provider.Name;
        if (string.IsNullOrEmpty(response.Model))
            response.Model = target.ProviderModel;
        return response;
    }

    // Every configured provider with its health probe and the breakers of its targets.
    public async Task<IReadOnlyList<ProviderStatus>> ListProvidersAsync(CancellationToken cancellationToken = default)
    {
        var probes = _providers.Values.Select(async p => (p, await p.CheckHealthAsync(cancellationToken).ConfigureAwait(false)));
        var results = await Task.WhenAll(probes).ConfigureAwait(false);
        return [.. results.OrderBy(r => r.p.Name, StringComparer.Ordinal).Select(r => new ProviderStatus(r.p.Name, r.p.Kind, r.p.Capabilities, r.Item2,
            [.. _breakers.Values.Where(b => b.Target.StartsWith(r.p.Name + "/", StringComparison.OrdinalIgnoreCase)).Select(b => b.Snapshot())
                .OrderBy(s => s.Target, StringComparer.Ordinal)]))];
    }

    public BreakerSnapshot? Breaker(string provider, string providerModel) =>
        _breakers.TryGetValue(TargetKey(provider, providerModel), out var b) ? b.Snapshot() : null;

    // ---- planning ----

    private sealed record Target(IInferenceProvider Provider, string ProviderModel, ModelEntry? Entry)
    {
        public string Key => TargetKey(Provider.Name, ProviderModel);
    }

    private sealed record RoutePlan(List<Target> Targets, List<FallbackStep> Unresolved, FallbackPolicy Policy);

    private static string TargetKey(string provider, string model) => string.Concat(provider, "/", model);

    private RoutePlan Plan(string model, string tenantId, string? agent, RoutePreference preference = RoutePreference.Auto)
    {
        if (string.IsNullOrWhiteSpace(model))
            throw new WayangException(ErrorCode.InvalidArgument, "The request names no model.");
        var tenantPolicy = _policies?.Get(tenantId) ?? FallbackPolicyStore.Empty;
        var policy = agent is not null && tenantPolicy.Agents.TryGetValue(agent, out var own) ? own : tenantPolicy.Default;
        Metrics.OnRequest(model);
        var primary = Resolve(new FallbackTarget(model));
        var targets = new List<Target> { primary };
        var unresolved = new List<FallbackStep>();
        foreach (var next in policy.Chain)
        {
            try
            {
                targets.Add(Resolve(next));
            }
            catch (WayangException ex)
            {
                // A chain entry that names nothing known is reported in the path, not fatal: the rest may serve.
                unresolved.Add(new FallbackStep(next.Provider ?? "", next.Model, ex.Error.Name, ex.Error.Message));
            }
        }
        if (preference != RoutePreference.Auto)
        {
            // Stable: within each group the plan's order stays.
            bool wantLocal = preference == RoutePreference.Local;
            targets = [.. targets.OrderBy(t => t.Provider.Capabilities.HasFlag(ProviderCapabilities.Local) == wantLocal ? 0 : 1)];
        }
        return new RoutePlan(targets, unresolved, policy);
    }

    // "provider/model" names a provider's model directly; anything else is a registry id or alias.
    private Target Resolve(FallbackTarget target)
    {
        if (target.Provider is { } named)
        {
            if (!_providers.TryGetValue(named, out var p))
                throw new WayangException(ErrorCode.ProviderNotFound, $"No provider named '{named}' is configured.");
            _models.TryResolve(target.Model, out var e);
            return new Target(p, e is not null && string.Equals(e.Provider, named, StringComparison.OrdinalIgnoreCase) ? e.ProviderModel : target.Model, e);
        }
        if (_models.TryResolve(target.Model, out var entry))
        {
            if (!_providers.TryGetValue(entry.Provider, out var provider))
                throw new WayangException(ErrorCode.ProviderNotFound, $"Model '{entry.Id}' is served by provider '{entry.Provider}', which is not configured.");
            return new Target(provider, entry.ProviderModel, entry);
        }
        int slash = target.Model.IndexOf('/', StringComparison.Ordinal);
        if (slash > 0 && _providers.TryGetValue(target.Model[..slash], out var direct))
            return new Target(direct, target.Model[(slash + 1)..], null);
        throw new WayangException(ErrorCode.ModelNotFound, $"Model '{target.Model}' is not in the model registry (and names no configured provider).");
    }

    // Token counts a cost ceiling is checked with: prompt characters / 4, and the request's max tokens (or the assumed
    // output). Priced per target in CostOf, since prices differ.
    private readonly record struct CostBasis(double InputTokens, double OutputTokens);

    private CostBasis EstimateCost(ChatRequest request)
    {
        long chars = 0;
        foreach (var m in request.Messages)
        {
            foreach (var p in m.Parts)
                chars += p.Text?.Length ?? 0;
        }
        return new CostBasis(chars / 4.0, request.MaxTokens ?? _options.AssumedOutputTokens);
    }

    private static double CostOf(Target target, CostBasis basis) =>
        target.Entry is { } e ? ((basis.InputTokens * e.InputCostPerMillion) + (basis.OutputTokens * e.OutputCostPerMillion)) / 1e6 : 0;

    // ---- the fallback loop ----

    private async Task<(T Result, Target Target, List<FallbackStep> Path)> RunAsync<T>(RoutePlan plan, CostBasis cost, CancellationTokenSource deadline,
        TimeSpan total, CancellationToken callerToken, Func<Target, CancellationToken, Task<T>> attempt)
    {
        var path = new List<FallbackStep>(plan.Unresolved);
        var targets = plan.Targets;
        var tried = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        WayangException? last = null;
        int attempted = 0;
        for (int i = 0; i < targets.Count; i++)
        {
            var target = targets[i];
            if (!tried.Add(target.Key))
                continue;
            if (plan.Policy.MaxCostPerRequest is double ceiling && CostOf(target, cost) > ceiling)
            {
                path.Add(new FallbackStep(target.Provider.Name, target.ProviderModel, "COST_CEILING",
                    string.Create(CultureInfo.InvariantCulture, $"Estimated cost {CostOf(target, cost):0.######} USD is over the ceiling {ceiling:0.######} USD.")));
                continue;
            }
            var breaker = BreakerFor(target);
            int retries = 0;
            while (true)
            {
                if (!breaker.TryEnter())
                {
                    var cooled = InferenceErrors.Create(ErrorCode.ProviderUnavailable, target.Provider.Name,
                        $"Target '{target.Key}' is cooled down by its circuit breaker after repeated failures.");
                    path.Add(Step(target, cooled));
                    last = cooled;
                    break;
                }
                attempted++;
                long attemptStart = System.Diagnostics.Stopwatch.GetTimestamp();
                try
                {
                    var result = await attempt(target, deadline.Token).ConfigureAwait(false);
                    breaker.OnSuccess();
                    Metrics.OnAttempt(target.Provider.Name, attemptStart, failed: false);
                    if (path.Count > plan.Unresolved.Count)
                        Metrics.OnFallbackServed();
                    return (result, target, path);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !callerToken.IsCancellationRequested)
                {
                    var error = deadline.IsCancellationRequested && !callerToken.IsCancellationRequested
                        ? InferenceErrors.Timeout(target.Provider.Name, "total", total)
                        : ex as WayangException ?? InferenceErrors.FromException(target.Provider.Name, ex);
                    breaker.OnFailure(error.Code);
                    Metrics.OnAttemptFailed(error.Error.Name);
                    Metrics.OnAttempt(target.Provider.Name, attemptStart, failed: true);
                    path.Add(Step(target, error));
                    last = error;
                    LogAttemptFailed(target.Key, error.Error.Name, error.Error.Message);
                    if (error.Code == ErrorCode.InferenceTimeout && deadline.IsCancellationRequested)
                        throw Fail(error, path);
                    var rule = FallbackRules.RuleFor(plan.Policy, error.Code);
                    if (rule.Action == FallbackAction.Retry && retries < rule.Retries)
                    {
                        retries++;
                        await Task.Delay(Backoff(rule, retries, error.Error.RetryAfterMs), _time, deadline.Token).ConfigureAwait(false);
                        continue;
                    }
                    if (rule.Action == FallbackAction.Fail)
                        throw Fail(error, path);
                    if (rule.Action == FallbackAction.Target && rule.Target is { } jump)
                    {
                        try
                        {
                            targets.Insert(i + 1, Resolve(jump));
                        }
                        catch (WayangException unresolved)
                        {
                            path.Add(new FallbackStep(jump.Provider ?? "", jump.Model, unresolved.Error.Name, unresolved.Error.Message));
                        }
                    }
                    break;
                }
                catch (OperationCanceledException)
                {
                    breaker.OnAbandoned();
                    throw;
                }
            }
        }
        Metrics.OnFailed();
        // One target tried: its own error says more than "all fallbacks failed".
        if (attempted <= 1 && last is not null && path.Count <= 1)
            throw last;
        throw AllFailed(path);
    }

    private static WayangException Fail(WayangException error, List<FallbackStep> path)
    {
        if (path.Count <= 1)
            return error;
        var details = new Dictionary<string, string>(error.Error.Details, StringComparer.Ordinal) { ["attempts"] = path.Count.ToString(CultureInfo.InvariantCulture) };
        return new WayangException(new WayangError(error.Code, error.Error.Message, error.Error.RetryAfterMs, details));
    }

    private static WayangException AllFailed(List<FallbackStep> path)
    {
        var details = new Dictionary<string, string>(StringComparer.Ordinal) { ["attempts"] = path.Count.ToString(CultureInfo.InvariantCulture) };
        for (int i = 0; i < path.Count; i++)
        {
            details[$"{i}.target"] = string.IsNullOrEmpty(path[i].Provider) ? path[i].Model : $"{path[i].Provider}/{path[i].Model}";
            details[$"{i}.code"] = path[i].ErrorCode;
        }
        var summary = string.Join("; ", path.Select(p => $"{(string.IsNullOrEmpty(p.Provider) ? p.Model : p.Provider + "/" + p.Model)}: {p.ErrorCode}"));
        return new WayangException(new WayangError(ErrorCode.AllFallbacksFailed, $"Every target failed: {summary}.", details: details));
    }

    private static FallbackStep Step(Target target, WayangException error) =>
        new(target.Provider.Name, target.ProviderModel, error.Error.Name, error.Error.Message);

    // Exponential from BackoffMs with full jitter in its upper half; a provider's Retry-After wins when longer.
    private static TimeSpan Backoff(FallbackRule rule, int retry, long retryAfterMs)
    {
        double baseMs = rule.BackoffMs * Math.Pow(2, retry - 1);
        double jittered = (baseMs / 2) + (Random.Shared.NextDouble() * baseMs / 2);
        return TimeSpan.FromMilliseconds(Math.Max(jittered, retryAfterMs));
    }

    private async Task<T> UseAsync<T>(Target target, Func<Task<T>> call)
    {
        using var use = Usage?.BeginUse(target.Provider.Name, target.ProviderModel);
        var result = await call().ConfigureAwait(false);
        use?.FirstOutput();
        return result;
    }

    private CircuitBreaker BreakerFor(Target target) =>
        _breakers.GetOrAdd(target.Key, static (key, s) => new CircuitBreaker(key, s._options.CircuitBreaker, s._time), this);

    // ---- streams ----

    private sealed class OpenedStream(IAsyncEnumerator<ChatDelta> enumerator, CancellationTokenSource step, IModelUse? use) : IAsyncDisposable
    {
        public IAsyncEnumerator<ChatDelta> Enumerator { get; } = enumerator;
        // Linked to the request's deadline; re-armed before every MoveNext with the first-token or between-tokens limit.
        public CancellationTokenSource Step { get; } = step;

        public async ValueTask DisposeAsync()
        {
            try
            {
                await Enumerator.DisposeAsync().ConfigureAwait(false);
            }
            finally
            {
                Step.Dispose();
                // The model is in use until the stream is closed, not only until its first delta.
                use?.Dispose();
            }
        }
    }

    // Opens the provider's stream and waits for its first delta within the first-token timeout: that is one attempt
    // of the fallback loop.
    private async Task<OpenedStream> OpenStreamAsync(Target target, ChatRequest request, TimeSpan firstToken, CancellationToken deadlineToken)
    {
        var step = CancellationTokenSource.CreateLinkedTokenSource(deadlineToken);
        IAsyncEnumerator<ChatDelta>? enumerator = null;
        var use = Usage?.BeginUse(target.Provider.Name, target.ProviderModel);
        try
        {
            step.CancelAfter(firstToken);
            enumerator = target.Provider.StreamChatAsync(request, target.ProviderModel, step.Token).GetAsyncEnumerator(step.Token);
            bool any;
            try
            {
                any = await enumerator.MoveNextAsync().ConfigureAwait(false);
            }
            catch (Exception) when (step.IsCancellationRequested && !deadlineToken.IsCancellationRequested)
            {
                throw InferenceErrors.Timeout(target.Provider.Name, "first_token", firstToken);
            }
            if (!any)
                throw InferenceErrors.Create(ErrorCode.ProviderBadResponse, target.Provider.Name, $"Provider '{target.Provider.Name}' ended the stream without a delta.");
            use?.FirstOutput();
            var opened = new OpenedStream(enumerator, step, use);
            enumerator = null;
            step = null!;
            use = null;
            return opened;
        }
        finally
        {
            if (enumerator is not null)
                await enumerator.DisposeAsync().ConfigureAwait(false);
            step?.Dispose();
            use?.Dispose();
        }
    }

    private async ValueTask<bool> NextAsync(OpenedStream opened, Target target, string which, TimeSpan limit, CancellationTokenSource deadline, TimeSpan total,
        CancellationToken callerToken)
    {
        try
        {
            return await opened.Enumerator.MoveNextAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (!callerToken.IsCancellationRequested)
        {
            var error = deadline.IsCancellationRequested ? InferenceErrors.Timeout(target.Provider.Name, "total", total)
                : opened.Step.IsCancellationRequested ? InferenceErrors.Timeout(target.Provider.Name, which, limit)
                : ex as WayangException ?? InferenceErrors.Create(ErrorCode.StreamBroken, target.Provider.Name, $"Provider '{target.Provider.Name}' broke the stream: {ex.Message}");
            BreakerFor(target).OnFailure(error.Code);
            Metrics.OnAttemptFailed(error.Error.Name);
            LogAttemptFailed(target.Key, error.Error.Name, error.Error.Message);
            throw error;
        }
    }

    [LoggerMessage(EventId = 7001, Level = LogLevel.Information, Message = "Inference target {Target} failed with {Code}: {Message}")]
    private partial void LogAttemptFailed(string target, string code, string message);
}

public sealed record ProviderStatus(string Name, string Kind, ProviderCapabilities Capabilities, ProviderHealth Health, IReadOnlyList<BreakerSnapshot> Breakers);
