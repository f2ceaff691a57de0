using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Planning;
using Wayang.Fast.Execution.Runs;
using static Wayang.Fast.Execution.Tests.Workflows;

namespace Wayang.Fast.Execution.Tests;

public class ConditionEvaluatorTests
{
    private const string Input = """{ "amount": 150, "name": "gold-plan", "tags": ["vip", "eu"], "nested": { "items": [ { "sku": "a1", "qty": 2 } ] }, "nothing": null, "flag": true }""";

    private static RunState Run()
    {
        var run = new RunState { RunId = "run1", Status = RunStatus.Running, Input = Json(Input) };
        run.Nodes["check"] = new NodeState { NodeId = "check", Status = NodeStatus.Completed, Attempt = 1, Output = Json("""{ "score": 0.75, "label": "ok", "list": [10, 20, 30] }""") };
        run.Nodes["pending"] = new NodeState { NodeId = "pending", Status = NodeStatus.Executing, Attempt = 1, Output = Json("""{ "score": 1 }""") };
        run.Nodes["failed"] = new NodeState { NodeId = "failed", Status = NodeStatus.Failed, Attempt = 1, Output = Json("""{ "score": 1 }""") };
        return run;
    }

    private static bool Eval(string path, ConditionOperator op, string? valueJson = null) =>
        ConditionEvaluator.Evaluate(new Condition { Path = path, Op = op, Value = valueJson is null ? null : Json(valueJson) }, Run());

    [Theory]
    [InlineData("$input.amount", "150", true)]
    [InlineData("$input.amount", "150.0", true)]
    [InlineData("$input.amount", "151", false)]
    [InlineData("$input.amount", "\"150\"", false)]
    [InlineData("$input.name", "\"gold-plan\"", true)]
    [InlineData("$input.name", "\"Gold-plan\"", false)]
    [InlineData("$input.flag", "true", true)]
    [InlineData("$input.nothing", "null", true)]
    [InlineData("$input.tags", "[\"vip\", \"eu\"]", true)]
    [InlineData("$input.nested.items.0", "{ \"qty\": 2, \"sku\": \"a1\" }", true)]
    public void Eq_compares_json_values_deeply(string path, string value, bool expected)
    {
        Assert.Equal(expected, Eval(path, ConditionOperator.Equal, value));
        Assert.Equal(!expected, Eval(path, ConditionOperator.NotEqual, value));
    }

    [Theory]
    [InlineData(ConditionOperator.GreaterThan, "100", true)]
    [InlineData(ConditionOperator.GreaterThan, "150", false)]
    [InlineData(ConditionOperator.GreaterOrEqual, "150", true)]
    [InlineData(ConditionOperator.GreaterOrEqual, "150.5", false)]
    [InlineData(ConditionOperator.LessThan, "1e3", true)]
    [InlineData(ConditionOperator.LessThan, "150", false)]
    [InlineData(ConditionOperator.LessOrEqual, "150", true)]
    [InlineData(ConditionOperator.LessOrEqual, "-1", false)]
    public void Ordering_operators_compare_numbers_numerically(ConditionOperator op, string value, bool expected) =>
        Assert.Equal(expected, Eval("$input.amount", op, value));

    [Theory]
    [InlineData(ConditionOperator.GreaterThan, "\"gold\"", true)]
    [InlineData(ConditionOperator.LessThan, "\"silver\"", true)]
    [InlineData(ConditionOperator.GreaterOrEqual, "\"gold-plan\"", true)]
    [InlineData(ConditionOperator.LessOrEqual, "\"gold-plam\"", false)]
    // Ordinal: upper case sorts before lower case.
    [InlineData(ConditionOperator.GreaterThan, "\"Zeta\"", true)]
    public void Ordering_operators_compare_strings_ordinally(ConditionOperator op, string value, bool expected) =>
        Assert.Equal(expected, Eval("$input.name", op, value));

    [Theory]
    [InlineData("$input.amount", "\"100\"")]
    [InlineData("$input.name", "5")]
    [InlineData("$input.flag", "false")]
    [InlineData("$input.tags", "[1]")]
    [InlineData("$input.nothing", "0")]
    public void Mixed_or_unordered_kinds_are_never_ordered(string path, string value)
    {
        foreach (var op in new[] { ConditionOperator.GreaterThan, ConditionOperator.GreaterOrEqual, ConditionOperator.LessThan, ConditionOperator.LessOrEqual })
            Assert.False(Eval(path, op, value), $"{path} {op} {value}");
    }

