using System.Globalization;
using System.Text.Json;
using Wayang.Fast.Common.Definitions;

namespace Wayang.Fast.Control.Plugins;

// Whether a new configSchema still accepts every configuration the old one accepted, judged keyword by keyword (a
// sufficient check, not a proof: two changes that cancel out, such as minimum 1 -> exclusiveMinimum 0 for an integer,
// are still reported). Paths are JSON pointers into the new schema (into the old one for what the new one lacks).
//
// Analysed: type, enum/const, required (newly required without a "default"), properties (recursively), additionalProperties,
// items (recursively), and the bounds minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf, minLength,
// maxLength, pattern, minItems, maxItems, uniqueItems, minProperties, maxProperties.
// Ignored (annotations, never change what validates): title, description, default, examples, format (annotation-only
// in 2020-12 as evaluated here), $schema, $id, $comment, $anchor, readOnly, writeOnly, deprecated, content*.
// Not analysed: every other keyword ($ref and $defs, allOf/anyOf/oneOf/not, if/then/else, patternProperties,
// propertyNames, dependentRequired, dependentSchemas, prefixItems, contains, unevaluated*, and unknown ones): a change to
// one of them, added, removed or edited, is SCHEMA_UNANALYZABLE; left unchanged it is accepted as is.
// A property that is new in the new schema is not compared with what the old additionalProperties allowed for it:
// adding an optional property is the ordinary way a schema grows; stored configurations are validated separately.
public static class SchemaCompatibility
{
    private static readonly HashSet<string> Analysed = new(StringComparer.Ordinal)
    {
        "type", "enum", "const", "required", "properties", "additionalProperties", "items",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern",
        "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties",
    };

    private static readonly HashSet<string> Annotations = new(StringComparer.Ordinal)
    {
        "title", "description", "default", "examples", "format", "$schema", "$id", "$comment", "$anchor",
        "readOnly", "writeOnly", "deprecated", "contentEncoding", "contentMediaType", "contentSchema",
    };

    // Lower bounds: the new schema may lower them, not raise or add them. Upper bounds the other way round.
    private static readonly string[] LowerBounds = ["minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"];
    private static readonly string[] UpperBounds = ["maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"];

    public static IReadOnlyList<PluginProblem> Check(JsonElement oldSchema, JsonElement newSchema)
    {
        var problems = new List<PluginProblem>();
        Compare(oldSchema, newSchema, "", problems);
        return problems;
    }

    private static void Compare(JsonElement old, JsonElement updated, string path, List<PluginProblem> problems)
    {
        if (JsonElement.DeepEquals(old, updated) || old.ValueKind == JsonValueKind.False || updated.ValueKind == JsonValueKind.True)
            return;
        if (updated.ValueKind == JsonValueKind.False)
        {
            problems.Add(new(PluginProblemCodes.ConstraintTightened, path, "the schema now accepts nothing"));
            return;
        }
        // "true" accepts what "{}" accepts; anything else that is not an object was refused when the manifest was read.
        if (old.ValueKind != JsonValueKind.Object)
            old = EmptySchema;
        if (updated.ValueKind != JsonValueKind.Object)
            return;

        CompareUnanalysed(old, updated, path, problems);
        CompareType(old, updated, path, problems);
        CompareValues(old, updated, path, problems);
        CompareBounds(old, updated, path, problems);
        CompareRequired(old, updated, path, problems);
        CompareProperties(old, updated, path, problems);
        if (updated.TryGetProperty("items", out var newItems))
            Compare(old.TryGetProperty("items", out var oldItems) ? oldItems : EmptySchema, newItems, JsonPointer.Append(path, "items"), problems);
    }

