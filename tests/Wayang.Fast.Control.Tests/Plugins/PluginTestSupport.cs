using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Plugins;
using Wayang.Fast.Storage;
using Wayang.Fast.Testing;

namespace Wayang.Fast.Control.Tests.Plugins;

// A signer with its own key pair, manifests built from a JSON template, and a registry over an in-memory store with
// a fake clock at a fixed instant.
internal sealed class PluginFixture
{
    public const string ServerVersion = "0.5.0";
    public static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    public const string DefaultSchema = """
        {"type":"object","properties":{"url":{"type":"string","minLength":1},"timeoutMs":{"type":"integer","minimum":1,"default":1000}},
         "required":["url"],"additionalProperties":false}
        """;

    public PluginFixture(IStateStore? store = null)
    {
        Store = store ?? new InMemoryStateStore();
        Registry = NewRegistry();
    }

    public IStateStore Store { get; }
    public FakeTimeProvider Time { get; } = new(Now);
    public PluginRegistry Registry { get; private set; }
    public Signer Publisher { get; } = new();

    public long NowMs => Time.GetUtcNow().ToUnixTimeMilliseconds();

    public PluginRegistry NewRegistry() => Registry = new PluginRegistry(Store, new PluginRegistryOptions { ServerVersion = ServerVersion, ArtifactChunkBytes = 1024 }, Time);

    public TrustedKey KeyOf(Signer signer, long notBeforeMs = 0, long notAfterMs = 0) =>
        new(signer.KeyId, signer.PublicKey, notBeforeMs, notAfterMs, null, "admin");

    public Task TrustAsync(string? tenant, Signer? signer = null) => Registry.AddTrustedKeyAsync(tenant, KeyOf(signer ?? Publisher));

    public Task<PluginUploadResult> UploadAsync(string tenant, Upload upload, bool allowRollback = false) =>
        Registry.UploadAsync(tenant, upload.Manifest, upload.Artifact, upload.Signature, allowRollback, "alice");

    // The manifest for an artifact, with fields overridden (null removes one), signed by signer (Publisher by default).
    public Upload Build(string version = "1.0.0", string? schema = null, byte[]? artifact = null, Action<JsonObject>? edit = null, Signer? signer = null)
    {
        artifact ??= Encoding.UTF8.GetBytes("artifact of " + version);
        var manifest = new JsonObject
        {
            ["id"] = "acme.http-executor",
            ["version"] = version,
            ["kind"] = "executor",
            ["serverVersions"] = ">=0.1.0 <1.0.0",
            ["configSchema"] = JsonNode.Parse(schema ?? DefaultSchema),
            ["artifactDigest"] = PluginSigning.DigestOf(artifact),
            ["description"] = "Calls HTTP endpoints.",
        };
        edit?.Invoke(manifest);
        var bytes = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        return new Upload(bytes, artifact, (signer ?? Publisher).Sign(bytes));
    }

    public static async Task<IReadOnlyList<PluginProblem>> RejectedAsync(Func<Task> upload)
    {
        var ex = await Assert.ThrowsAsync<WayangException>(upload);
        Assert.Equal(ErrorCode.PluginRejected, ex.Code);
        return Problems(ex.Error);
    }

    public static List<PluginProblem> Problems(WayangError error)
    {
        using var document = JsonDocument.Parse(error.Details["problems"]);
        return [.. document.RootElement.EnumerateArray().Select(p => new PluginProblem(p.GetProperty("code").GetString()!, p.GetProperty("path").GetString()!, p.GetProperty("message").GetString()!))];
    }
}

internal sealed record Upload(byte[] Manifest, byte[] Artifact, PluginSignature Signature);

internal sealed class Signer
{
    private readonly byte[] _privateKey;

    public Signer() => (_privateKey, PublicKey) = PluginSigning.GenerateKeyPair();

    public byte[] PublicKey { get; }
    public string KeyId => PluginSigning.KeyIdOf(PublicKey);

    public PluginSignature Sign(byte[] manifest) => new(KeyId, PluginSigning.Sign(_privateKey, manifest));
}
