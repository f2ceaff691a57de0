using System.Text.Json.Serialization;

namespace Wayang.Fast.Common.Definitions;

// The lifecycle of one version of a workflow or agent definition (DEPLOYED comes with the deployments issue).
// Persisted with every stored version and carried on the wire: explicit values, append-only, frozen by a golden test.
// Shared here because the execution plane (workflows) and the control plane (agents) both keep versions in it.
[JsonConverter(typeof(JsonStringEnumConverter<DefinitionState>))]
public enum DefinitionState : byte
{
    [JsonStringEnumMemberName("UNSPECIFIED")] Unspecified = 0,
    // Stored and schema-valid; may still refer to things that do not exist yet.
    [JsonStringEnumMemberName("DRAFT")] Draft = 1,
    // Passed every check, references included, at the time of the transition.
    [JsonStringEnumMemberName("VALIDATED")] Validated = 2,
    // Runnable and immutable.
    [JsonStringEnumMemberName("PUBLISHED")] Published = 3,
    // Kept for history and for the runs that pinned it; not runnable, never changes again.
    [JsonStringEnumMemberName("ARCHIVED")] Archived = 4,
}

// The one transition table of the lifecycle. Publishing a DRAFT passes through VALIDATED (the checks run then).
public static class DefinitionLifecycle
{
    // The upper-case name (the JSON and documentation form) for messages, audit resources and the CLI; an undefined
    // value prints as its number.
    public static string NameOf(DefinitionState state) => state switch
    {
        DefinitionState.Unspecified => "UNSPECIFIED",
        DefinitionState.Draft => "DRAFT",
        DefinitionState.Validated => "VALIDATED",
        DefinitionState.Published => "PUBLISHED",
        DefinitionState.Archived => "ARCHIVED",
        _ => ((byte)state).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    public static bool IsAllowed(DefinitionState from, DefinitionState to) => (from, to) switch
    {
        (DefinitionState.Draft, DefinitionState.Validated) => true,
        (DefinitionState.Draft, DefinitionState.Published) => true,
        (DefinitionState.Validated, DefinitionState.Published) => true,
        (DefinitionState.Draft or DefinitionState.Validated or DefinitionState.Published, DefinitionState.Archived) => true,
        _ => false,
    };
}

// On the wire (DefinitionRequest.Kind) and in audit resources: explicit, append-only.
public enum DefinitionKind : byte
{
    Workflow = 1,
    Agent = 2,
}

public static class DefinitionKinds
{
    // The lower-case name used in audit resources ("workflow:orders@2") and by the CLI; an undefined value prints as
    // its number.
    public static string NameOf(DefinitionKind kind) => kind switch
    {
        DefinitionKind.Workflow => "workflow",
        DefinitionKind.Agent => "agent",
        _ => ((byte)kind).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
