using System.Text.Json;
using System.Text.Json.Serialization;
using Wayang.Fast.Common.Definitions;

namespace Wayang.Fast.Control.Definitions;

// Agent definitions as clients send them: parsed strictly (unknown properties are errors), camelCase, nulls omitted.
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    AllowTrailingCommas = false,
    ReadCommentHandling = JsonCommentHandling.Disallow)]
[JsonSerializable(typeof(AgentDefinition))]
public sealed partial class AgentJsonContext : JsonSerializerContext;

// Stored agent versions. Field names are the persisted format: add, never rename. Not strict, so a record written by
// a newer build with an added field still loads.
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(StoredAgentVersion))]
internal sealed partial class AgentStoreJsonContext : JsonSerializerContext;

internal sealed class StoredAgentVersion
{
    public string TenantId { get; set; } = "";
    public string AgentId { get; set; } = "";
    public int Version { get; set; }
    public DefinitionState State { get; set; }
    // Every state the version has been in, oldest first, with the time it got there (the first is its creation).
    public List<DefinitionStateChange> History { get; set; } = [];
    public AgentDefinition Definition { get; set; } = new();
}

public sealed record DefinitionStateChange(DefinitionState State, long AtMs);
