using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Json.Schema;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Control.Definitions;

// The JSON Schemas of workflow and agent definitions (protocol-spec/schemas/, embedded: the spec file is the single
// source) and the one place that turns a schema evaluation into violations a person can read.
//
// JsonSchema.Net's own messages are not used: they are generic ("Value should match one of the values specified by
// the enum"), some failures carry none at all (a failed oneOf), and failures inside if/oneOf branches are reported
// although they are not violations. Reasons are rebuilt here from the failing keyword and the schema's own values, so
// they are deterministic and name what is allowed ("must be one of TASK, DECISION, ...").
public static class DefinitionSchemas
{
    // Lines listed in an exception message, and entries in its "violations" detail: an error frame stays small.
    public const int MaxViolationsInMessage = 20;
    public const int MaxViolationsInDetails = 100;

    private const int MaxShownValueChars = 64;

    private static readonly Lazy<LoadedSchema> WorkflowSchema = new(() => LoadedSchema.Load("workflow-definition.schema.json"));
    private static readonly Lazy<LoadedSchema> AgentSchema = new(() => LoadedSchema.Load("agent-definition.schema.json"));

    private static readonly EvaluationOptions Evaluation = new() { OutputFormat = OutputFormat.List };

    // Same strictness as the definition parsers: no comments, no trailing commas. Duplicate properties are refused by
    // the pre-parse walk (which can name them), not by the document.
    private static readonly JsonReaderOptions ReaderOptions = new() { CommentHandling = JsonCommentHandling.Disallow, AllowTrailingCommas = false };
    private static readonly JsonDocumentOptions DocumentOptions = new() { CommentHandling = JsonCommentHandling.Disallow, AllowTrailingCommas = false };

    // The schema documents as published, for clients and the CLI.
    public static string WorkflowSchemaJson => WorkflowSchema.Value.Text;
    public static string AgentSchemaJson => AgentSchema.Value.Text;

    public static IReadOnlyList<SchemaViolation> ValidateWorkflow(ReadOnlySpan<byte> json) => Validate(DefinitionKind.Workflow, json);

    public static IReadOnlyList<SchemaViolation> ValidateAgent(ReadOnlySpan<byte> json) => Validate(DefinitionKind.Agent, json);

    // Every schema violation, sorted by pointer (array indexes numerically), or for malformed JSON a single violation
    // at the parser's position. Empty: the document matches the schema.
    public static IReadOnlyList<SchemaViolation> Validate(DefinitionKind kind, ReadOnlySpan<byte> json)
    {
        if (!TryParse(json, out var document, out var parseError))
            return [parseError];
        using (document)
            return Validate(kind, document.RootElement);
    }

