using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Wayang.Fast.Control.Plugins;

namespace Wayang.Fast.Benchmarks.Control;

// What a plugin upload costs besides storage: checking the Ed25519 signature over a manifest and the SHA-256 digest of
// a 1 MiB artifact (the artifact dominates), and the compatibility check of a realistic config schema against its
// next version. Upload time, not a hot path; the numbers say how large an artifact stays cheap.
[MemoryDiagnoser]
public class PluginBenchmarks
{
    private const string OldSchema = """
        {"type":"object","additionalProperties":false,"required":["baseUrl"],
         "properties":{
           "baseUrl":{"type":"string","minLength":1,"maxLength":2048,"pattern":"^https?://"},
           "timeoutMs":{"type":"integer","minimum":1,"maximum":600000,"default":30000},
           "method":{"enum":["GET","POST","PUT","DELETE"]},
           "headers":{"type":"object","additionalProperties":{"type":"string","maxLength":8192}},
           "retry":{"type":"object","properties":{"maxAttempts":{"type":"integer","minimum":1,"maximum":10},"backoff":{"enum":["fixed","exponential"]}}},
           "allowedHosts":{"type":"array","items":{"type":"string","minLength":1},"maxItems":64},
           "tls":{"type":"object","properties":{"verify":{"type":"boolean"},"caBundle":{"type":"string"}}}}}
        """;

    // The next version: wider bounds, one more enum value, a new optional property, a new required one with a default.
    private static readonly string NewSchema = OldSchema
        .Replace("\"maximum\":600000", "\"maximum\":900000", StringComparison.Ordinal)
        .Replace("\"DELETE\"]", "\"DELETE\",\"PATCH\"]", StringComparison.Ordinal)
        .Replace("\"required\":[\"baseUrl\"]", "\"required\":[\"baseUrl\",\"timeoutMs\"]", StringComparison.Ordinal)
        .Replace("\"tls\":", "\"proxy\":{\"type\":\"string\"},\"tls\":", StringComparison.Ordinal);

    private byte[] _publicKey = [];
    private byte[] _manifest = [];
    private byte[] _signature = [];
    private byte[] _artifact = [];
    private JsonDocument _old = null!;
    private JsonDocument _new = null!;

    [GlobalSetup]
    public void Setup()
    {
        _artifact = new byte[1024 * 1024];
        new Random(1).NextBytes(_artifact);
        _manifest = Encoding.UTF8.GetBytes($$"""
            {"id":"acme.http-executor","version":"1.2.0","kind":"executor","serverVersions":">=0.1.0 <1.0.0",
             "configSchema":{{OldSchema}},"artifactDigest":"{{PluginSigning.DigestOf(_artifact)}}"}
            """);
        var (privateKey, publicKey) = PluginSigning.GenerateKeyPair();
        _publicKey = publicKey;
        _signature = PluginSigning.Sign(privateKey, _manifest);
        _old = JsonDocument.Parse(OldSchema);
        _new = JsonDocument.Parse(NewSchema);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _old.Dispose();
        _new.Dispose();
    }

    [Benchmark]
    public bool VerifySignatureAndDigest1MiB() =>
        PluginSigning.Verify(_publicKey, _manifest, _signature) && PluginSigning.DigestOf(_artifact).Length == 71;

    [Benchmark]
    public bool VerifySignature() => PluginSigning.Verify(_publicKey, _manifest, _signature);

    [Benchmark]
    public int SchemaCompatibilityCheck() => SchemaCompatibility.Check(_old.RootElement, _new.RootElement).Count;
}