    private static void CompareUnanalysed(JsonElement old, JsonElement updated, string path, List<PluginProblem> problems)
    {
        var keywords = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var property in old.EnumerateObject())
            keywords.Add(property.Name);
        foreach (var property in updated.EnumerateObject())
            keywords.Add(property.Name);
        foreach (var keyword in keywords)
        {
            if (Analysed.Contains(keyword) || Annotations.Contains(keyword))
                continue;
            bool inOld = old.TryGetProperty(keyword, out var oldValue), inNew = updated.TryGetProperty(keyword, out var newValue);
            if (inOld != inNew || !JsonElement.DeepEquals(oldValue, newValue))
                problems.Add(new(PluginProblemCodes.SchemaUnanalyzable, JsonPointer.Append(path, keyword), $"'{keyword}' changed and is not analysed for compatibility"));
        }
    }

    private static void CompareType(JsonElement old, JsonElement updated, string path, List<PluginProblem> problems)
    {
        var newTypes = Types(updated);
        if (newTypes is null)
            return;
        var oldTypes = Types(old);
        if (oldTypes is null)
        {
            problems.Add(new(PluginProblemCodes.TypeNarrowed, JsonPointer.Append(path, "type"), $"any type was accepted, now only {string.Join(", ", newTypes)}"));
            return;
        }
        // Every integer is a number: integer -> number widens, number -> integer narrows.
        var lost = oldTypes.Where(t => !newTypes.Contains(t) && !(t == "integer" && newTypes.Contains("number"))).ToList();
        if (lost.Count > 0)
            problems.Add(new(PluginProblemCodes.TypeNarrowed, JsonPointer.Append(path, "type"), $"no longer accepts {string.Join(", ", lost)}"));
    }

    private static void CompareValues(JsonElement old, JsonElement updated, string path, List<PluginProblem> problems)
    {
        var keyword = updated.TryGetProperty("const", out _) ? "const" : updated.TryGetProperty("enum", out _) ? "enum" : null;
        if (keyword is null)
            return;
        var allowed = Values(updated)!;
        var before = Values(old);
        if (before is null)
        {
            problems.Add(new(PluginProblemCodes.EnumNarrowed, JsonPointer.Append(path, keyword), "any value was accepted, now only listed values"));
            return;
        }
        var lost = before.Where(v => !allowed.Any(a => JsonElement.DeepEquals(a, v))).Select(v => v.GetRawText()).ToList();
        if (lost.Count > 0)
            problems.Add(new(PluginProblemCodes.EnumNarrowed, JsonPointer.Append(path, keyword), $"no longer accepts {string.Join(", ", lost)}"));
    }

    private static void CompareBounds(JsonElement old, JsonElement updated, string path, List<PluginProblem> problems)
    {
        foreach (var keyword in LowerBounds)
            CompareBound(old, updated, keyword, path, problems, tighter: (o, n) => n > o);
        foreach (var keyword in UpperBounds)
            CompareBound(old, updated, keyword, path, problems, tighter: (o, n) => n < o);
        // A new multipleOf must divide the old one (every multiple of 10 is a multiple of 5).
        CompareBound(old, updated, "multipleOf", path, problems, tighter: (o, n) => n == 0 || o % n != 0);

        if (updated.TryGetProperty("pattern", out var pattern) && (!old.TryGetProperty("pattern", out var oldPattern) || !JsonElement.DeepEquals(pattern, oldPattern)))
            problems.Add(new(PluginProblemCodes.ConstraintTightened, JsonPointer.Append(path, "pattern"), "the pattern was added or changed (regular expressions are not compared)"));
        if (updated.TryGetProperty("uniqueItems", out var unique) && unique.ValueKind == JsonValueKind.True
            && !(old.TryGetProperty("uniqueItems", out var oldUnique) && oldUnique.ValueKind == JsonValueKind.True))
            problems.Add(new(PluginProblemCodes.ConstraintTightened, JsonPointer.Append(path, "uniqueItems"), "items must now be unique"));
    }

    private static void CompareBound(JsonElement old, JsonElement updated, string keyword, string path, List<PluginProblem> problems, Func<decimal, decimal, bool> tighter)
    {
        if (!updated.TryGetProperty(keyword, out var bound) || !bound.TryGetDecimal(out decimal newValue))
            return;
        if (!old.TryGetProperty(keyword, out var oldBound) || !oldBound.TryGetDecimal(out decimal oldValue))
            problems.Add(new(PluginProblemCodes.ConstraintTightened, JsonPointer.Append(path, keyword), $"'{keyword}' {Show(newValue)} was added"));
        else if (tighter(oldValue, newValue))
            problems.Add(new(PluginProblemCodes.ConstraintTightened, JsonPointer.Append(path, keyword), $"'{keyword}' went from {Show(oldValue)} to {Show(newValue)}"));
    }

    private static void CompareRequired(JsonElement old, JsonElement updated, string path, List<PluginProblem> problems)
    {
        if (!updated.TryGetProperty("required", out var required) || required.ValueKind != JsonValueKind.Array)
            return;
        var before = old.TryGetProperty("required", out var oldRequired) && oldRequired.ValueKind == JsonValueKind.Array
            ? oldRequired.EnumerateArray().Select(r => r.GetString()).ToHashSet(StringComparer.Ordinal)
            : [];
        int index = 0;
        foreach (var name in required.EnumerateArray())
        {
            var n = name.GetString() ?? "";
            // A default fills the property in for configurations that lack it (the server applies it).
            if (!before.Contains(n) && !HasDefault(updated, n))
                problems.Add(new(PluginProblemCodes.RequiredAdded, JsonPointer.Append(JsonPointer.Append(path, "required"), index.ToString(CultureInfo.InvariantCulture)), $"'{n}' is now required and has no default"));
            index++;
        }
    }

    private static void CompareProperties(JsonElement old, JsonElement updated, string path, List<PluginProblem> problems)
    {
        var additional = updated.TryGetProperty("additionalProperties", out var a) ? a : default;
        var oldAdditional = old.TryGetProperty("additionalProperties", out var oa) ? oa : default;
        bool newClosed = additional.ValueKind == JsonValueKind.False;
        if (newClosed && oldAdditional.ValueKind != JsonValueKind.False)
            problems.Add(new(PluginProblemCodes.AdditionalPropertiesClosed, JsonPointer.Append(path, "additionalProperties"), "properties not listed were accepted and are now refused"));
        else if (additional.ValueKind == JsonValueKind.Object && oldAdditional.ValueKind != JsonValueKind.False)
            Compare(oldAdditional.ValueKind == JsonValueKind.Undefined ? EmptySchema : oldAdditional, additional, JsonPointer.Append(path, "additionalProperties"), problems);

        if (!old.TryGetProperty("properties", out var oldProperties) || oldProperties.ValueKind != JsonValueKind.Object)
            return;
        var newProperties = updated.TryGetProperty("properties", out var p) && p.ValueKind == JsonValueKind.Object ? p : default;
        foreach (var property in oldProperties.EnumerateObject())
        {
            var propertyPath = JsonPointer.Append(JsonPointer.Append(path, "properties"), property.Name);
            if (newProperties.ValueKind == JsonValueKind.Object && newProperties.TryGetProperty(property.Name, out var newProperty))
                Compare(property.Value, newProperty, propertyPath, problems);
            else if (newClosed)
                problems.Add(new(PluginProblemCodes.PropertyRemoved, propertyPath, $"'{property.Name}' was removed and additional properties are refused"));
            else if (additional.ValueKind == JsonValueKind.Object)
                Compare(property.Value, additional, JsonPointer.Append(path, "additionalProperties"), problems);
        }
    }

    private static bool HasDefault(JsonElement schema, string name) =>
        schema.TryGetProperty("properties", out var properties) && properties.ValueKind == JsonValueKind.Object
        && properties.TryGetProperty(name, out var property) && property.ValueKind == JsonValueKind.Object && property.TryGetProperty("default", out _);

    private static HashSet<string>? Types(JsonElement schema)
    {
        if (!schema.TryGetProperty("type", out var type))
            return null;
        if (type.ValueKind == JsonValueKind.String)
            return [type.GetString()!];
        return type.ValueKind == JsonValueKind.Array ? type.EnumerateArray().Where(t => t.ValueKind == JsonValueKind.String).Select(t => t.GetString()!).ToHashSet(StringComparer.Ordinal) : null;
    }

    // const as a one-value enum; null: any value.
    private static List<JsonElement>? Values(JsonElement schema)
    {
        if (schema.TryGetProperty("const", out var constant))
            return [constant];
        return schema.TryGetProperty("enum", out var values) && values.ValueKind == JsonValueKind.Array ? [.. values.EnumerateArray()] : null;
    }

    private static string Show(decimal value) => value.ToString(CultureInfo.InvariantCulture);

    private static readonly JsonElement EmptySchema = JsonDocument.Parse("{}").RootElement;
}
