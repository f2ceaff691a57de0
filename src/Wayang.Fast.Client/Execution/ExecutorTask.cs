using System.Text.Json;

namespace Wayang.Fast.Client.Execution;

// One task pushed to an executor. Delivery is at-least-once: the same attempt can arrive again (after a lease expiry,
// this executor's disconnect or a server restart), on this executor or another. TaskId ("<runId>:<nodeId>:<attempt>")
// is identical on every redelivery of an attempt, so handlers that have side effects outside the run (a payment, an
// e-mail, a row written elsewhere) must make them idempotent by TaskId. The run itself accepts one result per attempt.
public sealed class ExecutorTask
{
    internal ExecutorTask(string token, string taskId, string tenantId, string runId, string workflowId, string nodeId, int attempt,
        string executorType, JsonElement? input, JsonElement? config, JsonElement? upstream, DateTimeOffset leaseExpiresAt, DateTimeOffset? deadline)
    {
        Token = token;
        TaskId = taskId;
        TenantId = tenantId;
        RunId = runId;
        WorkflowId = workflowId;
        NodeId = nodeId;
        Attempt = attempt;
        ExecutorType = executorType;
        Input = input;
        Config = config;
        Upstream = upstream;
        LeaseExpiresAt = leaseExpiresAt;
        Deadline = deadline;
    }

    // The signed token the result must carry; the host sends it for you.
    public string Token { get; }
    public string TaskId { get; }
    public string TenantId { get; }
    public string RunId { get; }
    public string WorkflowId { get; }
    public string NodeId { get; }
    // 1 for the first attempt; a retry or a dead-letter replay increments it, a redelivery does not.
    public int Attempt { get; }
    public string ExecutorType { get; }
    // The run's input.
    public JsonElement? Input { get; }
    // The node's config from the workflow definition.
    public JsonElement? Config { get; }
    // { "<predecessorId>": output, ... } of the completed predecessors.
    public JsonElement? Upstream { get; }
    // Heartbeats (sent by the host) renew the lease; the handler need not care.
    public DateTimeOffset LeaseExpiresAt { get; }
    // The attempt times out at this instant (server clock); the handler's token is cancelled then.
    public DateTimeOffset? Deadline { get; }

    public T? GetInput<T>(JsonSerializerOptions? options = null) => Input is { } e ? e.Deserialize<T>(options ?? JsonSerializerOptions.Web) : default;

    public T? GetConfig<T>(JsonSerializerOptions? options = null) => Config is { } e ? e.Deserialize<T>(options ?? JsonSerializerOptions.Web) : default;

    public override string ToString() => $"{TaskId} ({ExecutorType})";
}

// What a handler returns. Failure codes are the executor's own strings, matched against the node's
// retry.nonRetryableErrors; retryable = false stops retries regardless of the policy.
public sealed class TaskOutcome
{
    private TaskOutcome(bool succeeded, byte[] outputJson, string? errorCode, string? errorMessage, bool retryable)
    {
        Succeeded = succeeded;
        OutputJson = outputJson;
        ErrorCode = errorCode;
        ErrorMessage = errorMessage;
        Retryable = retryable;
    }

    public bool Succeeded { get; }
    // UTF-8 JSON; empty: no output.
    internal byte[] OutputJson { get; }
    public string? ErrorCode { get; }
    public string? ErrorMessage { get; }
    public bool Retryable { get; }

    public JsonElement? Output => OutputJson.Length == 0 ? null : JsonSerializer.Deserialize<JsonElement>(OutputJson);

    public static TaskOutcome Success() => new(true, [], null, null, true);

    public static TaskOutcome Success(JsonElement? output) =>
        new(true, output is { ValueKind: not JsonValueKind.Undefined } e ? JsonSerializer.SerializeToUtf8Bytes(e) : [], null, null, true);

    // Serialized with System.Text.Json (web defaults: camelCase) unless options are given.
    public static TaskOutcome Success<T>(T output, JsonSerializerOptions? options = null) =>
        new(true, output is null ? [] : JsonSerializer.SerializeToUtf8Bytes(output, options ?? JsonSerializerOptions.Web), null, null, true);

    // The output as a JSON document text; it is checked here so a malformed document fails in the handler, not on the server.
    public static TaskOutcome SuccessJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        using (JsonDocument.Parse(json))
        {
        }
        return new(true, System.Text.Encoding.UTF8.GetBytes(json), null, null, true);
    }

    public static TaskOutcome Failure(string errorCode, string? errorMessage = null, bool retryable = true)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(errorCode);
        return new(false, [], errorCode, errorMessage ?? "", retryable);
    }
}
