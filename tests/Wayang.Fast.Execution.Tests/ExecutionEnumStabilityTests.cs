using System.Globalization;
using System.Text.Json;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Engine;

namespace Wayang.Fast.Execution.Tests;

// Persisted enums are append-only. Written out by hand on purpose: renumbering, renaming or removing a member fails
// here, and adding one fails until it is appended to the list, which is the review point. Definition enums are
// stored and sent as JSON names, so those names are frozen too.
public class ExecutionEnumStabilityTests
{
    private static void AssertExactly<TEnum>(params (string Name, long Value)[] expected) where TEnum : struct, Enum
    {
        var actual = Enum.GetValues<TEnum>().Select(v => (Name: v.ToString(), Value: Convert.ToInt64(v, CultureInfo.InvariantCulture))).ToArray();
        Assert.Equal(expected.OrderBy(e => e.Value), actual.OrderBy(e => e.Value));
    }

    private static void AssertJsonNames<TEnum>(params (TEnum Value, string Json)[] expected) where TEnum : struct, Enum
    {
        Assert.Equal(Enum.GetValues<TEnum>().Length, expected.Length);
        var typeInfo = (System.Text.Json.Serialization.Metadata.JsonTypeInfo<TEnum>)ExecutionJsonContext.Default.GetTypeInfo(typeof(TEnum))!;
        foreach (var (value, json) in expected)
        {
            Assert.Equal($"\"{json}\"", JsonSerializer.Serialize(value, typeInfo));
            Assert.Equal(value, JsonSerializer.Deserialize($"\"{json}\"", typeInfo));
        }
    }

    [Fact]
    public void NodeType_values_are_frozen() => AssertExactly<NodeType>(
        ("Unspecified", 0), ("Task", 1), ("Decision", 2), ("Parallel", 3), ("Join", 4), ("Wait", 5), ("Agent", 6));

    [Fact]
    public void TransitionOn_values_are_frozen() => AssertExactly<TransitionOn>(
        ("Unspecified", 0), ("Success", 1), ("Failure", 2), ("Condition", 3), ("Default", 4));

    [Fact]
    public void ConditionOperator_values_are_frozen() => AssertExactly<ConditionOperator>(
        ("Unspecified", 0), ("Equal", 1), ("NotEqual", 2), ("GreaterThan", 3), ("GreaterOrEqual", 4), ("LessThan", 5),
        ("LessOrEqual", 6), ("Exists", 7), ("NotExists", 8), ("Contains", 9), ("In", 10));

    [Fact]
    public void RunStatus_values_are_frozen()
    {
        Assert.Equal(typeof(byte), Enum.GetUnderlyingType(typeof(RunStatus)));
        AssertExactly<RunStatus>(
            ("Unspecified", 0), ("Created", 1), ("Pending", 2), ("Running", 3), ("Suspended", 4), ("Completed", 5),
            ("Failed", 6), ("Cancelled", 7));
    }

    [Fact]
    public void NodeStatus_values_are_frozen()
    {
        Assert.Equal(typeof(byte), Enum.GetUnderlyingType(typeof(NodeStatus)));
        AssertExactly<NodeStatus>(
            ("Unspecified", 0), ("Pending", 1), ("Queued", 2), ("Executing", 3), ("Completed", 4), ("Failed", 5),
            ("Retrying", 6), ("Skipped", 7), ("Cancelled", 8));
    }

    [Fact]
    public void RunEventType_values_are_frozen()
    {
        Assert.Equal(typeof(byte), Enum.GetUnderlyingType(typeof(RunEventType)));
        AssertExactly<RunEventType>(
            ("Unspecified", 0), ("RunCreated", 1), ("RunStarted", 2), ("NodeQueued", 3), ("NodeDispatched", 4),
            ("NodeCompleted", 5), ("NodeFailed", 6), ("NodeRetryScheduled", 7), ("NodeSkipped", 8), ("NodeCancelled", 9),
            ("RunSuspended", 10), ("RunResumed", 11), ("RunSignalled", 12), ("RunCompleted", 13), ("RunFailed", 14),
            ("RunCancelled", 15), ("NodeDeadLettered", 16), ("NodeReplayed", 17), ("NodeLeaseExpired", 18),
            ("NodeTimedOut", 19));
    }