    public static IReadOnlyList<SchemaViolation> Validate(DefinitionKind kind, JsonElement instance)
    {
        var schema = kind switch
        {
            DefinitionKind.Workflow => WorkflowSchema.Value,
            DefinitionKind.Agent => AgentSchema.Value,
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        return Validate(schema, instance);
    }

    // Any schema: a definition kind's or one supplied at run time (a plugin's configSchema), same wording and order.
    internal static IReadOnlyList<SchemaViolation> Validate(LoadedSchema schema, JsonElement instance)
    {
        var violations = Collect(schema, instance);
        Sort(violations);
        return violations;
    }

    // Throws the kind's exception listing every violation; returns when there is none.
    public static void ThrowIfInvalid(DefinitionKind kind, ReadOnlySpan<byte> json)
    {
        if (!TryParse(json, out var document, out var parseError))
            throw ToException(kind, [parseError]);
        using (document)
        {
            var violations = Validate(kind, document.RootElement);
            if (violations.Count > 0)
                throw ToException(kind, violations, kind == DefinitionKind.Workflow ? NodeIdAt(document.RootElement, violations[0].Pointer) : "");
        }
    }

    // WORKFLOW_INVALID or AGENT_INVALID. The message lists the violations ("<pointer>: <reason>" lines, capped);
    // Details["violations"] holds them as a compact JSON array of {"pointer","reason"}; "pointer" and "reason" name the
    // first. Workflows also keep the keys WorkflowRegistry.ParseDefinition always had: "node" (the first violation's
    // node id, "" when it is not inside a node), "path" (its location as "$.nodes[0].type") and "reason".
    public static WayangException ToException(DefinitionKind kind, IReadOnlyList<SchemaViolation> violations, string node = "")
    {
        var label = kind == DefinitionKind.Workflow ? "workflow" : "agent";
        var code = kind == DefinitionKind.Workflow ? ErrorCode.WorkflowInvalid : ErrorCode.AgentInvalid;
        var details = ViolationDetails(violations);
        if (kind == DefinitionKind.Workflow)
        {
            details["node"] = node;
            details["path"] = ToJsonPath(violations[0].Pointer);
        }
        return new WayangException(new WayangError(code, ViolationMessage($"{label}: the definition is invalid", violations), details: details));
    }

    // "<headline> (<n> violations):" then one "<pointer>: <reason>" line per violation, capped.
    public static string ViolationMessage(string headline, IReadOnlyList<SchemaViolation> violations)
    {
        ArgumentNullException.ThrowIfNull(violations);
        var message = new StringBuilder();
        message.Append(CultureInfo.InvariantCulture, $"{headline} ({violations.Count} violation{(violations.Count == 1 ? "" : "s")}):");
        int listed = Math.Min(violations.Count, MaxViolationsInMessage);
        for (int i = 0; i < listed; i++)
            message.Append('\n').Append(violations[i].ToString());
        if (violations.Count > listed)
            message.Append(CultureInfo.InvariantCulture, $"\n... and {violations.Count - listed} more");
        return message.ToString();
    }

    // The details every "invalid" error carries: "violations" (capped JSON array), "violationCount", and the first
    // violation's "pointer" and "reason".
    public static Dictionary<string, string> ViolationDetails(IReadOnlyList<SchemaViolation> violations)
    {
        ArgumentNullException.ThrowIfNull(violations);
        if (violations.Count == 0)
            throw new ArgumentException("There is no violation to report.", nameof(violations));
        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["violations"] = ViolationsJson(violations),
            ["violationCount"] = violations.Count.ToString(CultureInfo.InvariantCulture),
            ["pointer"] = violations[0].Pointer,
            ["reason"] = violations[0].Reason,
        };
    }

    // Parses with the strict options; a malformed document gives one violation at the position where it went wrong.
    public static bool TryParse(ReadOnlySpan<byte> json, [NotNullWhen(true)] out JsonDocument? document, out SchemaViolation violation)
    {
        document = null;
        if (!CheckSyntax(json, out violation))
            return false;
        try
        {
            document = JsonDocument.Parse(json.ToArray(), DocumentOptions);
            return true;
        }
        catch (JsonException ex)
        {
            // The walk above accepts what the document accepts; kept as a guard, not a path tests can reach.
            violation = new SchemaViolation("", "invalid JSON: " + ex.Message);
            return false;
        }
    }

    public static string ViolationsJson(IReadOnlyList<SchemaViolation> violations) =>
        CompactJson(violations.Take(MaxViolationsInDetails).Select(v => (IReadOnlyList<(string, string)>)[("pointer", v.Pointer), ("reason", v.Reason)]));

    // A compact JSON array of objects whose members are all strings, in the order given: the shape of list details.
    public static string CompactJson(IEnumerable<IReadOnlyList<(string Name, string Value)>> objects)
    {
        ArgumentNullException.ThrowIfNull(objects);
        using var buffer = new MemoryStream();
        // Relaxed escaping: the details are read by people and CLIs, not embedded in HTML, and "'" is in most reasons.
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartArray();
            foreach (var members in objects)
            {
                writer.WriteStartObject();
                foreach (var (name, value) in members)
                    writer.WriteString(name, value);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
        }
        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    // "/nodes/3/retry/maxAttempts" -> "$.nodes[3].retry.maxAttempts" (the path style of System.Text.Json's errors).
    public static string ToJsonPath(string pointer)
    {
        var path = new StringBuilder("$");
        foreach (var segment in PointerSegments(pointer))
        {
            if (segment.Length > 0 && segment.All(char.IsAsciiDigit))
                path.Append('[').Append(segment).Append(']');
            else if (segment.Length > 0 && segment.All(c => char.IsAsciiLetterOrDigit(c) || c == '_' || c == '-'))
                path.Append('.').Append(segment);
            else
                path.Append("['").Append(segment.Replace("'", "\\'", StringComparison.Ordinal)).Append("']");
        }
        return path.ToString();
    }

    // The id of the node a workflow pointer is inside ("/nodes/2/..."), or "".
    public static string NodeIdAt(JsonElement workflow, string pointer)
    {
        var segments = PointerSegments(pointer);
        if (segments.Count < 2 || segments[0] != "nodes" || !int.TryParse(segments[1], NumberStyles.None, CultureInfo.InvariantCulture, out int index))
            return "";
        if (workflow.ValueKind != JsonValueKind.Object || !workflow.TryGetProperty("nodes", out var nodes) || nodes.ValueKind != JsonValueKind.Array || index >= nodes.GetArrayLength())
            return "";
        var node = nodes[index];
        return node.ValueKind == JsonValueKind.Object && node.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString()! : "";
    }

    public static List<string> PointerSegments(string pointer)
    {
        var segments = new List<string>();
        if (string.IsNullOrEmpty(pointer))
            return segments;
        foreach (var raw in pointer[1..].Split('/'))
            segments.Add(raw.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal));
        return segments;
    }

