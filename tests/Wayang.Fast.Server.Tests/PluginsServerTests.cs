using System.Text;
using System.Text.Json;
using Wayang.Fast.Common.Audit;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Plugins;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Tests;

// Plugins over real sockets: trust stores and their scopes, signed uploads, every rejection reason reported and
// audited, the audit verification level, state and configuration.
public sealed class PluginsServerTests
{
    private static readonly byte[] Artifact = Encoding.UTF8.GetBytes("#!/bin/sh\necho plugin\n");

    private static byte[] Manifest(string version, string schema = """{"type":"object","properties":{"url":{"type":"string"}}}""") =>
        Encoding.UTF8.GetBytes($$"""{"id":"acme.http","version":"{{version}}","kind":"executor","serverVersions":">=0.0.0","configSchema":{{schema}},"artifactDigest":"{{PluginSigning.DigestOf(Artifact)}}"}""");

    private static PluginUploadRequest Signed(byte[] manifest, byte[] privateKey, byte[] publicKey, bool allowRollback = false) => new()
    {
        Manifest = manifest,
        Artifact = Artifact,
        SignatureKeyId = PluginSigning.KeyIdOf(publicKey),
        Signature = PluginSigning.Sign(privateKey, manifest),
        AllowRollback = allowRollback,
    };

    [Fact]
    public async Task A_signed_upload_is_accepted_listed_configured_and_disabled_and_every_step_is_audited()
    {
        await using var h = await ExecutionHarness.StartAsync();
        var (privateKey, publicKey) = PluginSigning.GenerateKeyPair();
        await using var admin = await h.ConnectAsync("tenant-admin");
        var key = await admin.CallAsync<TrustKeyAddRequest, TrustKeyDto>(Opcode.TrustKeyAdd, new TrustKeyAddRequest { PublicKey = publicKey });
        Assert.Equal(PluginSigning.KeyIdOf(publicKey), key.KeyId);

        await using var dev = await h.ConnectAsync("developer");
        var uploaded = await dev.CallAsync<PluginUploadRequest, PluginUploadResponse>(Opcode.PluginUpload, Signed(Manifest("1.0.0"), privateKey, publicKey));
        Assert.Equal(("acme.http", "1.0.0", false), (uploaded.Id, uploaded.Version, uploaded.RolledBack));
        Assert.Empty(uploaded.Warnings);

        await dev.CallAsync<PluginConfigureRequest, PluginVersionDto>(Opcode.PluginConfigure,
            new PluginConfigureRequest { Id = "acme.http", Name = "prod", ConfigJson = Encoding.UTF8.GetBytes("""{"url":"https://example.com"}""") });
        var invalid = await dev.ExpectErrorAsync(Opcode.PluginConfigure,
            new PluginConfigureRequest { Id = "acme.http", Name = "bad", ConfigJson = Encoding.UTF8.GetBytes("""{"url":42}""") }, ErrorCode.PluginConfigInvalid);
        Assert.Contains("/url", invalid.Details["violations"], StringComparison.Ordinal);

        var shown = await dev.CallAsync<PluginRefRequest, PluginVersionDto>(Opcode.PluginShow, new PluginRefRequest { Id = "acme.http" });
        Assert.Equal((PluginSigning.DigestOf(Artifact), key.KeyId, h.KeyId("developer")), (shown.ArtifactDigest, shown.SignatureKeyId, shown.UploadedBy));
        Assert.Equal(["prod"], shown.Configurations);

        var disabled = await dev.CallAsync<PluginRefRequest, PluginVersionDto>(Opcode.PluginDisable, new PluginRefRequest { Id = "acme.http", Version = "1.0.0" });
        Assert.Equal(1, disabled.State);
        var list = await dev.CallAsync<PluginListRequest, PluginListResponse>(Opcode.PluginList, new PluginListRequest());
        Assert.Equal(["1.0.0"], Assert.Single(list.Plugins).Versions);

        // A viewer reads but may not upload.
        await using var viewer = await h.ConnectAsync("viewer");
        await viewer.ExpectErrorAsync(Opcode.PluginUpload, Signed(Manifest("1.0.1"), privateKey, publicKey), ErrorCode.PermissionDenied);

        var records = (await admin.CallAsync<AuditQueryRequest, AuditQueryResponse>(Opcode.AuditQuery, new AuditQueryRequest { Limit = 1000 })).Records;
        Assert.Contains(records, r => r.Operation == "TrustKeyAdd" && r.Resource == $"trust:acme/{key.KeyId}");
        Assert.Contains(records, r => r.Operation == "PluginUpload" && r.Outcome == (byte)AuditOutcome.Allowed && r.Resource == "plugin:acme/acme.http@1.0.0");
        Assert.Contains(records, r => r.Operation == "PluginConfigure" && r.Outcome == (byte)AuditOutcome.Failed && r.Reason == "PLUGIN_CONFIG_INVALID");
        Assert.Contains(records, r => r.Operation == "PluginDisable" && r.Resource == "plugin:acme/acme.http@1.0.0");
        Assert.Contains(records, r => r.Operation == "PluginUpload" && r.Outcome == (byte)AuditOutcome.Denied && r.PrincipalId == h.KeyId("viewer"));
    }

