using System.Globalization;
using System.Text.Json;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Runs;

namespace Wayang.Fast.Execution.Planning;

// Evaluates structured conditions (path, operator, value) against a run's input and completed outputs.
// No expression language: nothing from a definition is ever compiled or executed.
public static class ConditionEvaluator
{
    public const string InputRoot = "$input";

    public static bool Evaluate(Condition condition, RunState run)
    {
        var found = TryResolve(condition.Path, run, out var actual);
        switch (condition.Op)
        {
            case ConditionOperator.Exists:
                return found;
            case ConditionOperator.NotExists:
                return !found;
        }
        if (!found || condition.Value is not { } expected)
            return false;
        return condition.Op switch
        {
            ConditionOperator.Equal => JsonElement.DeepEquals(actual, expected),
            ConditionOperator.NotEqual => !JsonElement.DeepEquals(actual, expected),
            ConditionOperator.GreaterThan => Compare(actual, expected) is > 0,
            ConditionOperator.GreaterOrEqual => Compare(actual, expected) is >= 0,
            ConditionOperator.LessThan => Compare(actual, expected) is < 0,
            ConditionOperator.LessOrEqual => Compare(actual, expected) is <= 0,
            ConditionOperator.Contains => Contains(actual, expected),
            ConditionOperator.In => expected.ValueKind == JsonValueKind.Array && expected.EnumerateArray().Any(e => JsonElement.DeepEquals(actual, e)),
            _ => false,
        };
    }

    // "$input.a.b" or "<nodeId>.a.0.b". A node's output resolves only once the node has COMPLETED.
    public static bool TryResolve(string path, RunState run, out JsonElement value)
    {
        value = default;
        if (string.IsNullOrEmpty(path))
            return false;
        var segments = path.Split('.');
        JsonElement current;
        if (segments[0] == InputRoot)
        {
            if (run.Input is not { } input)
                return false;
            current = input;
        }
        else
        {
            if (!run.Nodes.TryGetValue(segments[0], out var node) || node.Status != NodeStatus.Completed || node.Output is not { } output)
                return false;
            current = output;
        }
        for (int i = 1; i < segments.Length; i++)
        {
            var segment = segments[i];
            if (current.ValueKind == JsonValueKind.Object)
            {
                if (!current.TryGetProperty(segment, out current))
                    return false;
            }
            else if (current.ValueKind == JsonValueKind.Array
                && int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out int index)
                && index < current.GetArrayLength())
            {
                current = current[index];
            }
            else
            {
                return false;
            }
        }
        value = current;
        return true;
    }

    // Numbers numerically, strings ordinally; anything else (or mixed kinds) is not ordered.
    private static int? Compare(JsonElement a, JsonElement b)
    {
        if (a.ValueKind == JsonValueKind.Number && b.ValueKind == JsonValueKind.Number)
            return a.GetDouble().CompareTo(b.GetDouble());
        if (a.ValueKind == JsonValueKind.String && b.ValueKind == JsonValueKind.String)
            return Math.Sign(string.CompareOrdinal(a.GetString(), b.GetString()));
        return null;
    }

    private static bool Contains(JsonElement actual, JsonElement expected) => actual.ValueKind switch
    {
        JsonValueKind.String => expected.ValueKind == JsonValueKind.String && actual.GetString()!.Contains(expected.GetString()!, StringComparison.Ordinal),
        JsonValueKind.Array => actual.EnumerateArray().Any(e => JsonElement.DeepEquals(e, expected)),
        _ => false,
    };
}