    [Fact]
    public void SlaPriority_values_are_frozen()
    {
        Assert.Equal(typeof(byte), Enum.GetUnderlyingType(typeof(SlaPriority)));
        AssertExactly<SlaPriority>(("Unspecified", 0), ("Low", 1), ("Normal", 2), ("High", 3), ("Critical", 4));
    }

    [Fact]
    public void DeadlineMissPolicy_values_are_frozen()
    {
        Assert.Equal(typeof(byte), Enum.GetUnderlyingType(typeof(DeadlineMissPolicy)));
        AssertExactly<DeadlineMissPolicy>(("Unspecified", 0), ("RunAnyway", 1), ("Fail", 2));
    }

    [Fact]
    public void SlaPriority_json_names_are_frozen() => AssertJsonNames(
        (SlaPriority.Unspecified, "UNSPECIFIED"), (SlaPriority.Low, "LOW"), (SlaPriority.Normal, "NORMAL"), (SlaPriority.High, "HIGH"),
        (SlaPriority.Critical, "CRITICAL"));

    [Fact]
    public void DeadlineMissPolicy_json_names_are_frozen() => AssertJsonNames(
        (DeadlineMissPolicy.Unspecified, "UNSPECIFIED"), (DeadlineMissPolicy.RunAnyway, "RUN_ANYWAY"), (DeadlineMissPolicy.Fail, "FAIL"));

    [Fact]
    public void NodeType_json_names_are_frozen() => AssertJsonNames(
        (NodeType.Unspecified, "UNSPECIFIED"), (NodeType.Task, "TASK"), (NodeType.Decision, "DECISION"),
        (NodeType.Parallel, "PARALLEL"), (NodeType.Join, "JOIN"), (NodeType.Wait, "WAIT"), (NodeType.Agent, "AGENT"));

    [Fact]
    public void TransitionOn_json_names_are_frozen() => AssertJsonNames(
        (TransitionOn.Unspecified, "UNSPECIFIED"), (TransitionOn.Success, "SUCCESS"), (TransitionOn.Failure, "FAILURE"),
        (TransitionOn.Condition, "CONDITION"), (TransitionOn.Default, "DEFAULT"));

    [Fact]
    public void ConditionOperator_json_names_are_frozen() => AssertJsonNames(
        (ConditionOperator.Unspecified, "UNSPECIFIED"), (ConditionOperator.Equal, "EQ"), (ConditionOperator.NotEqual, "NE"),
        (ConditionOperator.GreaterThan, "GT"), (ConditionOperator.GreaterOrEqual, "GTE"), (ConditionOperator.LessThan, "LT"),
        (ConditionOperator.LessOrEqual, "LTE"), (ConditionOperator.Exists, "EXISTS"), (ConditionOperator.NotExists, "NOT_EXISTS"),
        (ConditionOperator.Contains, "CONTAINS"), (ConditionOperator.In, "IN"));

    [Fact]
    public void A_stored_definition_reads_its_enums_by_name()
    {
        var def = Workflows.Parse(Workflows.DecisionJson);
        var json = JsonSerializer.Serialize(def, ExecutionJsonContext.Default.WorkflowDefinition);
        Assert.Contains("\"type\":\"DECISION\"", json, StringComparison.Ordinal);
        Assert.Contains("\"on\":\"CONDITION\"", json, StringComparison.Ordinal);
        Assert.Contains("\"op\":\"GT\"", json, StringComparison.Ordinal);
        Assert.Contains("\"on\":\"DEFAULT\"", json, StringComparison.Ordinal);
    }
}
