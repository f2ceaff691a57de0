using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Json.Schema;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Control.Definitions;

// Schema checks plus the semantic ones a schema cannot say: template placeholders against declared variables,
// unique names, tool parameter schemas that build, redaction patterns that compile. Every violation is reported,
// semantic ones included, so a client fixes its definition in one round trip.
public static class AgentValidator
{
    private static readonly TimeSpan RegexCheckTimeout = TimeSpan.FromSeconds(1);

    // Empty: the JSON is a valid agent definition.
    public static IReadOnlyList<SchemaViolation> Validate(ReadOnlySpan<byte> json)
    {
        if (!DefinitionSchemas.TryParse(json, out var document, out var parseError))
            return [parseError];
        using (document)
            return Validate(document.RootElement);
    }

    public static IReadOnlyList<SchemaViolation> Validate(JsonElement root)
    {
        var violations = new List<SchemaViolation>(DefinitionSchemas.Validate(DefinitionKind.Agent, root));
        if (root.ValueKind == JsonValueKind.Object)
            CheckSemantics(root, violations);
        var unique = violations.Distinct().ToList();
        DefinitionSchemas.Sort(unique);
        return unique;
    }

    // The definition, or AGENT_INVALID listing every violation. Version is reset: the registry assigns it.
    public static AgentDefinition Parse(ReadOnlySpan<byte> json)
    {
        if (!DefinitionSchemas.TryParse(json, out var document, out var parseError))
            throw DefinitionSchemas.ToException(DefinitionKind.Agent, [parseError]);
        using (document)
        {
            var violations = Validate(document.RootElement);
            if (violations.Count > 0)
                throw DefinitionSchemas.ToException(DefinitionKind.Agent, violations);
            AgentDefinition? definition;
            try
            {
                definition = document.RootElement.Deserialize(AgentJsonContext.Default.AgentDefinition);
            }
            catch (JsonException ex)
            {
                // What the schema allows but the model cannot hold (1.0 for an integer field, say).
                throw DefinitionSchemas.ToException(DefinitionKind.Agent, [new SchemaViolation(JsonPointer.FromJsonPath(ex.Path), ex.Message)]);
            }
            if (definition is null)
                throw DefinitionSchemas.ToException(DefinitionKind.Agent, [new SchemaViolation("", "must be an object (got null)")]);
            definition.Version = 0;
            return definition;
        }
    }

    // The placeholders of a template in order of appearance, each once.
    public static IReadOnlyList<string> Placeholders(string template)
    {
        var names = new List<string>();
        foreach (var (name, _) in ScanPlaceholders(template, out _))
        {
            if (!names.Contains(name, StringComparer.Ordinal))
                names.Add(name);
        }
        return names;
    }

    private static void CheckSemantics(JsonElement root, List<SchemaViolation> violations)
    {
        var declared = new HashSet<string>(StringComparer.Ordinal);
        bool hasVariables = false;
        if (root.TryGetProperty("variables", out var variables) && variables.ValueKind == JsonValueKind.Array)
        {
            hasVariables = variables.GetArrayLength() > 0;
            int i = 0;
            foreach (var variable in variables.EnumerateArray())
            {
                if (variable.ValueKind == JsonValueKind.Object && variable.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String
                    && !declared.Add(name.GetString()!))
                    violations.Add(new($"/variables/{i}/name", $"variable '{name.GetString()}' is declared more than once"));
                i++;
            }
        }

        if (root.TryGetProperty("promptTemplate", out var template) && template.ValueKind == JsonValueKind.String)
        {
            var reported = new HashSet<string>(StringComparer.Ordinal);
            var placeholders = ScanPlaceholders(template.GetString()!, out int unclosedAt);
            foreach (var (name, at) in placeholders)
            {
                if (!reported.Add(name))
                    continue;
                if (!IsVariableName(name))
                    violations.Add(new("/promptTemplate", $"placeholder '{{{{{name}}}}}' at character {at} is not a valid variable name"));
                else if (!declared.Contains(name))
                    violations.Add(new("/promptTemplate", $"placeholder '{{{{{name}}}}}' is not declared in variables"));
            }
            if (unclosedAt >= 0)
                violations.Add(new("/promptTemplate", $"'{{{{' at character {unclosedAt} is not closed by '}}}}'"));
        }
        else if (hasVariables)
        {
            violations.Add(new("/variables", "variables are declared but there is no promptTemplate to use them"));
        }

        if (root.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array)
        {
            var names = new HashSet<string>(StringComparer.Ordinal);
            int i = 0;
            foreach (var tool in tools.EnumerateArray())
            {
                if (tool.ValueKind == JsonValueKind.Object)
                {
                    if (tool.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String && !names.Add(name.GetString()!))
                        violations.Add(new($"/tools/{i}/name", $"tool '{name.GetString()}' is declared more than once"));
                    if (tool.TryGetProperty("parameters", out var parameters) && parameters.ValueKind == JsonValueKind.Object && BuildProblem(parameters) is { } problem)
                        violations.Add(new($"/tools/{i}/parameters", $"is not a usable JSON Schema: {problem}"));
                }
                i++;
            }
        }

        if (root.TryGetProperty("redaction", out var redaction) && redaction.ValueKind == JsonValueKind.Object
            && redaction.TryGetProperty("patterns", out var patterns) && patterns.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var pattern in patterns.EnumerateArray())
            {
                if (pattern.ValueKind == JsonValueKind.String && RegexProblem(pattern.GetString()!) is { } problem)
                    violations.Add(new($"/redaction/patterns/{i}", $"is not a valid regular expression: {problem}"));
                i++;
            }
        }
    }

    // "{{ name }}" -> ("name", index of the "{{"). Whitespace inside the braces is ignored.
    private static List<(string Name, int At)> ScanPlaceholders(string template, out int unclosedAt)
    {
        var found = new List<(string, int)>();
        unclosedAt = -1;
        int from = 0;
        while (from < template.Length)
        {
            int open = template.IndexOf("{{", from, StringComparison.Ordinal);
            if (open < 0)
                break;
            int close = template.IndexOf("}}", open + 2, StringComparison.Ordinal);
            if (close < 0)
            {
                unclosedAt = open;
                break;
            }
            found.Add((template[(open + 2)..close].Trim(), open));
            from = close + 2;
        }
        return found;
    }

    private static bool IsVariableName(string name)
    {
        if (name.Length is 0 or > 64 || !(char.IsAsciiLetter(name[0]) || name[0] == '_'))
            return false;
        foreach (char c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c == '_'))
                return false;
        }
        return true;
    }

    private static string? BuildProblem(JsonElement schema)
    {
        try
        {
            // A registry per build: a tool schema's $id must not leak into (or collide in) a shared one. Any exception
            // is the library refusing the schema (it throws several types for that).
            JsonSchema.Build(schema, new BuildOptions { SchemaRegistry = new SchemaRegistry() });
            return null;
        }
        catch (Exception ex)
        {
            return ex.Message;
        }
    }

    private static string? RegexProblem(string pattern)
    {
        try
        {
            _ = new Regex(pattern, RegexOptions.CultureInvariant, RegexCheckTimeout);
            return null;
        }
        catch (ArgumentException ex)
        {
            return ex.Message;
        }
    }
}
