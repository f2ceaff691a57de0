using System.CommandLine;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Plugins;

namespace Wayang.Fast.Host;

// `wayang plugins keygen|sign|verify` (local, no server) and `upload|list|show|enable|disable|trust|policy`
// (protocol-spec/plugins.md). Key files hold base64 of the raw 32-byte Ed25519 seed (owner-only) or public key; a
// signature file is JSON {"keyId": ..., "signature": base64}.
public static partial class WayangCli
{
    private static Command BuildPlugins(CliEnvironment env)
    {
        var plugins = new Command("plugins", "Plugins: sign them locally, upload them signed, list, show, enable, disable; trust stores and verification level.");

        var keygenOut = new Option<string>("--out", "-o") { Description = "File prefix: writes PREFIX.key (private, owner-only) and PREFIX.pub.", Required = true };
        var keygen = new Command("keygen", "Create an Ed25519 signing key pair and print its key id.") { keygenOut };
        keygen.SetAction((p, _) => Guard(env, async () =>
        {
            var prefix = Path.GetFullPath(p.GetValue(keygenOut)!, env.WorkingDirectory);
            var (privateKey, publicKey) = PluginSigning.GenerateKeyPair();
            WriteKeyFile(prefix + ".key", privateKey, ownerOnly: true);
            WriteKeyFile(prefix + ".pub", publicKey, ownerOnly: false);
            await env.Out.WriteLineAsync($"key id {PluginSigning.KeyIdOf(publicKey)}: {prefix}.key (keep it secret), {prefix}.pub (add it to a trust store)");
            return ExitOk;
        }));
        plugins.Add(keygen);

        var signKey = new Option<string>("--key") { Description = "The private key file (from keygen).", Required = true };
        var signManifest = new Option<string>("--manifest", "-m") { Description = "The manifest JSON file.", Required = true };
        var signArtifact = new Option<string?>("--artifact", "-a") { Description = "The artifact: checked against the manifest's artifactDigest first." };
        var signOut = new Option<string?>("--out", "-o") { Description = "Signature file (default: MANIFEST.sig)." };
        var sign = new Command("sign", "Sign a manifest (which carries the artifact's digest).") { signKey, signManifest, signArtifact, signOut };
        sign.SetAction((p, _) => Guard(env, async () =>
        {
            var manifest = ReadBytes(env, p.GetValue(signManifest)!);
            if (p.GetValue(signArtifact) is { } artifactPath)
                CheckDigest(manifest, ReadBytes(env, artifactPath));
            var privateKey = ReadKeyFile(env, p.GetValue(signKey)!);
            byte[] signature;
            byte[] publicKey;
            try
            {
                signature = PluginSigning.Sign(privateKey, manifest);
                publicKey = PluginSigning.PublicKeyOf(privateKey);
            }
            finally
            {
                Array.Clear(privateKey);
            }
            var keyId = PluginSigning.KeyIdOf(publicKey);
            var output = Path.GetFullPath(p.GetValue(signOut) ?? p.GetValue(signManifest)! + ".sig", env.WorkingDirectory);
            await File.WriteAllTextAsync(output, JsonSerializer.Serialize(new SignatureFile(keyId, Convert.ToBase64String(signature))));
            await env.Out.WriteLineAsync($"signed with key {keyId}: {output}");
            return ExitOk;
        }));
        plugins.Add(sign);

        var verifyPub = new Option<string>("--pub") { Description = "The public key file.", Required = true };
        var verifyManifest = new Option<string>("--manifest", "-m") { Description = "The manifest JSON file.", Required = true };
        var verifySignature = new Option<string?>("--signature") { Description = "Signature file (default: MANIFEST.sig)." };
        var verifyArtifact = new Option<string?>("--artifact", "-a") { Description = "Also check the artifact against the manifest's digest." };
        var verify = new Command("verify", "Check a signature (and an artifact's digest) locally. Exit 1 when it does not verify.")
        {
            verifyPub, verifyManifest, verifySignature, verifyArtifact,
        };
        verify.SetAction((p, _) => Guard(env, async () =>
        {
            var manifest = ReadBytes(env, p.GetValue(verifyManifest)!);
            var signature = ReadSignatureFile(env, p.GetValue(verifySignature) ?? p.GetValue(verifyManifest)! + ".sig");
            var publicKey = ReadKeyFile(env, p.GetValue(verifyPub)!);
            if (p.GetValue(verifyArtifact) is { } artifactPath)
                CheckDigest(manifest, ReadBytes(env, artifactPath));
            if (signature.KeyId != PluginSigning.KeyIdOf(publicKey))
                throw new UsageException($"The signature names key {signature.KeyId}, not this public key ({PluginSigning.KeyIdOf(publicKey)}).");
            if (!PluginSigning.Verify(publicKey, manifest, signature.Bytes))
                throw new UsageException("The signature does not verify.");
            await env.Out.WriteLineAsync($"verified: signed by {signature.KeyId}");
            return ExitOk;
        }));
        plugins.Add(verify);

        var uploadConnection = new ConnectionOptions();
        var uploadManifest = new Option<string>("--manifest", "-m") { Description = "The manifest JSON file.", Required = true };
        var uploadArtifact = new Option<string>("--artifact", "-a") { Description = "The artifact file.", Required = true };
        var uploadSignature = new Option<string?>("--signature") { Description = "Signature file (default: MANIFEST.sig)." };
        var uploadRollback = new Option<bool>("--allow-rollback") { Description = "Accept a version not above the latest (recorded in the audit log)." };
        var uploadTenant = TenantOption();
        var upload = new Command("upload", "Upload a signed plugin version; every reason for a rejection is listed.")
        {
            uploadManifest, uploadArtifact, uploadSignature, uploadRollback, uploadTenant,
        };
        uploadConnection.AddTo(upload);
        upload.SetAction((p, ct) => Guard(env, async () =>
        {
            var manifest = ReadBytes(env, p.GetValue(uploadManifest)!);
            var artifact = ReadBytes(env, p.GetValue(uploadArtifact)!);
            var signature = ReadSignatureFile(env, p.GetValue(uploadSignature) ?? p.GetValue(uploadManifest)! + ".sig");
            await using var client = await uploadConnection.ConnectAsync(p, env, ct);
            try
            {
                var result = await client.UploadPluginAsync(manifest, artifact, signature.KeyId, signature.Bytes, p.GetValue(uploadRollback), p.GetValue(uploadTenant), ct: ct);
                await env.Out.WriteLineAsync($"uploaded {result.Id} {result.Version}{(result.RolledBack ? " (rollback override)" : "")}");
                foreach (var w in result.Warnings)
                    await env.Out.WriteLineAsync($"warning {w.Code} {w.Path}: {w.Message}");
                return ExitOk;
            }
            catch (WayangException e) when (e.Error.Code == ErrorCode.PluginRejected && e.Error.Details.TryGetValue("problems", out var problems))
            {
                await env.Error.WriteLineAsync($"error {e.Error.Name}: {e.Error.Message}");
                using var doc = JsonDocument.Parse(problems);
                foreach (var problem in doc.RootElement.EnumerateArray())
                    await env.Error.WriteLineAsync($"  {Text(problem, "code")} {Text(problem, "path")}: {Text(problem, "message")}");
                return ExitServerError;
            }
        }));
        plugins.Add(upload);

        var listConnection = new ConnectionOptions();
        var listTenant = TenantOption();
        var listJson = JsonFlag();
        var list = new Command("list", "List the tenant's plugins and their versions.") { listTenant, listJson };
        listConnection.AddTo(list);
        list.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await listConnection.ConnectAsync(p, env, ct);
            var all = await client.ListPluginsAsync(p.GetValue(listTenant), ct: ct);
            if (p.GetValue(listJson))
            {
                await WriteJsonAsync(env, all);
                return ExitOk;
            }
            await WriteTableAsync(env.Out, ["ID", "KIND", "LATEST", "VERSIONS"], all.Select(x => new[]
            {
                x.Id, x.Kind, x.LatestVersion, string.Join(',', x.Versions.Select((v, i) => v + ":" + (x.States[i] == 0 ? "enabled" : "disabled"))),
            }));
            return ExitOk;
        }));
        plugins.Add(list);

        var showConnection = new ConnectionOptions();
        var showId = new Argument<string>("id") { Description = "Plugin id." };
        var showVersion = new Option<string?>("--version") { Description = "Version (default: the latest)." };
        var showTenant = TenantOption();
        var show = new Command("show", "Show a plugin version: manifest, digest, signer, state, warnings, configurations.") { showId, showVersion, showTenant };
        showConnection.AddTo(show);
        show.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await showConnection.ConnectAsync(p, env, ct);
            var v = await client.GetPluginAsync(p.GetValue(showId)!, p.GetValue(showVersion), p.GetValue(showTenant), ct: ct);
            await env.Out.WriteLineAsync($"{v.Id} {v.Version} ({v.Kind}, {(v.State == 0 ? "enabled" : "disabled")})");
            await env.Out.WriteLineAsync($"artifact: {v.ArtifactDigest}");
            await env.Out.WriteLineAsync($"signed by: {v.SignatureKeyId}; uploaded by {v.UploadedBy} at {FormatTime(DateTimeOffset.FromUnixTimeMilliseconds(v.UploadedAtMs))}");
            foreach (var w in v.Warnings)
                await env.Out.WriteLineAsync($"warning {w.Code} {w.Path}: {w.Message}");
            if (v.Configurations.Length > 0)
                await env.Out.WriteLineAsync("configurations: " + string.Join(", ", v.Configurations));
            await env.Out.WriteLineAsync("manifest:");
            await env.Out.WriteLineAsync(Indent(Encoding.UTF8.GetString(v.Manifest)));
            return ExitOk;
        }));
        plugins.Add(show);

        plugins.Add(BuildPluginState(env, enable: true));
        plugins.Add(BuildPluginState(env, enable: false));
        plugins.Add(BuildTrust(env));

        var policyConnection = new ConnectionOptions();
        var policyLevel = new Argument<string>("level") { Description = "strict (reject unverified uploads) or audit (accept and record)." };
        policyLevel.AcceptOnlyFromAmong("strict", "audit");
        var policyTenant = TenantOption();
        var policy = new Command("policy", "Set the tenant's signature verification level.") { policyLevel, policyTenant };
        policyConnection.AddTo(policy);
        policy.SetAction((p, ct) => Guard(env, async () =>
        {
            byte level = p.GetValue(policyLevel) == "audit" ? (byte)1 : (byte)0;
            await using var client = await policyConnection.ConnectAsync(p, env, ct);
            await client.SetPluginVerificationLevelAsync(level, p.GetValue(policyTenant), ct: ct);
            await env.Out.WriteLineAsync($"verification level {p.GetValue(policyLevel)}");
            return ExitOk;
        }));
        plugins.Add(policy);
        return plugins;
    }

    private static Command BuildPluginState(CliEnvironment env, bool enable)
    {
        var connection = new ConnectionOptions();
        var id = new Argument<string>("id") { Description = "Plugin id." };
        var version = new Argument<string>("version") { Description = "Plugin version." };
        var tenant = TenantOption();
        var command = new Command(enable ? "enable" : "disable", enable ? "Enable a plugin version." : "Disable a plugin version.") { id, version, tenant };
        connection.AddTo(command);
        command.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await connection.ConnectAsync(p, env, ct);
            var v = await client.SetPluginEnabledAsync(p.GetValue(id)!, p.GetValue(version)!, enable, p.GetValue(tenant), ct: ct);
            await env.Out.WriteLineAsync($"{v.Id} {v.Version} {(v.State == 0 ? "enabled" : "disabled")}");
            return ExitOk;
        }));
        return command;
    }

    private static Command BuildTrust(CliEnvironment env)
    {
        var trust = new Command("trust", "Trust stores: the signing keys whose signatures plugin uploads are checked against.");
        var global = () => new Option<bool>("--global") { Description = "The global trust store (platform admins change it)." };

        var addConnection = new ConnectionOptions();
        var addPub = new Option<string>("--pub") { Description = "The public key file (from keygen).", Required = true };
        var addNotBefore = new Option<string?>("--not-before") { Description = "Valid from (ISO 8601 or a time ago; default: now)." };
        var addNotAfter = new Option<string?>("--not-after") { Description = "Valid until (ISO 8601; default: no end)." };
        var addGlobal = global();
        var addTenant = TenantOption();
        var add = new Command("add", "Trust a signing key.") { addPub, addNotBefore, addNotAfter, addGlobal, addTenant };
        addConnection.AddTo(add);
        add.SetAction((p, ct) => Guard(env, async () =>
        {
            var now = DateTimeOffset.UtcNow;
            var publicKey = ReadKeyFile(env, p.GetValue(addPub)!);
            long notBefore = p.GetValue(addNotBefore) is { } nb ? ParseInstant("--not-before", nb, now).ToUnixTimeMilliseconds() : now.ToUnixTimeMilliseconds();
            long notAfter = p.GetValue(addNotAfter) is { } na ? ParseInstant("--not-after", na, now).ToUnixTimeMilliseconds() : 0;
            if (notAfter != 0 && notAfter <= notBefore)
                throw new UsageException("--not-after is not later than --not-before.");
            await using var client = await addConnection.ConnectAsync(p, env, ct);
            var key = await client.AddTrustedKeyAsync(publicKey, notBefore, notAfter, p.GetValue(addGlobal), p.GetValue(addTenant), ct: ct);
            await env.Out.WriteLineAsync($"trusted key {key.KeyId}{(key.Global ? " (global)" : "")}");
            return ExitOk;
        }));
        trust.Add(add);

        var listConnection = new ConnectionOptions();
        var listGlobal = global();
        var listTenant = TenantOption();
        var list = new Command("list", "List trusted keys.") { listGlobal, listTenant };
        listConnection.AddTo(list);
        list.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await listConnection.ConnectAsync(p, env, ct);
            var keys = await client.ListTrustedKeysAsync(p.GetValue(listGlobal), p.GetValue(listTenant), ct: ct);
            await WriteTableAsync(env.Out, ["KEY", "NOT-BEFORE", "NOT-AFTER", "REVOKED", "ADDED-BY"], keys.Select(k => new[]
            {
                k.KeyId, FormatTime(DateTimeOffset.FromUnixTimeMilliseconds(k.NotBeforeMs)),
                k.NotAfterMs == 0 ? "-" : FormatTime(DateTimeOffset.FromUnixTimeMilliseconds(k.NotAfterMs)),
                k.RevokedAtMs == 0 ? "-" : FormatTime(DateTimeOffset.FromUnixTimeMilliseconds(k.RevokedAtMs)), k.AddedBy,
            }));
            return ExitOk;
        }));
        trust.Add(list);

        var revokeConnection = new ConnectionOptions();
        var revokeKey = new Argument<string>("key-id") { Description = "The key id." };
        var revokeGlobal = global();
        var revokeTenant = TenantOption();
        var revoke = new Command("revoke", "Revoke a trusted key: uploads signed with it are refused from now on.") { revokeKey, revokeGlobal, revokeTenant };
        revokeConnection.AddTo(revoke);
        revoke.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await revokeConnection.ConnectAsync(p, env, ct);
            var key = await client.RevokeTrustedKeyAsync(p.GetValue(revokeKey)!, p.GetValue(revokeGlobal), p.GetValue(revokeTenant), ct: ct);
            await env.Out.WriteLineAsync($"revoked key {key.KeyId}");
            return ExitOk;
        }));
        trust.Add(revoke);
        return trust;
    }

    private sealed record SignatureFile(string KeyId, string Signature);

    private static (string KeyId, byte[] Bytes) ReadSignatureFile(CliEnvironment env, string path)
    {
        var text = ReadFile(env, path);
        try
        {
            var file = JsonSerializer.Deserialize<SignatureFile>(text, CliJson);
            if (file is null || string.IsNullOrEmpty(file.KeyId) || string.IsNullOrEmpty(file.Signature))
                throw new UsageException($"'{path}' is not a signature file (keyId and signature).");
            return (file.KeyId, Convert.FromBase64String(file.Signature));
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            throw new UsageException($"'{path}' is not a signature file: {e.Message}");
        }
    }

    private static void WriteKeyFile(string path, byte[] key, bool ownerOnly) =>
        WriteBytes(path, Encoding.ASCII.GetBytes(Convert.ToBase64String(key) + "\n"), FileMode.CreateNew, ownerOnly);

    private static byte[] ReadKeyFile(CliEnvironment env, string path)
    {
        try
        {
            var key = Convert.FromBase64String(Encoding.ASCII.GetString(ReadBytes(env, path)).Trim());
            return key.Length == 32 ? key : throw new UsageException($"'{path}' does not hold a 32-byte Ed25519 key.");
        }
        catch (FormatException)
        {
            throw new UsageException($"'{path}' is not a key file (base64 of 32 bytes).");
        }
    }

    // The manifest names the artifact's digest; a mismatch is caught here rather than by the server.
    private static void CheckDigest(byte[] manifest, byte[] artifact)
    {
        string? declared;
        try
        {
            using var doc = JsonDocument.Parse(manifest);
            declared = doc.RootElement.TryGetProperty("artifactDigest", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
        }
        catch (JsonException e)
        {
            throw new UsageException($"The manifest is not valid JSON: {e.Message}");
        }
        var actual = PluginSigning.DigestOf(artifact);
        if (!string.Equals(declared, actual, StringComparison.Ordinal))
            throw new UsageException($"The manifest's artifactDigest ({declared ?? "missing"}) does not match the artifact ({actual}).");
    }

    private static string Text(JsonElement e, string name) => e.TryGetProperty(name, out var v) ? v.ToString() : "";
}