    [Fact]
    public void Contains_matches_substrings_and_array_elements()
    {
        Assert.True(Eval("$input.name", ConditionOperator.Contains, "\"old-p\""));
        Assert.False(Eval("$input.name", ConditionOperator.Contains, "\"OLD\""));
        Assert.False(Eval("$input.name", ConditionOperator.Contains, "5"));
        Assert.True(Eval("$input.tags", ConditionOperator.Contains, "\"eu\""));
        Assert.False(Eval("$input.tags", ConditionOperator.Contains, "\"e\""));
        Assert.True(Eval("check.list", ConditionOperator.Contains, "20"));
        Assert.False(Eval("$input.amount", ConditionOperator.Contains, "1"));
    }

    [Fact]
    public void In_matches_any_element_of_the_array()
    {
        Assert.True(Eval("$input.amount", ConditionOperator.In, "[1, 150, 3]"));
        Assert.False(Eval("$input.amount", ConditionOperator.In, "[1, \"150\"]"));
        Assert.True(Eval("check.label", ConditionOperator.In, "[\"ok\", \"warn\"]"));
        Assert.False(Eval("check.label", ConditionOperator.In, "[]"));
        Assert.False(Eval("check.label", ConditionOperator.In, "\"ok\""));
    }

    [Fact]
    public void Exists_and_not_exists()
    {
        Assert.True(Eval("$input.amount", ConditionOperator.Exists));
        Assert.True(Eval("$input.nothing", ConditionOperator.Exists));
        Assert.False(Eval("$input.missing", ConditionOperator.Exists));
        Assert.True(Eval("$input.missing", ConditionOperator.NotExists));
        Assert.False(Eval("check.score", ConditionOperator.NotExists));
        Assert.True(Eval("check.missing.deeper", ConditionOperator.NotExists));
    }

    [Theory]
    [InlineData("$input.missing")]
    [InlineData("$input.amount.deeper")]
    [InlineData("$input.tags.5")]
    [InlineData("$input.tags.-1")]
    [InlineData("$input.tags.x")]
    [InlineData("ghost.score")]
    [InlineData("pending.score")]
    [InlineData("failed.score")]
    [InlineData("")]
    public void Missing_paths_make_every_operator_false_except_not_exists(string path)
    {
        foreach (var op in Enum.GetValues<ConditionOperator>())
        {
            var value = op == ConditionOperator.In ? "[1]" : "1";
            Assert.Equal(op == ConditionOperator.NotExists, Eval(path, op, value));
        }
    }

    [Fact]
    public void Array_indexes_and_nested_paths_resolve()
    {
        Assert.True(Eval("$input.tags.0", ConditionOperator.Equal, "\"vip\""));
        Assert.True(Eval("$input.tags.1", ConditionOperator.Equal, "\"eu\""));
        Assert.True(Eval("$input.nested.items.0.sku", ConditionOperator.Equal, "\"a1\""));
        Assert.True(Eval("$input.nested.items.0.qty", ConditionOperator.GreaterThan, "1"));
        Assert.True(Eval("check.list.2", ConditionOperator.Equal, "30"));
    }

    [Fact]
    public void Input_root_and_node_root_resolve_whole_documents()
    {
        Assert.True(Eval("$input", ConditionOperator.Exists));
        Assert.True(Eval("check", ConditionOperator.Exists));
        Assert.True(Eval("check.score", ConditionOperator.LessThan, "1"));
        Assert.False(ConditionEvaluator.Evaluate(new Condition { Path = "$input", Op = ConditionOperator.Exists }, new RunState()));
    }

    [Fact]
    public void Unspecified_operator_and_missing_value_are_false()
    {
        Assert.False(Eval("$input.amount", ConditionOperator.Unspecified, "150"));
        Assert.False(Eval("$input.amount", ConditionOperator.Equal));
        Assert.False(Eval("$input.amount", ConditionOperator.NotEqual));
    }
}
