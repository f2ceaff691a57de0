using System.Text.Json.Serialization;

namespace Wayang.Fast.Control.Plugins;

// The registry's persisted records (protocol-spec/plugins.md, "Storage"). Field names are the persisted format: add,
// never rename. Not strict, so a record written by a newer build with an added field still loads. byte[] is base64.
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(StoredPluginVersion))]
// "trust/<tenant or _global>/<keyId>": the TrustedKey itself.
[JsonSerializable(typeof(TrustedKey))]
[JsonSerializable(typeof(StoredPolicy))]
[JsonSerializable(typeof(StoredConfiguration))]
internal sealed partial class PluginStoreJsonContext : JsonSerializerContext;

// "plugin/<tenant>/<id>/<version>". The artifact is in ArtifactChunks values under "plugin-artifact/<tenant>/<id>/<version>/<n>".
internal sealed record StoredPluginVersion
{
    public byte[] Manifest { get; init; } = [];
    public string ArtifactDigest { get; init; } = "";
    public long ArtifactBytes { get; init; }
    public int ArtifactChunks { get; init; }
    public string SignerKeyId { get; init; } = "";
    public string UploadedBy { get; init; } = "";
    public long UploadedAtMs { get; init; }
    public bool RolledBack { get; init; }
    public PluginVersionState State { get; init; }
    public string StateChangedBy { get; init; } = "";
    public long StateChangedAtMs { get; init; }
    public List<PluginProblem> Warnings { get; init; } = [];
}

// "plugin-policy/<tenant>".
internal sealed record StoredPolicy
{
    public VerificationLevel Level { get; init; }
    public string SetBy { get; init; } = "";
    public long SetAtMs { get; init; }
}

// "plugin-config/<tenant>/<id>/<name>". Json: the configuration's text as the client sent it.
internal sealed record StoredConfiguration
{
    public string Json { get; init; } = "";
    public string UpdatedBy { get; init; } = "";
    public long UpdatedAtMs { get; init; }
}
