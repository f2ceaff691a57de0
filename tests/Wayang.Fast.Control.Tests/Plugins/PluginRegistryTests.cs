using System.Text;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Plugins;
using Wayang.Fast.Storage;
using Wayang.Fast.Testing;
using static Wayang.Fast.Control.Plugins.PluginProblemCodes;

namespace Wayang.Fast.Control.Tests.Plugins;

public sealed class PluginRegistryTests
{
    private const string Id = "acme.http-executor";

    [Fact]
    public async Task A_signed_upload_is_stored_exactly_as_sent()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");
        var upload = f.Build("1.2.0");

        var result = await f.UploadAsync("acme", upload);

        Assert.Equal(new PluginUploadResult(Id, "1.2.0", false, []), result with { Warnings = [] });
        Assert.Empty(result.Warnings);
        var details = f.Registry.Get("acme", Id, null);
        Assert.Equal(upload.Manifest, details.Manifest.ToArray());
        Assert.Equal(("1.2.0", "executor", "Calls HTTP endpoints."), (details.Version, details.Kind, details.Description));
        Assert.Equal(PluginSigning.DigestOf(upload.Artifact), details.ArtifactDigest);
        Assert.Equal((f.Publisher.KeyId, "alice", f.NowMs, PluginVersionState.Enabled), (details.SignerKeyId, details.UploadedBy, details.UploadedAtMs, details.State));
        Assert.Equal(upload.Artifact, f.Registry.GetArtifact("acme", Id, "1.2.0").ToArray());
        var summary = Assert.Single(f.Registry.List("acme"));
        Assert.Equal((Id, "executor", "1.2.0", "1.2.0"), (summary.Id, summary.Kind, summary.LatestVersion, summary.LatestEnabledVersion));
    }

    [Fact]
    public async Task A_tampered_signature_is_rejected()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");
        var upload = f.Build();
        upload.Signature.Signature[0] ^= 1;

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", upload));

        Assert.Equal([(SignatureInvalid, "/signature")], problems.Select(p => (p.Code, p.Path)));
    }

    [Fact]
    public async Task A_manifest_changed_after_signing_is_rejected()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");
        var signed = f.Build("1.0.0");
        var other = f.Build("1.0.1", artifact: signed.Artifact);

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", signed with { Manifest = other.Manifest }));

        Assert.Equal([SignatureInvalid], problems.Select(p => p.Code));
    }

    [Fact]
    public async Task An_unknown_key_is_rejected()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", f.Build(signer: new Signer())));

        Assert.Equal([(KeyUnknown, "/signature/keyId")], problems.Select(p => (p.Code, p.Path)));
    }

    [Fact]
    public async Task A_revoked_key_is_rejected()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");
        await f.Registry.RevokeTrustedKeyAsync("acme", f.Publisher.KeyId, "bob");

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", f.Build()));

        Assert.Equal([KeyRevoked], problems.Select(p => p.Code));
        var key = Assert.Single(f.Registry.ListTrustedKeys("acme"));
        Assert.Equal((f.NowMs, "bob"), (key.RevokedAtMs, key.RevokedBy));
    }

    [Fact]
    public async Task Revoking_a_key_that_is_not_in_the_store_is_TrustKeyNotFound()
    {
        var f = new PluginFixture();
        await f.TrustAsync(null);

        // The global key is not in the tenant's store: a tenant cannot revoke it.
        var ex = await Assert.ThrowsAsync<WayangException>(() => f.Registry.RevokeTrustedKeyAsync("acme", f.Publisher.KeyId, "bob"));

        Assert.Equal(ErrorCode.TrustKeyNotFound, ex.Code);
        Assert.Null(Assert.Single(f.Registry.ListTrustedKeys(null)).RevokedAtMs);
    }

    [Fact]
    public async Task An_expired_key_is_rejected()
    {
        var f = new PluginFixture();
        await f.Registry.AddTrustedKeyAsync("acme", f.KeyOf(f.Publisher, notBeforeMs: 0, notAfterMs: f.NowMs));

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", f.Build()));

        Assert.Equal([KeyExpired], problems.Select(p => p.Code));
    }

    [Fact]
    public async Task A_key_that_is_not_yet_valid_is_rejected()
    {
        var f = new PluginFixture();
        await f.Registry.AddTrustedKeyAsync("acme", f.KeyOf(f.Publisher, notBeforeMs: f.NowMs + 1));

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", f.Build()));

        Assert.Equal([KeyExpired], problems.Select(p => p.Code));
        f.Time.Advance(TimeSpan.FromMilliseconds(1));
        await f.UploadAsync("acme", f.Build());
    }

    [Fact]
    public async Task An_artifact_that_does_not_match_the_digest_is_rejected()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");
        var upload = f.Build();

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", upload with { Artifact = [1, 2, 3] }));

        Assert.Equal([(DigestMismatch, "/artifactDigest")], problems.Select(p => (p.Code, p.Path)));
    }

    [Fact]
    public async Task A_lower_version_is_a_rollback_and_is_stored_only_with_the_override()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");
        await f.UploadAsync("acme", f.Build("1.2.0"));

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", f.Build("1.1.0")));
        Assert.Equal([(VersionRollback, "/version")], problems.Select(p => (p.Code, p.Path)));
        // A prerelease sorts below its release.
        problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", f.Build("1.2.0-rc.1")));
        Assert.Equal([VersionRollback], problems.Select(p => p.Code));

        var result = await f.UploadAsync("acme", f.Build("1.1.0"), allowRollback: true);

        Assert.True(result.RolledBack);
        Assert.True(f.Registry.Get("acme", Id, "1.1.0").RolledBack);
        Assert.Equal("1.2.0", f.Registry.Get("acme", Id, null).Version);
        Assert.Equal(["1.1.0", "1.2.0"], f.Registry.List("acme")[0].Versions.Select(v => v.Version));
    }

    [Fact]
    public async Task An_equal_version_is_never_overwritten()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");
        var first = f.Build("1.0.0");
        await f.UploadAsync("acme", first);

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", f.Build("1.0.0", artifact: [9]), allowRollback: true));

        Assert.Equal([(VersionExists, "/version")], problems.Select(p => (p.Code, p.Path)));
        Assert.Equal(first.Artifact, f.Registry.GetArtifact("acme", Id, "1.0.0").ToArray());
    }

    [Fact]
    public async Task An_incompatible_schema_is_rejected_with_pointers_into_the_manifest()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");
        await f.UploadAsync("acme", f.Build("1.0.0"));
        var narrowed = PluginFixture.DefaultSchema.Replace("\"type\":\"integer\"", "\"type\":\"string\"", StringComparison.Ordinal)
            .Replace("\"required\":[\"url\"]", "\"required\":[\"url\",\"token\"]", StringComparison.Ordinal);

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", f.Build("1.1.0", narrowed)));

        Assert.Equal([(TypeNarrowed, "/configSchema/properties/timeoutMs/type"), (RequiredAdded, "/configSchema/required/1")],
            problems.Select(p => (p.Code, p.Path)).OrderByDescending(p => p.Code, StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_stored_configuration_the_new_schema_refuses_is_rejected()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");
        await f.UploadAsync("acme", f.Build("1.0.0", """{"type":"object","properties":{"url":{"type":"string"}}}"""));
        await f.Registry.PutConfigurationAsync("acme", Id, "prod", "{\"url\":\"\"}"u8.ToArray(), "alice");

        // minLength 1 is also a tightened constraint; the configuration is reported on its own path.
        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", f.Build("1.1.0", """{"type":"object","properties":{"url":{"type":"string","minLength":1}}}""")));

        Assert.Contains(problems, p => p.Code == ConfigInvalid && p.Path == "/configurations/prod/url");
        Assert.Contains(problems, p => p.Code == ConstraintTightened && p.Path == "/configSchema/properties/url/minLength");
    }

    [Fact]
    public async Task A_server_version_outside_the_range_is_rejected()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", f.Build(edit: m => m["serverVersions"] = ">=1.0.0")));

        Assert.Equal([(ServerVersionIncompatible, "/serverVersions")], problems.Select(p => (p.Code, p.Path)));
    }

    [Theory]
    [InlineData("not json", "")]
    [InlineData("[]", "")]
    [InlineData("""{"id":"acme.x","id":"acme.y"}""", "/id")]
    public async Task A_manifest_that_is_not_a_json_object_is_rejected(string manifest, string path)
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");
        var bytes = Encoding.UTF8.GetBytes(manifest);

        var problems = await PluginFixture.RejectedAsync(() => f.Registry.UploadAsync("acme", bytes, Array.Empty<byte>(), f.Publisher.Sign(bytes), false, "alice"));

        var problem = Assert.Single(problems);
        Assert.Equal((ManifestInvalid, path), (problem.Code, problem.Path));
    }

    public static TheoryData<string, string?, string> BadFields => new()
    {
        { "id", "AB", "/id" },
        { "id", "-acme", "/id" },
        { "id", null, "/id" },
        { "version", "1.0", "/version" },
        { "version", "01.0.0", "/version" },
        { "version", "1.0.0+build", "/version" },
        { "kind", "library", "/kind" },
        { "serverVersions", "~1.0.0", "/serverVersions" },
        { "serverVersions", "", "/serverVersions" },
        { "artifactDigest", "sha256:ABC", "/artifactDigest" },
        { "artifactDigest", "md5:" + new string('0', 64), "/artifactDigest" },
        { "configSchema", null, "/configSchema" },
        { "extra", "field", "/extra" },
    };

    [Theory]
    [MemberData(nameof(BadFields))]
    public async Task A_malformed_manifest_field_is_rejected(string field, string? value, string path)
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", f.Build(edit: m => m[field] = value)));

        Assert.Equal([(ManifestInvalid, path)], problems.Select(p => (p.Code, p.Path)));
    }

    [Fact]
    public async Task A_config_schema_that_does_not_build_is_rejected()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", f.Build(schema: """{"type":5}""")));

        Assert.Equal([(ManifestInvalid, "/configSchema")], problems.Select(p => (p.Code, p.Path)));
    }

    [Fact]
    public async Task Every_problem_is_reported_at_once()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");
        var upload = f.Build(edit: m => m["serverVersions"] = "<0.1.0");
        upload.Signature.Signature[5] ^= 1;

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", upload with { Artifact = [0] }));

        Assert.Equal([DigestMismatch, ServerVersionIncompatible, SignatureInvalid], problems.Select(p => p.Code).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task An_artifact_over_the_limit_is_rejected()
    {
        var f = new PluginFixture();
        var registry = new PluginRegistry(f.Store, new PluginRegistryOptions { ServerVersion = PluginFixture.ServerVersion, MaxArtifactBytes = 10 }, f.Time);
        await registry.AddTrustedKeyAsync("acme", f.KeyOf(f.Publisher));
        var upload = f.Build(artifact: new byte[11]);

        var problems = await PluginFixture.RejectedAsync(() => registry.UploadAsync("acme", upload.Manifest, upload.Artifact, upload.Signature, false, "alice"));

        Assert.Equal([ArtifactTooLarge], problems.Select(p => p.Code));
    }

    [Fact]
    public async Task The_audit_level_accepts_trust_problems_as_warnings_but_nothing_else()
    {
        var f = new PluginFixture();
        await f.Registry.SetVerificationLevelAsync("acme", VerificationLevel.Audit, "admin");
        var unsigned = f.Build("1.0.0", signer: new Signer());

        var result = await f.UploadAsync("acme", unsigned);

        Assert.Equal([KeyUnknown], result.Warnings.Select(w => w.Code));
        Assert.Equal(result.Warnings, f.Registry.Get("acme", Id, "1.0.0").Warnings);
        var mismatched = f.Build("1.1.0", signer: new Signer()) with { Artifact = [7] };
        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", mismatched));
        Assert.Equal([DigestMismatch, KeyUnknown], problems.Select(p => p.Code).Order(StringComparer.Ordinal));
        Assert.Equal(VerificationLevel.Strict, f.Registry.GetVerificationLevel("other"));
    }

    [Fact]
    public async Task A_tenant_key_does_not_verify_another_tenant_upload()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");

        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("globex", f.Build()));

        Assert.Equal([KeyUnknown], problems.Select(p => p.Code));
        Assert.Empty(f.Registry.ListTrustedKeys("globex"));
    }

    [Fact]
    public async Task A_global_key_verifies_every_tenant_upload()
    {
        var f = new PluginFixture();
        await f.TrustAsync(null);

        await f.UploadAsync("acme", f.Build());
        await f.UploadAsync("globex", f.Build());

        Assert.Single(f.Registry.List("acme"));
        Assert.Single(f.Registry.List("globex"));
        // Each tenant sees only its own plugins: another tenant's is simply not found.
        await f.Registry.SetStateAsync("acme", Id, "1.0.0", PluginVersionState.Disabled, "alice");
        Assert.Equal(PluginVersionState.Enabled, f.Registry.Get("globex", Id, "1.0.0").State);
        Assert.Equal(ErrorCode.PluginNotFound, Assert.Throws<WayangException>(() => f.Registry.Get("initech", Id, null)).Code);
    }

    [Fact]
    public async Task A_trusted_key_must_carry_its_derived_id_and_cannot_be_added_twice()
    {
        var f = new PluginFixture();
        var key = f.KeyOf(f.Publisher);

        var wrongId = await Assert.ThrowsAsync<WayangException>(() => f.Registry.AddTrustedKeyAsync("acme", key with { KeyId = "0000000000000000" }));
        var shortKey = await Assert.ThrowsAsync<WayangException>(() => f.Registry.AddTrustedKeyAsync("acme", key with { PublicKey = new byte[31] }));
        await f.Registry.AddTrustedKeyAsync("acme", key);
        await f.Registry.RevokeTrustedKeyAsync("acme", key.KeyId, "bob");
        var again = await Assert.ThrowsAsync<WayangException>(() => f.Registry.AddTrustedKeyAsync("acme", key));

        Assert.All([wrongId, shortKey, again], ex => Assert.Equal(ErrorCode.InvalidArgument, ex.Code));
        Assert.NotNull(Assert.Single(f.Registry.ListTrustedKeys("acme")).RevokedAtMs);
    }

    [Fact]
    public async Task Disabled_versions_are_kept_and_configurations_follow_the_latest_enabled_version()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");
        await f.UploadAsync("acme", f.Build("1.0.0"));
        await f.UploadAsync("acme", f.Build("1.1.0", PluginFixture.DefaultSchema.Replace("\"additionalProperties\":false", "\"additionalProperties\":true", StringComparison.Ordinal)));

        await f.Registry.SetStateAsync("acme", Id, "1.1.0", PluginVersionState.Disabled, "bob");

        var details = f.Registry.Get("acme", Id, "1.1.0");
        Assert.Equal((PluginVersionState.Disabled, "bob"), (details.State, details.StateChangedBy));
        Assert.Equal(("1.1.0", "1.0.0"), (f.Registry.List("acme")[0].LatestVersion, f.Registry.List("acme")[0].LatestEnabledVersion));
        // 1.0.0 refuses unknown properties; 1.1.0 (disabled) would have accepted this one.
        var ex = await Assert.ThrowsAsync<WayangException>(() => f.Registry.PutConfigurationAsync("acme", Id, "prod", """{"url":"x","extra":1}"""u8.ToArray(), "alice"));
        Assert.Equal(ErrorCode.PluginConfigInvalid, ex.Code);

        await f.Registry.SetStateAsync("acme", Id, "1.0.0", PluginVersionState.Disabled, "bob");
        var none = await Assert.ThrowsAsync<WayangException>(() => f.Registry.PutConfigurationAsync("acme", Id, "prod", """{"url":"x"}"""u8.ToArray(), "alice"));
        Assert.Equal(ErrorCode.PluginNotFound, none.Code);

        await f.Registry.SetStateAsync("acme", Id, "1.1.0", PluginVersionState.Enabled, "bob");
        await f.Registry.PutConfigurationAsync("acme", Id, "prod", """{"url":"x","extra":1}"""u8.ToArray(), "alice");
    }

    [Fact]
    public async Task A_configuration_is_validated_against_the_schema()
    {
        var f = new PluginFixture();
        await f.TrustAsync("acme");
        await f.UploadAsync("acme", f.Build());

        var ex = await Assert.ThrowsAsync<WayangException>(() => f.Registry.PutConfigurationAsync("acme", Id, "prod", """{"timeoutMs":0,"other":true}"""u8.ToArray(), "alice"));
        var malformed = await Assert.ThrowsAsync<WayangException>(() => f.Registry.PutConfigurationAsync("acme", Id, "prod", "{"u8.ToArray(), "alice"));
        await f.Registry.PutConfigurationAsync("acme", Id, "prod", """{"url":"https://example.com"}"""u8.ToArray(), "alice");
        await f.Registry.PutConfigurationAsync("acme", Id, "dev", """{"url":"http://localhost","timeoutMs":5}"""u8.ToArray(), "alice");

        Assert.Equal(ErrorCode.PluginConfigInvalid, ex.Code);
        using var violations = JsonDocument.Parse(ex.Error.Details["violations"]);
        Assert.Equal(["/other", "/timeoutMs", "/url"], violations.RootElement.EnumerateArray().Select(v => v.GetProperty("pointer").GetString()));
        Assert.Equal(ErrorCode.PluginConfigInvalid, malformed.Code);
        Assert.Equal(["dev", "prod"], f.Registry.GetConfigurations("acme", Id).Keys);
        Assert.Empty(f.Registry.GetConfigurations("globex", Id));
    }

    [Fact]
    public async Task Everything_survives_a_reload_from_the_same_store()
    {
        var f = new PluginFixture();
        await f.TrustAsync(null);
        var tenantSigner = new Signer();
        await f.TrustAsync("acme", tenantSigner);
        await f.Registry.RevokeTrustedKeyAsync("acme", tenantSigner.KeyId, "bob");
        await f.Registry.SetVerificationLevelAsync("acme", VerificationLevel.Audit, "admin");
        var big = f.Build("1.0.0", artifact: Enumerable.Range(0, 5000).Select(i => (byte)i).ToArray());
        await f.UploadAsync("acme", big);
        await f.UploadAsync("acme", f.Build("1.1.0", signer: tenantSigner));
        await f.Registry.SetStateAsync("acme", Id, "1.0.0", PluginVersionState.Disabled, "bob");
        await f.Registry.PutConfigurationAsync("acme", Id, "prod", """{"url":"x"}"""u8.ToArray(), "alice");
        var before = Snapshot(f.Registry);

        var reloaded = f.NewRegistry();

        Assert.Equal(before, Snapshot(reloaded));
        Assert.Equal(big.Artifact, reloaded.GetArtifact("acme", Id, "1.0.0").ToArray());
        // The reloaded registry keeps enforcing the version order.
        var problems = await PluginFixture.RejectedAsync(() => f.UploadAsync("acme", f.Build("1.0.5")));
        Assert.Equal([VersionRollback], problems.Select(p => p.Code));
    }

    [Fact]
    public async Task An_artifact_larger_than_a_store_value_survives_a_reopen_of_the_real_store()
    {
        using var dir = new TempDirectory();
        var options = new StorageOptions { DataDirectory = dir.Path };
        var signer = new Signer();
        var artifact = new byte[3 * options.MaxValueBytes];
        new Random(7).NextBytes(artifact);
        var registryOptions = new PluginRegistryOptions { ServerVersion = PluginFixture.ServerVersion };
        Upload upload;
        await using (var store = await FasterStateStore.OpenAsync(options, logger: null))
        {
            var f = new PluginFixture(store);
            var registry = new PluginRegistry(store, registryOptions, f.Time);
            await registry.AddTrustedKeyAsync(null, f.KeyOf(signer));
            upload = f.Build(artifact: artifact, signer: signer);
            await registry.UploadAsync("acme", upload.Manifest, upload.Artifact, upload.Signature, false, "alice");
        }
        await using (var store = await FasterStateStore.OpenAsync(options, logger: null))
        {
            var registry = new PluginRegistry(store, registryOptions);
            Assert.Equal(artifact, registry.GetArtifact("acme", Id, "1.0.0").ToArray());
            Assert.Equal(upload.Manifest, registry.Get("acme", Id, null).Manifest.ToArray());
        }
    }

    private static string Snapshot(PluginRegistry registry)
    {
        var text = new StringBuilder();
        foreach (var summary in registry.List("acme"))
        {
            text.AppendLine(JsonSerializer.Serialize(summary.Versions));
            foreach (var version in summary.Versions)
            {
                var d = registry.Get("acme", summary.Id, version.Version);
                text.AppendLine(JsonSerializer.Serialize(d with { Manifest = default })).AppendLine(Convert.ToBase64String(d.Manifest.Span));
            }
        }
        text.AppendLine(JsonSerializer.Serialize(registry.GetConfigurations("acme", Id)));
        text.AppendLine(JsonSerializer.Serialize(registry.ListTrustedKeys(null))).AppendLine(JsonSerializer.Serialize(registry.ListTrustedKeys("acme")));
        return text.Append(registry.GetVerificationLevel("acme")).ToString();
    }
}