    [Fact]
    public async Task A_rejected_upload_reports_every_reason_and_the_audit_log_records_them()
    {
        await using var h = await ExecutionHarness.StartAsync();
        var (privateKey, publicKey) = PluginSigning.GenerateKeyPair();
        var (_, strangerPublic) = PluginSigning.GenerateKeyPair();
        await using var admin = await h.ConnectAsync("tenant-admin");
        await admin.CallAsync<TrustKeyAddRequest, TrustKeyDto>(Opcode.TrustKeyAdd, new TrustKeyAddRequest { PublicKey = publicKey });
        await admin.CallAsync<PluginUploadRequest, PluginUploadResponse>(Opcode.PluginUpload, Signed(Manifest("2.0.0"), privateKey, publicKey));

        // An older version, signed by a key nobody trusts, whose artifact does not match its digest.
        var request = Signed(Manifest("1.0.0"), privateKey, strangerPublic);
        request.Artifact = Encoding.UTF8.GetBytes("tampered");
        var error = await admin.ExpectErrorAsync(Opcode.PluginUpload, request, ErrorCode.PluginRejected);
        var codes = Codes(error.Details["problems"]);
        Assert.Contains("KEY_UNKNOWN", codes);
        Assert.Contains("DIGEST_MISMATCH", codes);
        Assert.Contains("VERSION_ROLLBACK", codes);

        // Revoked: the same key's next upload is refused.
        await admin.CallAsync<TrustKeyRefRequest, TrustKeyDto>(Opcode.TrustKeyRevoke, new TrustKeyRefRequest { KeyId = PluginSigning.KeyIdOf(publicKey) });
        var revoked = await admin.ExpectErrorAsync(Opcode.PluginUpload, Signed(Manifest("3.0.0"), privateKey, publicKey), ErrorCode.PluginRejected);
        Assert.Contains("KEY_REVOKED", Codes(revoked.Details["problems"]));

        var records = (await admin.CallAsync<AuditQueryRequest, AuditQueryResponse>(Opcode.AuditQuery, new AuditQueryRequest { Limit = 1000 })).Records;
        var rejected = records.Where(r => r.Operation == "PluginUpload" && r.Reason == "PLUGIN_REJECTED").ToList();
        Assert.Equal(2, rejected.Count);
        Assert.Contains("DIGEST_MISMATCH", rejected[0].Details["problems"], StringComparison.Ordinal);
        Assert.Contains("KEY_REVOKED", rejected[1].Details["problems"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_global_trust_store_is_changed_by_platform_admins_only_and_verifies_every_tenants_uploads()
    {
        await using var h = await ExecutionHarness.StartAsync();
        var (privateKey, publicKey) = PluginSigning.GenerateKeyPair();
        await using var tenantAdmin = await h.ConnectAsync("tenant-admin");
        await tenantAdmin.ExpectErrorAsync(Opcode.TrustKeyAdd, new TrustKeyAddRequest { Global = true, PublicKey = publicKey }, ErrorCode.PermissionDenied);

        await using var platform = await h.ConnectAdminAsync();
        var key = await platform.CallAsync<TrustKeyAddRequest, TrustKeyDto>(Opcode.TrustKeyAdd, new TrustKeyAddRequest { Global = true, PublicKey = publicKey });
        Assert.True(key.Global);
        Assert.Single((await tenantAdmin.CallAsync<TrustKeyRefRequest, TrustKeyListResponse>(Opcode.TrustKeyList, new TrustKeyRefRequest { Global = true })).Keys);

        var accepted = await tenantAdmin.CallAsync<PluginUploadRequest, PluginUploadResponse>(Opcode.PluginUpload, Signed(Manifest("1.0.0"), privateKey, publicKey));
        Assert.Equal("1.0.0", accepted.Version);
    }

    [Fact]
    public async Task At_the_audit_level_an_unverified_upload_is_accepted_with_its_warnings_on_record()
    {
        await using var h = await ExecutionHarness.StartAsync();
        var (privateKey, publicKey) = PluginSigning.GenerateKeyPair();
        await using var admin = await h.ConnectAsync("tenant-admin");
        await admin.ExpectErrorAsync(Opcode.PluginUpload, Signed(Manifest("1.0.0"), privateKey, publicKey), ErrorCode.PluginRejected);

        await admin.CallAsync<PluginPolicyRequest, PluginPolicyRequest>(Opcode.PluginPolicySet, new PluginPolicyRequest { Level = (byte)VerificationLevel.Audit });
        var accepted = await admin.CallAsync<PluginUploadRequest, PluginUploadResponse>(Opcode.PluginUpload, Signed(Manifest("1.0.0"), privateKey, publicKey));
        Assert.Equal("KEY_UNKNOWN", Assert.Single(accepted.Warnings).Code);

        var records = (await admin.CallAsync<AuditQueryRequest, AuditQueryResponse>(Opcode.AuditQuery, new AuditQueryRequest { Limit = 1000 })).Records;
        Assert.Contains(records, r => r.Operation == "PluginUpload" && r.Outcome == (byte)AuditOutcome.Allowed && r.Resource == "plugin:acme/acme.http@1.0.0:warning=KEY_UNKNOWN");
    }

    private static List<string> Codes(string problemsJson)
    {
        using var doc = JsonDocument.Parse(problemsJson);
        return [.. doc.RootElement.EnumerateArray().Select(p => p.GetProperty("code").GetString()!)];
    }
}
