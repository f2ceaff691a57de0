using System.Text.Json.Serialization;
using Wayang.Fast.Execution.DeadLetters;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Runs;

namespace Wayang.Fast.Execution.Engine;

// Every persisted execution record and the definition JSON that clients send: source-generated, camelCase,
// nulls omitted. Definitions are parsed strictly (unknown properties are errors).
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    AllowTrailingCommas = false,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Disallow)]
[JsonSerializable(typeof(WorkflowDefinition))]
[JsonSerializable(typeof(RunState))]
[JsonSerializable(typeof(DeadLetter))]
[JsonSerializable(typeof(IdempotencyRecord))]
[JsonSerializable(typeof(TenantSchedule))]
[JsonSerializable(typeof(WorkflowVersionRecord))]
public sealed partial class ExecutionJsonContext : JsonSerializerContext;

// Persisted per (tenant, idempotency key): which run the key created and a hash of the request that created it.
public sealed class IdempotencyRecord
{
    public string RunId { get; set; } = "";
    public string RequestHash { get; set; } = "";
    public long CreatedAtMs { get; set; }
}
