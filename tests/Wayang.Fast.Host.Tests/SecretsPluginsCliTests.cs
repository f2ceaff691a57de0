using System.Text;
using Wayang.Fast.Control.Plugins;

namespace Wayang.Fast.Host.Tests;

// `wayang secrets` and `wayang plugins` against a real in-process server.
public sealed class SecretsPluginsCliTests : IAsyncLifetime
{
    private CliTenantServer _shop = null!;
    private Dictionary<string, string?> _admin = null!, _dev = null!;

    public async Task InitializeAsync()
    {
        _shop = await CliTenantServer.StartAsync(("tenant-admin", "boss"), ("developer", "dev"));
        (_admin, _dev) = (_shop.As("tenant-admin"), _shop.As("developer"));
    }

    public async Task DisposeAsync() => await _shop.DisposeAsync();

    private string Path_(string name) => Path.Combine(_shop.DataPath, name);

    private static async Task<CliRun> OkAsync(Dictionary<string, string?> who, params string[] args)
    {
        var (code, run) = await CliRun.ExecAsync(who, args);
        Assert.True(code == 0, $"{string.Join(' ', args)} exited {code}: {run.StdOut}{run.StdErr}");
        return run;
    }

    [Fact]
    public async Task Secrets_put_get_rotate_list_history_and_destroy()
    {
        File.WriteAllText(Path_("v1.txt"), "s3cr3t-one");
        var run = await OkAsync(_dev, "secrets", "put", "db/password", "--from-file", Path_("v1.txt"), "--cas", "0");
        Assert.Contains("wrote db/password version 1", run.StdOut, StringComparison.Ordinal);
        run = await OkAsync(_dev, "secrets", "rotate", "db/password", "--value", "s3cr3t-two");
        Assert.Contains("rotated db/password version 2", run.StdOut, StringComparison.Ordinal);

        Assert.Equal("s3cr3t-two", (await OkAsync(_dev, "secrets", "get", "db/password")).StdOut.Trim());
        Assert.Equal("s3cr3t-one", (await OkAsync(_dev, "secrets", "get", "db/password", "--version", "1")).StdOut.Trim());
        await OkAsync(_dev, "secrets", "get", "db/password", "-o", Path_("out.bin"));
        Assert.Equal("s3cr3t-two", File.ReadAllText(Path_("out.bin")));
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path_("out.bin")));

        var list = await OkAsync(_dev, "secrets", "list");
        Assert.Contains("db/password", list.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3t", list.StdOut, StringComparison.Ordinal);
        var history = await OkAsync(_dev, "secrets", "history", "db/password");
        Assert.Contains("ACTIVE", history.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3t", history.StdOut, StringComparison.Ordinal);

        // A conflicting check-and-set and a developer's destroy: stable codes, exit 2.
        var (code, conflict) = await CliRun.ExecAsync(_dev, "secrets", "put", "db/password", "--value", "x", "--cas", "1");
        Assert.Equal(WayangCli.ExitServerError, code);
        Assert.StartsWith("error SECRET_VERSION_CONFLICT", conflict.StdErr, StringComparison.Ordinal);
        (code, var denied) = await CliRun.ExecAsync(_dev, "secrets", "destroy", "db/password");
        Assert.Equal(WayangCli.ExitServerError, code);
        Assert.StartsWith("error PERMISSION_DENIED", denied.StdErr, StringComparison.Ordinal);

        await OkAsync(_admin, "secrets", "destroy", "db/password", "--version", "1");
        (code, var gone) = await CliRun.ExecAsync(_dev, "secrets", "get", "db/password", "--version", "1");
        Assert.Equal(WayangCli.ExitServerError, code);
        Assert.StartsWith("error SECRET_VERSION_UNAVAILABLE", gone.StdErr, StringComparison.Ordinal);

        (code, var usage) = await CliRun.ExecAsync(_dev, "secrets", "put", "db/x");
        Assert.Equal(WayangCli.ExitUsage, code);
        Assert.Contains("--value", usage.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plugins_keygen_sign_verify_trust_upload_list_show_and_disable()
    {
        var artifact = Path_("plugin.bin");
        File.WriteAllBytes(artifact, Encoding.UTF8.GetBytes("artifact bytes"));
        var manifest = Path_("manifest.json");
        File.WriteAllText(manifest, $$"""{"id":"shop.mailer","version":"1.0.0","kind":"executor","serverVersions":">=0.0.0","configSchema":{"type":"object"},"artifactDigest":"{{PluginSigning.DigestOf(File.ReadAllBytes(artifact))}}"}""");

        var keygen = await OkAsync(_dev, "plugins", "keygen", "--out", Path_("signer"));
        Assert.Contains("key id ", keygen.StdOut, StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path_("signer.key")));
        await OkAsync(_dev, "plugins", "sign", "--key", Path_("signer.key"), "--manifest", manifest, "--artifact", artifact);
        Assert.Contains("verified", (await OkAsync(_dev, "plugins", "verify", "--pub", Path_("signer.pub"), "--manifest", manifest, "--artifact", artifact)).StdOut, StringComparison.Ordinal);

        // Not trusted yet: the upload lists the reason.
        var (code, rejected) = await CliRun.ExecAsync(_dev, "plugins", "upload", "--manifest", manifest, "--artifact", artifact);
        Assert.Equal(WayangCli.ExitServerError, code);
        Assert.Contains("PLUGIN_REJECTED", rejected.StdErr, StringComparison.Ordinal);
        Assert.Contains("KEY_UNKNOWN", rejected.StdErr, StringComparison.Ordinal);

        await OkAsync(_admin, "plugins", "trust", "add", "--pub", Path_("signer.pub"));
        Assert.Contains("uploaded shop.mailer 1.0.0", (await OkAsync(_dev, "plugins", "upload", "--manifest", manifest, "--artifact", artifact)).StdOut, StringComparison.Ordinal);
        Assert.Contains("shop.mailer", (await OkAsync(_dev, "plugins", "list")).StdOut, StringComparison.Ordinal);
        Assert.Contains("sha256:", (await OkAsync(_dev, "plugins", "show", "shop.mailer")).StdOut, StringComparison.Ordinal);
        Assert.Contains("disabled", (await OkAsync(_dev, "plugins", "disable", "shop.mailer", "1.0.0")).StdOut, StringComparison.Ordinal);

        // A tampered artifact fails verification locally, before any server is involved.
        File.WriteAllBytes(artifact, Encoding.UTF8.GetBytes("tampered"));
        (code, var bad) = await CliRun.ExecAsync(_dev, "plugins", "verify", "--pub", Path_("signer.pub"), "--manifest", manifest, "--artifact", artifact);
        Assert.Equal(WayangCli.ExitUsage, code);
        Assert.Contains("does not match", bad.StdErr, StringComparison.Ordinal);
    }
}
