using System.CommandLine;
using System.Globalization;
using System.Text;

namespace Wayang.Fast.Host;

// `wayang secrets put|get|list|rotate|destroy|history`: the tenant's secrets (protocol-spec/secrets.md). Values are read
// from a file or --value (which shells keep in their history: prefer --from-file) and printed only by `get`.
public static partial class WayangCli
{
    private static Command BuildSecrets(CliEnvironment env)
    {
        var secrets = new Command("secrets", "Secrets of the tenant: put, get, list, rotate, destroy, history.");
        secrets.Add(BuildSecretWrite(env, "put", "Write a new version of a secret (creating it if needed).", rotate: false));
        secrets.Add(BuildSecretWrite(env, "rotate", "Write a new version of an existing secret and announce the rotation to watchers.", rotate: true));

        var getConnection = new ConnectionOptions();
        var getPath = SecretPathArgument();
        var getVersion = new Option<int>("--version") { Description = "Version to read (default: the latest active one)." };
        var getOut = new Option<string?>("--output", "-o") { Description = "Write the value to this file (owner-only) instead of stdout." };
        var getTenant = TenantOption();
        var get = new Command("get", "Print a secret's value (recorded in the audit log).") { getPath, getVersion, getOut, getTenant };
        getConnection.AddTo(get);
        get.SetAction((p, ct) => Guard(env, async () =>
        {
            int version = p.GetValue(getVersion);
            if (version < 0)
                throw new UsageException("--version must not be negative.");
            await using var client = await getConnection.ConnectAsync(p, env, ct);
            var value = await client.GetSecretAsync(p.GetValue(getPath)!, version, p.GetValue(getTenant), ct: ct);
            if (p.GetValue(getOut) is { } output)
            {
                var full = Path.GetFullPath(output, env.WorkingDirectory);
                WriteBytes(full, value.Value, FileMode.Create, ownerOnly: true);
                await env.Error.WriteLineAsync($"version {Num(value.Version)} written to {full}");
            }
            else
            {
                await env.Out.WriteLineAsync(Encoding.UTF8.GetString(value.Value));
            }
            return ExitOk;
        }));
        secrets.Add(get);

        var listConnection = new ConnectionOptions();
        var listPrefix = new Option<string?>("--prefix") { Description = "Only paths starting with this." };
        var listTenant = TenantOption();
        var listJson = JsonFlag();
        var list = new Command("list", "List secrets with their current version and policy; never values.") { listPrefix, listTenant, listJson };
        listConnection.AddTo(list);
        list.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await listConnection.ConnectAsync(p, env, ct);
            var all = await client.ListSecretsAsync(p.GetValue(listPrefix) ?? "", p.GetValue(listTenant), ct: ct);
            if (p.GetValue(listJson))
            {
                await WriteJsonAsync(env, all);
                return ExitOk;
            }
            await WriteTableAsync(env.Out, ["PATH", "VERSION", "VERSIONS", "MAX", "ROTATE-DAYS", "UPDATED"], all.OrderBy(s => s.Path, StringComparer.Ordinal).Select(s => new[]
            {
                s.Path, Num(s.CurrentVersion), Num(s.Versions.Length), Num(s.MaxVersions), s.RotateEveryDays == 0 ? "-" : Num(s.RotateEveryDays),
                FormatTime(DateTimeOffset.FromUnixTimeMilliseconds(s.UpdatedAtMs)),
            }));
            return ExitOk;
        }));
        secrets.Add(list);

        var destroyConnection = new ConnectionOptions();
        var destroyPath = SecretPathArgument();
        var destroyVersion = new Option<int>("--version") { Description = "Destroy only this version (default: every version and the secret)." };
        var destroyTenant = TenantOption();
        var destroy = new Command("destroy", "Erase a secret version's ciphertext for good (or the whole secret).") { destroyPath, destroyVersion, destroyTenant };
        destroyConnection.AddTo(destroy);
        destroy.SetAction((p, ct) => Guard(env, async () =>
        {
            int version = p.GetValue(destroyVersion);
            if (version < 0)
                throw new UsageException("--version must not be negative.");
            await using var client = await destroyConnection.ConnectAsync(p, env, ct);
            await client.DestroySecretAsync(p.GetValue(destroyPath)!, version, p.GetValue(destroyTenant), ct: ct);
            await env.Out.WriteLineAsync(version == 0 ? $"destroyed {p.GetValue(destroyPath)}" : $"destroyed {p.GetValue(destroyPath)} version {Num(version)}");
            return ExitOk;
        }));
        secrets.Add(destroy);

        var historyConnection = new ConnectionOptions();
        var historyPath = SecretPathArgument();
        var historyTenant = TenantOption();
        var historyJson = JsonFlag();
        var history = new Command("history", "Every version of a secret: state, time, writer, key-encryption key; never values.") { historyPath, historyTenant, historyJson };
        historyConnection.AddTo(history);
        history.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await historyConnection.ConnectAsync(p, env, ct);
            var meta = await client.GetSecretHistoryAsync(p.GetValue(historyPath)!, p.GetValue(historyTenant), ct: ct);
            if (p.GetValue(historyJson))
            {
                await WriteJsonAsync(env, meta);
                return ExitOk;
            }
            await WriteTableAsync(env.Out, ["VERSION", "STATE", "CREATED", "BY", "PROVIDER", "KEY"], meta.Versions.Select(v => new[]
            {
                Num(v.Version), SecretStateName(v.State), FormatTime(DateTimeOffset.FromUnixTimeMilliseconds(v.CreatedAtMs)), v.CreatedBy, v.Provider, v.KeyId,
            }));
            if (meta.LastRotationFailure.Length > 0)
                await env.Out.WriteLineAsync($"last rotation failure ({FormatTime(DateTimeOffset.FromUnixTimeMilliseconds(meta.LastRotationFailureAtMs))}): {meta.LastRotationFailure}");
            return ExitOk;
        }));
        secrets.Add(history);
        return secrets;
    }

    private static Command BuildSecretWrite(CliEnvironment env, string name, string description, bool rotate)
    {
        var connection = new ConnectionOptions();
        var path = SecretPathArgument();
        var value = new Option<string?>("--value") { Description = "The value as text (kept in shell history: prefer --from-file)." };
        var fromFile = new Option<string?>("--from-file", "-f") { Description = "Read the value's bytes from this file." };
        var cas = new Option<long?>("--cas") { Description = "Check-and-set: 0 = only if the secret does not exist, n = only if its current version is n." };
        var tenant = TenantOption();
        var command = new Command(name, description) { path, value, fromFile, cas, tenant };
        connection.AddTo(command);
        command.SetAction((p, ct) => Guard(env, async () =>
        {
            var bytes = (p.GetValue(value), p.GetValue(fromFile)) switch
            {
                ({ } text, null) => Encoding.UTF8.GetBytes(text),
                (null, { } file) => ReadBytes(env, file),
                _ => throw new UsageException("Give the value with exactly one of --value and --from-file."),
            };
            if (p.GetValue(cas) is < 0)
                throw new UsageException("--cas must not be negative.");
            await using var client = await connection.ConnectAsync(p, env, ct);
            var written = rotate
                ? await client.RotateSecretAsync(p.GetValue(path)!, bytes, p.GetValue(cas), p.GetValue(tenant), ct: ct)
                : await client.PutSecretAsync(p.GetValue(path)!, bytes, p.GetValue(cas), p.GetValue(tenant), ct: ct);
            await env.Out.WriteLineAsync($"{(rotate ? "rotated" : "wrote")} {written.Path} version {Num(written.Version)}");
            return ExitOk;
        }));
        return command;
    }

    private static Argument<string> SecretPathArgument() => new("path") { Description = "Secret path, such as payments/stripe/api-key." };

    private static string SecretStateName(byte state) => state switch
    {
        0 => "ACTIVE",
        1 => "DISABLED",
        2 => "DESTROYED",
        3 => "PRUNED",
        _ => state.ToString(CultureInfo.InvariantCulture),
    };
}