    // Array indexes compare as numbers, so "/nodes/2" comes before "/nodes/10"; then by reason.
    public static void Sort(List<SchemaViolation> violations)
    {
        violations.Sort(static (a, b) =>
        {
            var x = PointerSegments(a.Pointer);
            var y = PointerSegments(b.Pointer);
            for (int i = 0; i < Math.Min(x.Count, y.Count); i++)
            {
                int c = CompareSegments(x[i], y[i]);
                if (c != 0)
                    return c;
            }
            int byLength = x.Count.CompareTo(y.Count);
            return byLength != 0 ? byLength : string.CompareOrdinal(a.Reason, b.Reason);
        });
    }

    private static int CompareSegments(string a, string b)
    {
        bool aNumber = long.TryParse(a, NumberStyles.None, CultureInfo.InvariantCulture, out long x);
        bool bNumber = long.TryParse(b, NumberStyles.None, CultureInfo.InvariantCulture, out long y);
        if (aNumber && bNumber)
            return x.CompareTo(y);
        return string.CompareOrdinal(a, b);
    }

    // A token walk before the document is built: it names the location of a syntax error (the document parser only
    // gives a line and a byte), and it refuses duplicate property names, which System.Text.Json would otherwise
    // resolve silently (last one wins) where the schema saw only one of them.
    private static bool CheckSyntax(ReadOnlySpan<byte> json, out SchemaViolation violation)
    {
        violation = default;
        var reader = new Utf8JsonReader(json, ReaderOptions);
        var frames = new List<Frame>();
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                        BeginValue(frames);
                        frames.Add(new Frame(isArray: false));
                        break;
                    case JsonTokenType.StartArray:
                        BeginValue(frames);
                        frames.Add(new Frame(isArray: true));
                        break;
                    case JsonTokenType.EndObject:
                    case JsonTokenType.EndArray:
                        frames.RemoveAt(frames.Count - 1);
                        break;
                    case JsonTokenType.PropertyName:
                        var frame = frames[^1];
                        frame.Property = reader.GetString()!;
                        if (!frame.Seen.Add(frame.Property))
                        {
                            violation = new SchemaViolation(FramesPointer(frames), $"duplicate property '{frame.Property}'");
                            return false;
                        }
                        break;
                    default:
                        BeginValue(frames);
                        break;
                }
            }
            return true;
        }
        catch (JsonException ex)
        {
            long line = (ex.LineNumber ?? 0) + 1;
            long position = (ex.BytePositionInLine ?? 0) + 1;
            var message = ex.Message;
            int cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
            if (cut > 0)
                message = message[..cut];
            violation = new SchemaViolation(FramesPointer(frames), $"invalid JSON at line {line}, byte {position}: {message}");
            return false;
        }

        static void BeginValue(List<Frame> frames)
        {
            if (frames.Count > 0 && frames[^1].IsArray)
                frames[^1].Index++;
        }
    }

    private static string FramesPointer(List<Frame> frames)
    {
        var pointer = "";
        foreach (var frame in frames)
        {
            if (frame.IsArray && frame.Index >= 0)
                pointer = JsonPointer.Append(pointer, frame.Index.ToString(CultureInfo.InvariantCulture));
            else if (!frame.IsArray && frame.Property is not null)
                pointer = JsonPointer.Append(pointer, frame.Property);
        }
        return pointer;
    }

    private sealed class Frame(bool isArray)
    {
        public bool IsArray { get; } = isArray;
        public int Index { get; set; } = -1;
        public string? Property { get; set; }
        public HashSet<string> Seen { get; } = new(StringComparer.Ordinal);
    }

    private static List<SchemaViolation> Collect(LoadedSchema schema, JsonElement instance)
    {
        var violations = new List<SchemaViolation>();
        var results = schema.Schema.Evaluate(instance, Evaluation);
        if (results.IsValid)
            return violations;

        var seen = new HashSet<SchemaViolation>();
        // oneOf/anyOf: (path of the keyword, instance location) -> the keyword's schema location and valid branches.
        var branches = new Dictionary<(string Keyword, string Instance), BranchGroup>();

        foreach (var result in Flatten(results))
        {
            var evaluationPath = result.EvaluationPath.ToString();
            var instancePointer = result.InstanceLocation.ToString();
            var shape = Classify(evaluationPath);
            if (shape.BranchKeyword is { } branchKeyword && shape.BranchPath is { } branchPath)
            {
                var key = (branchPath, instancePointer);
                if (!branches.TryGetValue(key, out var group))
                    branches[key] = group = new BranchGroup(branchKeyword, FindOwner(schema, result.SchemaLocation, branchKeyword).Subschema);
                if (result.IsValid)
                    group.Valid++;
                continue;
            }
            if (shape.Conditional || result.IsValid || result.Errors is not { Count: > 0 } errors)
                continue;
            foreach (var (keyword, _) in errors.OrderBy(e => e.Key, StringComparer.Ordinal))
            {
                foreach (var violation in Describe(schema, instance, keyword, result.SchemaLocation, evaluationPath, instancePointer, shape.PropertyName))
                {
                    if (seen.Add(violation))
                        violations.Add(violation);
                }
            }
        }

        foreach (var ((_, instancePointer), group) in branches)
        {
            var alternatives = Get(group.Owner, group.Keyword);
            int total = alternatives.ValueKind == JsonValueKind.Array ? alternatives.GetArrayLength() : 0;
            bool failed = group.Keyword == "oneOf" ? group.Valid != 1 : group.Valid == 0;
            if (!failed)
                continue;
            var violation = new SchemaViolation(instancePointer, BranchReason(group.Keyword, alternatives, total, group.Valid));
            if (seen.Add(violation))
                violations.Add(violation);
        }
        return violations;
    }

    private static IEnumerable<EvaluationResults> Flatten(EvaluationResults results)
    {
        yield return results;
        if (results.Details is null)
            yield break;
        foreach (var detail in results.Details)
        {
            foreach (var nested in Flatten(detail))
                yield return nested;
        }
    }

    private sealed class BranchGroup(string keyword, JsonElement owner)
    {
        public string Keyword { get; } = keyword;
        public JsonElement Owner { get; } = owner;
        public int Valid { get; set; }
    }

    private readonly record struct PathShape(bool Conditional, string? BranchKeyword, string? BranchPath, bool PropertyName);

    // Reads an evaluation path keyword by keyword. Conditional: the result is inside an "if" or "not" or inside a
    // oneOf/anyOf branch, where failing is not a violation by itself. A path that ends in "oneOf/<i>" is that branch's
    // own result, counted to decide the keyword. PropertyName: the result validates a property's name, not its value.
    private static PathShape Classify(string evaluationPath)
    {
        var segments = PointerSegments(evaluationPath);
        bool conditional = false, propertyName = false;
        for (int i = 0; i < segments.Count; i++)
        {
            switch (segments[i])
            {
                case "properties" or "patternProperties" or "$defs" or "dependentSchemas" or "allOf" or "prefixItems":
                    i++;
                    break;
                case "if" or "not":
                    conditional = true;
                    break;
                case "propertyNames":
                    propertyName = true;
                    break;
                case "oneOf" or "anyOf":
                    if (i + 2 == segments.Count && !conditional)
                    {
                        var path = "";
                        for (int s = 0; s <= i; s++)
                            path = JsonPointer.Append(path, segments[s]);
                        return new PathShape(false, segments[i], path, propertyName);
                    }
                    conditional = true;
                    i++;
                    break;
            }
        }
        return new PathShape(conditional, null, null, propertyName);
    }

    // The schema object that holds a failing keyword. JsonSchema.Net's schema locations are not always plain
    // pointers into the document (an additionalProperties result ends with the property name, a then's with "/0"),
    // so the longest prefix of the location that resolves to an object holding the keyword is taken.
    private static (JsonElement Subschema, string Location) FindOwner(LoadedSchema schema, Uri schemaLocation, string keyword)
    {
        var segments = PointerSegments(Uri.UnescapeDataString(schemaLocation.Fragment.TrimStart('#')));
        for (int length = segments.Count; length >= 0; length--)
        {
            var location = "";
            for (int i = 0; i < length; i++)
                location = JsonPointer.Append(location, segments[i]);
            if (schema.Resolve(location) is { ValueKind: JsonValueKind.Object } candidate && candidate.TryGetProperty(keyword, out _))
                return (candidate, location);
        }
        return (default, "");
    }

    private static IEnumerable<SchemaViolation> Describe(LoadedSchema schema, JsonElement root, string keyword, Uri schemaLocation, string evaluationPath, string pointer, bool propertyName)
    {
        var (subschema, location) = FindOwner(schema, schemaLocation, keyword.Length == 0 ? "not" : keyword);
        JsonElement value;
        if (propertyName)
            value = JsonSerializer.SerializeToElement(PointerSegments(pointer) is { Count: > 0 } s ? s[^1] : "", DefinitionSchemasJsonContext.Default.String);
        else
            value = Resolve(root, pointer) ?? default;
        var subject = propertyName ? "property name " : "";

        switch (keyword)
        {
            case "":
                var last = PointerSegments(evaluationPath) is { Count: > 0 } e ? e[^1] : "";
                if (last is "additionalProperties" or "unevaluatedProperties")
                    yield return new(pointer, $"unknown property '{(PointerSegments(pointer) is { Count: > 0 } p ? p[^1] : "")}'");
                else
                    yield return new(pointer, "is not allowed here");
                break;
            case "type":
                yield return new(pointer, $"{subject}must be {TypeNames(Get(subschema, "type"))} (got {KindName(value)})");
                break;
            case "enum":
                yield return new(pointer, $"{subject}must be one of {ListValues(Get(subschema, "enum"))} (got {Show(value)})");
                break;
            case "const":
                yield return new(pointer, $"{subject}must be {Show(Get(subschema, "const"))} (got {Show(value)})");
                break;
            case "minimum" or "maximum":
                yield return new(pointer, $"{subject}{RangeReason(subschema)} (got {Show(value)})");
                break;
            case "exclusiveMinimum":
                yield return new(pointer, $"{subject}must be greater than {Show(Get(subschema, keyword))} (got {Show(value)})");
                break;
            case "exclusiveMaximum":
                yield return new(pointer, $"{subject}must be less than {Show(Get(subschema, keyword))} (got {Show(value)})");
                break;
            case "minLength":
                yield return new(pointer, $"{subject}must be at least {Show(Get(subschema, keyword))} characters long (got {Show(value)})");
                break;
            case "maxLength":
                yield return new(pointer, $"{subject}must be at most {Show(Get(subschema, keyword))} characters long (got {LengthOf(value)})");
                break;
            case "pattern":
                yield return new(pointer, Get(subschema, "description") is { ValueKind: JsonValueKind.String } description
                    ? $"{subject}must be {description.GetString()} (got {Show(value)})"
                    : $"{subject}must match the pattern {Get(subschema, "pattern").GetString()} (got {Show(value)})");
                break;
            case "required":
                var when = Condition(schema, location, evaluationPath);
                foreach (var name in Get(subschema, "required").EnumerateArray())
                {
                    var n = name.GetString()!;
                    if (value.ValueKind == JsonValueKind.Object && !value.TryGetProperty(n, out _))
                        yield return new(JsonPointer.Append(pointer, n), "is required" + when);
                }
                break;
            case "dependentRequired":
                foreach (var dependency in Get(subschema, "dependentRequired").EnumerateObject())
                {
                    if (value.ValueKind != JsonValueKind.Object || !value.TryGetProperty(dependency.Name, out _))
                        continue;
                    foreach (var name in dependency.Value.EnumerateArray())
                    {
                        if (!value.TryGetProperty(name.GetString()!, out _))
                            yield return new(JsonPointer.Append(pointer, name.GetString()!), $"is required when '{dependency.Name}' is set");
                    }
                }
                break;
            case "minItems":
                yield return new(pointer, $"must have at least {Show(Get(subschema, keyword))} item{Plural(Get(subschema, keyword))} (got {LengthOf(value)})");
                break;
            case "maxItems":
                yield return new(pointer, $"must have at most {Show(Get(subschema, keyword))} item{Plural(Get(subschema, keyword))} (got {LengthOf(value)})");
                break;
            case "minProperties":
                yield return new(pointer, $"must have at least {Show(Get(subschema, keyword))} propert{(Show(Get(subschema, keyword)) == "1" ? "y" : "ies")} (got {LengthOf(value)})");
                break;
            case "maxProperties":
                yield return new(pointer, $"must have at most {Show(Get(subschema, keyword))} propert{(Show(Get(subschema, keyword)) == "1" ? "y" : "ies")} (got {LengthOf(value)})");
                break;
            case "uniqueItems":
                yield return new(pointer, $"must not contain duplicates{DuplicatePair(value)}");
                break;
            case "multipleOf":
                yield return new(pointer, $"{subject}must be a multiple of {Show(Get(subschema, keyword))} (got {Show(value)})");
                break;
            default:
                yield return new(pointer, $"{subject}violates '{keyword}'");
                break;
        }
    }

    // A "required" inside the "then" of an if/then whose "if" tests one property for a constant: say so.
    private static string Condition(LoadedSchema schema, string location, string evaluationPath)
    {
        var segments = PointerSegments(evaluationPath);
        var held = PointerSegments(location);
        if (segments.Count == 0 || segments[^1] != "then" || held.Count == 0 || held[^1] != "then")
            return "";
        var parent = schema.Resolve(location[..location.LastIndexOf('/')]);
        if (parent.ValueKind != JsonValueKind.Object || !parent.TryGetProperty("if", out var condition) || condition.ValueKind != JsonValueKind.Object
            || !condition.TryGetProperty("properties", out var properties) || properties.ValueKind != JsonValueKind.Object)
            return "";
        foreach (var property in properties.EnumerateObject())
        {
            if (property.Value.ValueKind == JsonValueKind.Object && property.Value.TryGetProperty("const", out var constant))
                return $" when '{property.Name}' is {Plain(constant)}";
        }
        return "";
    }

    private static string BranchReason(string keyword, JsonElement alternatives, int total, int valid)
    {
        // Alternatives that each only require one property read as a choice between those properties.
        var names = new List<string>();
        if (alternatives.ValueKind == JsonValueKind.Array)
        {
            foreach (var alternative in alternatives.EnumerateArray())
            {
                if (alternative.ValueKind == JsonValueKind.Object && alternative.EnumerateObject().Count() == 1
                    && alternative.TryGetProperty("required", out var required) && required.ValueKind == JsonValueKind.Array && required.GetArrayLength() == 1)
                    names.Add($"'{required[0].GetString()}'");
            }
        }
        if (names.Count == total && total > 1)
        {
            var choice = string.Join(", ", names.Take(names.Count - 1)) + " and " + names[^1];
            if (keyword == "anyOf")
                return $"at least one of {choice} is required";
            return valid == 0 ? $"exactly one of {choice} is required (none is set)" : $"exactly one of {choice} is required (more than one is set)";
        }
        return keyword == "anyOf"
            ? $"must match at least one of {total} alternatives"
            : $"must match exactly one of {total} alternatives (matched {valid})";
    }

    private static string RangeReason(JsonElement subschema)
    {
        var min = Get(subschema, "minimum");
        var max = Get(subschema, "maximum");
        if (min.ValueKind == JsonValueKind.Number && max.ValueKind == JsonValueKind.Number)
            return $"must be between {min.GetRawText()} and {max.GetRawText()}";
        if (min.ValueKind == JsonValueKind.Number)
            return $"must be at least {min.GetRawText()}";
        return $"must be at most {max.GetRawText()}";
    }

    private static string DuplicatePair(JsonElement array)
    {
        if (array.ValueKind != JsonValueKind.Array)
            return "";
        var items = array.EnumerateArray().ToList();
        for (int j = 1; j < items.Count; j++)
        {
            for (int i = 0; i < j; i++)
            {
                if (JsonElement.DeepEquals(items[i], items[j]))
                    return $" (items {i} and {j} are equal)";
            }
        }
        return "";
    }

    private static string TypeNames(JsonElement type)
    {
        if (type.ValueKind == JsonValueKind.String)
            return Article(type.GetString()!);
        if (type.ValueKind == JsonValueKind.Array)
            return string.Join(" or ", type.EnumerateArray().Select(t => Article(t.GetString()!)));
        return "of another type";

        static string Article(string name) => name switch
        {
            "integer" or "object" or "array" => "an " + name,
            "null" => "null",
            _ => "a " + name,
        };
    }

    private static string KindName(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => value.TryGetInt64(out _) ? "an integer" : "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };

    private static string ListValues(JsonElement values) =>
        values.ValueKind == JsonValueKind.Array ? string.Join(", ", values.EnumerateArray().Select(Plain)) : "";

    // Strings without quotes (enum and const names read better bare); anything else as JSON.
    private static string Plain(JsonElement value) => value.ValueKind == JsonValueKind.String ? value.GetString()! : Show(value);

    private static string Show(JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Undefined)
            return "nothing";
        var text = value.GetRawText();
        return text.Length <= MaxShownValueChars ? text : string.Concat(text.AsSpan(0, MaxShownValueChars), "...");
    }

    private static string LengthOf(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Array => value.GetArrayLength().ToString(CultureInfo.InvariantCulture),
        JsonValueKind.Object => value.EnumerateObject().Count().ToString(CultureInfo.InvariantCulture),
        JsonValueKind.String => value.GetString()!.Length.ToString(CultureInfo.InvariantCulture),
        _ => KindName(value),
    };

    private static string Plural(JsonElement count) => count.ValueKind == JsonValueKind.Number && count.GetRawText() == "1" ? "" : "s";

    private static JsonElement Get(JsonElement schema, string keyword) =>
        schema.ValueKind == JsonValueKind.Object && schema.TryGetProperty(keyword, out var value) ? value : default;

    public static JsonElement? Resolve(JsonElement root, string pointer)
    {
        var current = root;
        foreach (var segment in PointerSegments(pointer))
        {
            if (current.ValueKind == JsonValueKind.Object && current.TryGetProperty(segment, out var property))
                current = property;
            else if (current.ValueKind == JsonValueKind.Array && int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out int index) && index < current.GetArrayLength())
                current = current[index];
            else
                return null;
        }
        return current;
    }

    internal sealed class LoadedSchema
    {
        private LoadedSchema(string text, JsonSchema schema, JsonDocument document)
        {
            Text = text;
            Schema = schema;
            Document = document;
        }

        public string Text { get; }
        public JsonSchema Schema { get; }
        // The schema as plain JSON, to read the values a failing keyword was checked against.
        public JsonDocument Document { get; }

        public JsonElement Resolve(string pointer) => DefinitionSchemas.Resolve(Document.RootElement, pointer) ?? default;

        public static LoadedSchema Load(string fileName)
        {
            var resource = "Wayang.Fast.Control.Schemas." + fileName;
            using var stream = typeof(DefinitionSchemas).Assembly.GetManifestResourceStream(resource)
                ?? throw new InvalidOperationException($"The embedded schema '{resource}' is missing.");
            using var reader = new StreamReader(stream, Encoding.UTF8);
            return Compile(reader.ReadToEnd());
        }

        // Throws JsonSchemaException (or JsonException) when the text is not a schema JsonSchema.Net can build.
        public static LoadedSchema Compile(string text)
        {
            // A registry of our own: the global one would refuse a second schema with the same $id (another copy of
            // this assembly, a test host) and would share our $ids with every other user of the library.
            var schema = JsonSchema.FromText(text, new BuildOptions { SchemaRegistry = new SchemaRegistry() });
            return new LoadedSchema(text, schema, JsonDocument.Parse(text));
        }
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
internal sealed partial class DefinitionSchemasJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
