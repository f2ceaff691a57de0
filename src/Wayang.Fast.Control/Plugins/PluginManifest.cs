using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using Json.Schema;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Control.Definitions;

namespace Wayang.Fast.Control.Plugins;

// A manifest as the registry reads it. ConfigSchema is a detached copy (JsonElement.Clone), safe to keep;
// CompiledSchema is the same schema built once for validating configurations.
internal sealed record PluginManifest(string Id, SemanticVersion Version, string Kind, VersionRange ServerVersions,
    JsonElement ConfigSchema, DefinitionSchemas.LoadedSchema CompiledSchema, string ArtifactDigest, string? Description)
{
    public const int MaxDescriptionChars = 1024;

    private static readonly SearchValues<char> LowerHex = SearchValues.Create("0123456789abcdef");
    private static readonly string[] Kinds = ["executor", "provider", "node-type"];
    private static readonly HashSet<string> Fields = new(StringComparer.Ordinal)
    {
        "id", "version", "kind", "serverVersions", "configSchema", "artifactDigest", "description",
    };

    // Every MANIFEST_INVALID problem at once; the manifest when there is none. Unknown fields are refused: the
    // manifest is signed, and a field this build ignores would be a signed promise nobody checks.
    public static bool TryParse(ReadOnlySpan<byte> json, [NotNullWhen(true)] out PluginManifest? manifest, out List<PluginProblem> problems)
    {
        manifest = null;
        problems = [];
        // The strict parse refuses duplicate properties: two "artifactDigest"s would let a reader see another digest.
        if (!DefinitionSchemas.TryParse(json, out var document, out var syntax))
        {
            problems.Add(Invalid(syntax.Pointer, syntax.Reason));
            return false;
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                problems.Add(Invalid("", "must be an object"));
                return false;
            }
            foreach (var property in root.EnumerateObject())
            {
                if (!Fields.Contains(property.Name))
                    problems.Add(Invalid(JsonPointer.Append("", property.Name), $"unknown field '{property.Name}'"));
            }

            var id = String(root, "id", problems);
            if (id is not null && !IsValidId(id))
                problems.Add(Invalid("/id", "must be 3-128 characters of [a-z0-9._-], starting with a letter or digit"));

            var versionText = String(root, "version", problems);
            SemanticVersion? version = null;
            if (versionText is not null && !SemanticVersion.TryParse(versionText, out version))
                problems.Add(Invalid("/version", $"'{versionText}' is not a SemVer version (major.minor.patch[-prerelease])"));

            var kind = String(root, "kind", problems);
            if (kind is not null && !Kinds.Contains(kind, StringComparer.Ordinal))
                problems.Add(Invalid("/kind", $"must be one of {string.Join(", ", Kinds)}"));

            var rangeText = String(root, "serverVersions", problems);
            VersionRange? range = null;
            if (rangeText is not null && !VersionRange.TryParse(rangeText, out range))
                problems.Add(Invalid("/serverVersions", "must be space-separated comparators (>=, >, <=, <, = followed by a SemVer version)"));

            var digest = String(root, "artifactDigest", problems);
            if (digest is not null && !IsDigest(digest))
                problems.Add(Invalid("/artifactDigest", "must be 'sha256:' followed by 64 lowercase hex digits"));

            string? description = null;
            if (root.TryGetProperty("description", out var text))
            {
                if (text.ValueKind != JsonValueKind.String)
                    problems.Add(Invalid("/description", "must be a string"));
                else if ((description = text.GetString()!).Length > MaxDescriptionChars)
                    problems.Add(Invalid("/description", $"must be at most {MaxDescriptionChars} characters long"));
            }

            DefinitionSchemas.LoadedSchema? compiled = null;
            if (!root.TryGetProperty("configSchema", out var schema))
                problems.Add(Invalid("/configSchema", "is required"));
            else if (schema.ValueKind != JsonValueKind.Object)
                problems.Add(Invalid("/configSchema", "must be a JSON Schema object"));
            else if (!TryCompile(schema, out compiled, out var buildProblem))
                problems.Add(Invalid("/configSchema", "is not a usable JSON Schema: " + buildProblem));

            if (problems.Count > 0)
                return false;
            manifest = new PluginManifest(id!, version!, kind!, range!, schema.Clone(), compiled!, digest!, description);
            return true;
        }
    }

    public static bool IsValidId(string? id) =>
        id is { Length: >= 3 and <= 128 } && (char.IsAsciiLetterLower(id[0]) || char.IsAsciiDigit(id[0]))
        && id.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '_' or '-');

    private static bool IsDigest(string digest) =>
        digest.Length == 71 && digest.StartsWith("sha256:", StringComparison.Ordinal) && !digest.AsSpan(7).ContainsAnyExcept(LowerHex);

    private static bool TryCompile(JsonElement schema, [NotNullWhen(true)] out DefinitionSchemas.LoadedSchema? compiled, out string problem)
    {
        problem = "";
        try
        {
            compiled = DefinitionSchemas.LoadedSchema.Compile(schema.GetRawText());
            return true;
        }
        catch (Exception ex) when (ex is JsonSchemaException or JsonException or ArgumentException or InvalidOperationException or FormatException)
        {
            compiled = null;
            problem = ex.Message;
            return false;
        }
    }

    private static string? String(JsonElement root, string name, List<PluginProblem> problems)
    {
        if (!root.TryGetProperty(name, out var value))
        {
            problems.Add(Invalid("/" + name, "is required"));
            return null;
        }
        if (value.ValueKind != JsonValueKind.String)
        {
            problems.Add(Invalid("/" + name, "must be a string"));
            return null;
        }
        return value.GetString();
    }

    private static PluginProblem Invalid(string path, string message) => new(PluginProblemCodes.ManifestInvalid, path, message);
}
