using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Wayang.Fast.Client;
using Wayang.Fast.Common.Audit;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Host;

// The control plane's commands: defs (workflow and agent definitions with their lifecycle), roles, bindings, audit.
// As with the execution commands, arguments are checked before connecting, so a usage error never needs a server.
public static partial class WayangCli
{
    // Built on first use: the order of static initializers across the partial class's files is not defined.
    private static JsonSerializerOptions CliJsonLine => field ??= new JsonSerializerOptions(CliJson) { WriteIndented = false };

    // ---- defs ----

    private static Command BuildDefinitions(CliEnvironment env)
    {
        var defs = new Command("defs", "Workflow and agent definitions: validate, create, publish, archive, list, show.");

        var validateConnection = new ConnectionOptions();
        var validateFile = new Argument<string>("file") { Description = "The definition as a JSON file." };
        var validateKind = KindOption();
        var validate = new Command("validate", "Check a definition file against its schema and rules; stores nothing. Exit 1 when invalid.")
        {
            validateFile, validateKind,
        };
        validateConnection.AddTo(validate);
        validate.SetAction((p, ct) => Guard(env, async () =>
        {
            var json = ReadFile(env, p.GetValue(validateFile)!);
            var kind = FileKind(p.GetValue(validateKind), json);
            await using var client = await validateConnection.ConnectAsync(p, env, ct);
            var result = await client.ValidateDefinitionAsync(kind, json, ct: ct);
            if (result.Valid)
            {
                await env.Out.WriteLineAsync("valid");
                return ExitOk;
            }
            foreach (var v in result.Violations)
                await env.Out.WriteLineAsync(FormatViolation(v));
            return ExitUsage;
        }));
        defs.Add(validate);

        var createConnection = new ConnectionOptions();
        var createFile = new Argument<string>("file") { Description = "The definition as a JSON file." };
        var createKind = KindOption();
        var createJson = JsonFlag();
        var create = new Command("create", "Store a definition as the next version of its id, in DRAFT.") { createFile, createKind, createJson };
        createConnection.AddTo(create);
        create.SetAction((p, ct) => Guard(env, async () =>
        {
            var json = ReadFile(env, p.GetValue(createFile)!);
            var kind = FileKind(p.GetValue(createKind), json);
            await using var client = await createConnection.ConnectAsync(p, env, ct);
            DefinitionVersion created;
            try
            {
                created = await client.CreateDefinitionAsync(kind, json, ct: ct);
            }
            catch (WayangException e) when (DefinitionViolation.FromError(e) is { Count: > 0 } violations)
            {
                // The refusal carries every violation; list them the way `defs validate` does.
                await env.Error.WriteLineAsync($"error {e.Error.Name}: {e.Error.Message}");
                foreach (var v in violations)
                    await env.Error.WriteLineAsync(FormatViolation(v));
                return ExitServerError;
            }
            if (p.GetValue(createJson))
                await WriteJsonAsync(env, created);
            else
                await env.Out.WriteLineAsync($"created {DefinitionKinds.NameOf(created.Kind)} {created.Id} version {Num(created.Version)} ({DefinitionLifecycle.NameOf(created.State)})");
            return ExitOk;
        }));
        defs.Add(create);

        defs.Add(BuildTransition(env, "transition", "Move a stored version to VALIDATED, PUBLISHED or ARCHIVED.", fixedTarget: null));
        defs.Add(BuildTransition(env, "publish", "Publish a stored version (a DRAFT passes through VALIDATED): runnable and immutable.",
            DefinitionState.Published));
        defs.Add(BuildTransition(env, "archive", "Archive a stored version: kept for history, no longer runnable.", DefinitionState.Archived));

        var listConnection = new ConnectionOptions();
        var listKind = KindOption("Only this kind (default: both).");
        var listJson = JsonFlag();
        var list = new Command("list", "List the tenant's workflows and agents with their versions' states.") { listKind, listJson };
        listConnection.AddTo(list);
        list.SetAction((p, ct) => Guard(env, async () =>
        {
            var kind = ParseKind(p.GetValue(listKind));
            await using var client = await listConnection.ConnectAsync(p, env, ct);
            var all = await client.ListDefinitionsAsync(kind, ct: ct);
            if (p.GetValue(listJson))
            {
                await WriteJsonAsync(env, all);
                return ExitOk;
            }
            await WriteTableAsync(env.Out, ["KIND", "ID", "LATEST", "PUBLISHED", "STATES", "UPDATED"], all.Select(d => new[]
            {
                DefinitionKinds.NameOf(d.Kind), d.Id, Num(d.LatestVersion), d.PublishedVersion is { } pv ? Num(pv) : "-",
                string.Join(',', d.Versions.Select(v => Num(v.Version) + ":" + DefinitionLifecycle.NameOf(v.State))), FormatTime(d.UpdatedAt),
            }));
            return ExitOk;
        }));
        defs.Add(list);

        var showConnection = new ConnectionOptions();
        var showId = new Argument<string>("id") { Description = "Definition id." };
        var showVersion = new Option<int>("--version") { Description = "Version to show (default: the newest, whatever its state)." };
        var showKind = KindOption("workflow or agent (default: whichever kind has this id).");
        var showJson = JsonFlag();
        var show = new Command("show", "Show one version: its state and times, then the definition.") { showId, showVersion, showKind, showJson };
        showConnection.AddTo(show);
        show.SetAction((p, ct) => Guard(env, async () =>
        {
            int version = p.GetValue(showVersion);
            if (version < 0)
                throw new UsageException("--version must be positive.");
            var kind = ParseKind(p.GetValue(showKind));
            var id = p.GetValue(showId)!;
            await using var client = await showConnection.ConnectAsync(p, env, ct);
            var definition = await client.GetDefinitionAsync(kind ?? await ResolveKindAsync(client, id, ct), id, version, ct: ct);
            if (p.GetValue(showJson))
            {
                await WriteJsonAsync(env, definition);
                return ExitOk;
            }
            await env.Out.WriteLineAsync($"kind:    {DefinitionKinds.NameOf(definition.Kind)}");
            await env.Out.WriteLineAsync($"id:      {definition.Id}");
            await env.Out.WriteLineAsync($"version: {Num(definition.Version)}");
            await env.Out.WriteLineAsync($"state:   {DefinitionLifecycle.NameOf(definition.State)}");
            await env.Out.WriteLineAsync($"created: {FormatTime(definition.CreatedAt)}");
            await env.Out.WriteLineAsync($"updated: {FormatTime(definition.UpdatedAt)}");
            await env.Out.WriteLineAsync();
            await env.Out.WriteLineAsync(Indent(definition.DefinitionJson));
            return ExitOk;
        }));
        defs.Add(show);
        return defs;
    }

    private static Command BuildTransition(CliEnvironment env, string name, string description, DefinitionState? fixedTarget)
    {
        var connection = new ConnectionOptions();
        var id = new Argument<string>("id") { Description = "Definition id." };
        var version = new Option<int>("--version") { Description = "The stored version to move.", Required = true };
        var kind = KindOption("workflow or agent (default: whichever kind has this id).");
        var to = new Option<string>("--to") { Description = "Target state: validated, published or archived.", Required = true };
        to.AcceptOnlyFromAmong("validated", "published", "archived");
        var command = new Command(name, description) { id, version, kind };
        if (fixedTarget is null)
            command.Add(to);
        connection.AddTo(command);
        command.SetAction((p, ct) => Guard(env, async () =>
        {
            int v = p.GetValue(version);
            if (v < 1)
                throw new UsageException("--version must be positive.");
            var target = fixedTarget ?? p.GetValue(to) switch
            {
                "validated" => DefinitionState.Validated,
                "published" => DefinitionState.Published,
                _ => DefinitionState.Archived,
            };
            var k = ParseKind(p.GetValue(kind));
            var definitionId = p.GetValue(id)!;
            await using var client = await connection.ConnectAsync(p, env, ct);
            var moved = await client.TransitionDefinitionAsync(k ?? await ResolveKindAsync(client, definitionId, ct), definitionId, v, target, ct: ct);
            await env.Out.WriteLineAsync($"{DefinitionKinds.NameOf(moved.Kind)} {moved.Id} version {Num(moved.Version)}: {DefinitionLifecycle.NameOf(moved.State)}");
            return ExitOk;
        }));
        return command;
    }

    private static Option<string?> KindOption(string? description = null)
    {
        var kind = new Option<string?>("--kind")
        {
            Description = description ?? "workflow or agent (default: a top-level \"nodes\" property means workflow, otherwise agent).",
        };
        kind.AcceptOnlyFromAmong("workflow", "agent");
        return kind;
    }

    internal static DefinitionKind? ParseKind(string? value) => value switch
    {
        null => null,
        "workflow" => DefinitionKind.Workflow,
        "agent" => DefinitionKind.Agent,
        _ => throw new UsageException($"Unknown --kind '{value}': expected workflow or agent."),
    };

    // --kind wins; otherwise a JSON object with a top-level "nodes" property is a workflow, anything else an agent.
    internal static DefinitionKind FileKind(string? kind, string json)
    {
        if (ParseKind(kind) is { } explicitKind)
            return explicitKind;
        try
        {
            using var document = JsonDocument.Parse(json);
            return document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("nodes", out _)
                ? DefinitionKind.Workflow
                : DefinitionKind.Agent;
        }
        catch (JsonException e)
        {
            throw new UsageException($"The file is not valid JSON ({e.Message}); give --kind to have the server report it.");
        }
    }

    // For commands that name a stored id without --kind: the kind that has it. The same id under both kinds is ambiguous;
    // an id under neither goes to the server as a workflow, so the answer is the server's own not-found error.
    private static async Task<DefinitionKind> ResolveKindAsync(WayangClient client, string id, CancellationToken ct)
    {
        var kinds = (await client.ListDefinitionsAsync(ct: ct)).Where(d => d.Id == id).Select(d => d.Kind).Distinct().ToList();
        return kinds.Count switch
        {
            0 => DefinitionKind.Workflow,
            1 => kinds[0],
            _ => throw new UsageException($"Both a workflow and an agent are called '{id}': give --kind."),
        };
    }

    private static string FormatViolation(DefinitionViolation v) => $"{(v.Pointer.Length == 0 ? "(root)" : v.Pointer)}: {v.Reason}";

    // ---- roles and bindings ----

    private static Command BuildRoles(CliEnvironment env)
    {
        var roles = new Command("roles", "List, create, change and delete a tenant's roles.");

        var listConnection = new ConnectionOptions();
        var listTenant = TenantOption();
        var listJson = JsonFlag();
        var list = new Command("list", "List the built-in and tenant roles with their permissions.") { listTenant, listJson };
        listConnection.AddTo(list);
        list.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await listConnection.ConnectAsync(p, env, ct);
            var all = await client.ListRolesAsync(p.GetValue(listTenant), ct: ct);
            if (p.GetValue(listJson))
            {
                await WriteJsonAsync(env, all);
                return ExitOk;
            }
            await WriteTableAsync(env.Out, ["ROLE", "KIND", "PERMISSIONS"], all.Select(r => new[]
            {
                r.Name, r.BuiltIn ? "built-in" : "tenant", string.Join(',', r.Permissions),
            }));
            return ExitOk;
        }));
        roles.Add(list);

        var putConnection = new ConnectionOptions();
        var putName = new Argument<string>("name") { Description = "Role name (1..64 of a-z 0-9 - _)." };
        var permissions = new Option<string[]>("--permission", "-p")
        {
            Description = "Permission (repeatable), e.g. definitions.read, runs.submit (protocol-spec/permissions.md).",
            Required = true,
            Arity = ArgumentArity.OneOrMore,
        };
        var putTenant = TenantOption();
        var put = new Command("put", "Create a tenant role or replace its permissions (session is always included).") { putName, permissions, putTenant };
        putConnection.AddTo(put);
        put.SetAction((p, ct) => Guard(env, async () =>
        {
            var perms = (p.GetValue(permissions) ?? []).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                .Distinct(StringComparer.Ordinal).ToArray();
            if (perms.Length == 0)
                throw new UsageException("At least one --permission is required.");
            await using var client = await putConnection.ConnectAsync(p, env, ct);
            var role = await client.PutRoleAsync(p.GetValue(putName)!, perms, p.GetValue(putTenant), ct: ct);
            await env.Out.WriteLineAsync($"role {role.Name} (tenant {role.TenantId}): {string.Join(',', role.Permissions)}");
            return ExitOk;
        }));
        roles.Add(put);

        var deleteConnection = new ConnectionOptions();
        var deleteName = new Argument<string>("name") { Description = "Role name." };
        var deleteTenant = TenantOption();
        var delete = new Command("delete", "Delete a tenant role (refused while a key is bound to it).") { deleteName, deleteTenant };
        deleteConnection.AddTo(delete);
        delete.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await deleteConnection.ConnectAsync(p, env, ct);
            var role = await client.DeleteRoleAsync(p.GetValue(deleteName)!, p.GetValue(deleteTenant), ct: ct);
            await env.Out.WriteLineAsync($"deleted role {role.Name} (tenant {role.TenantId})");
            return ExitOk;
        }));
        roles.Add(delete);
        return roles;
    }

    private static Command BuildBindings(CliEnvironment env)
    {
        var bindings = new Command("bindings", "Which roles each API key holds: list, grant, revoke.");

        var listConnection = new ConnectionOptions();
        var listTenant = TenantOption();
        var listJson = JsonFlag();
        var list = new Command("list", "List the tenant's keys with their roles.") { listTenant, listJson };
        listConnection.AddTo(list);
        list.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await listConnection.ConnectAsync(p, env, ct);
            var all = await client.ListBindingsAsync(p.GetValue(listTenant), ct: ct);
            if (p.GetValue(listJson))
            {
                await WriteJsonAsync(env, all);
                return ExitOk;
            }
            await WriteTableAsync(env.Out, ["KEY ID", "NAME", "ROLES", "STATUS"], all.Select(b => new[]
            {
                b.KeyId, b.KeyName, string.Join(',', b.Roles), b.Revoked ? "revoked" : "active",
            }));
            return ExitOk;
        }));
        bindings.Add(list);

        bindings.Add(BuildBindingChange(env, grant: true));
        bindings.Add(BuildBindingChange(env, grant: false));
        return bindings;
    }

    private static Command BuildBindingChange(CliEnvironment env, bool grant)
    {
        var connection = new ConnectionOptions();
        var keyId = new Argument<string>("keyId") { Description = "Id of the API key." };
        var role = new Argument<string>("role") { Description = "Role name." };
        var command = grant
            ? new Command("grant", "Bind a role to a key; its live connections get it at their next request.") { keyId, role }
            : new Command("revoke", "Unbind a role from a key; its live connections lose it at their next request.") { keyId, role };
        connection.AddTo(command);
        command.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await connection.ConnectAsync(p, env, ct);
            var key = grant
                ? await client.GrantRoleAsync(p.GetValue(keyId)!, p.GetValue(role)!, ct: ct)
                : await client.RevokeRoleAsync(p.GetValue(keyId)!, p.GetValue(role)!, ct: ct);
            await env.Out.WriteLineAsync($"key {key.KeyId} ({key.Name}) roles: {string.Join(',', key.Roles)}");
            return ExitOk;
        }));
        return command;
    }

    private static Option<string?> TenantOption() =>
        new("--tenant", "-t") { Description = "Tenant (default: the caller's own; another tenant needs cross-tenant)." };

    // ---- audit ----

    private static Command BuildAudit(CliEnvironment env)
    {
        var audit = new Command("audit", "The tamper-evident audit log: query, verify the hash chain, show the head.");

        var queryConnection = new ConnectionOptions();
        var filter = new AuditFilterOptions();
        var all = new Option<bool>("--all") { Description = "Follow the cursor through every page (--limit is then the page size)." };
        var queryJson = new Option<bool>("--json") { Description = "Print one JSON object per record (JSON lines) instead of a table." };
        var query = new Command("query", "List audit records, oldest first, one page at a time.") { all, queryJson };
        filter.AddTo(query);
        queryConnection.AddTo(query);
        query.SetAction((p, ct) => Guard(env, async () =>
        {
            var f = filter.Read(p, DateTimeOffset.UtcNow);
            bool json = p.GetValue(queryJson);
            await using var client = await queryConnection.ConnectAsync(p, env, ct);
            var records = new List<AuditEntry>();
            long next = 0;
            if (p.GetValue(all))
            {
                await foreach (var record in client.ReadAuditAsync(f, ct: ct))
                {
                    // JSON lines stream as they come; a table needs every row first for its widths.
                    if (json)
                        await env.Out.WriteLineAsync(JsonSerializer.Serialize(record, CliJsonLine));
                    else
                        records.Add(record);
                }
            }
            else
            {
                var page = await client.QueryAuditAsync(f, ct: ct);
                records.AddRange(page.Records);
                next = page.NextAfterSequence;
                if (json)
                {
                    foreach (var record in records)
                        await env.Out.WriteLineAsync(JsonSerializer.Serialize(record, CliJsonLine));
                    records.Clear();
                }
            }
            if (!json)
            {
                await WriteTableAsync(env.Out, ["SEQ", "TIME", "TENANT", "PRINCIPAL", "OPERATION", "OUTCOME", "RESOURCE", "REASON"], records.Select(r => new[]
                {
                    r.Sequence.ToString(CultureInfo.InvariantCulture), FormatTime(r.Time), r.TenantId, r.PrincipalId,
                    r.Operation.Length > 0 ? r.Operation : OpcodeName(r.Opcode), OutcomeName(r.Outcome), r.Resource, r.Reason ?? "",
                }));
            }
            // On stderr, so stdout stays parseable (JSON lines) when there is more.
            if (next != 0)
                await env.Error.WriteLineAsync($"more records: --after {next.ToString(CultureInfo.InvariantCulture)} (or --all)");
            return ExitOk;
        }));
        audit.Add(query);

        var verifyConnection = new ConnectionOptions();
        var verifyJson = JsonFlag();
        var verify = new Command("verify", "Check the whole hash chain on the server. Exit 1 when a link is broken.") { verifyJson };
        verifyConnection.AddTo(verify);
        verify.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await verifyConnection.ConnectAsync(p, env, ct);
            var result = await client.VerifyAuditAsync(ct: ct);
            if (p.GetValue(verifyJson))
                await WriteJsonAsync(env, result);
            else if (result.Ok)
                await env.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"ok: {result.RecordsChecked} records, head {result.HeadSequence} {result.HeadHash}"));
            else
                await env.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"broken at sequence {result.FirstBrokenSequence ?? 0}: {result.Reason}"));
            return result.Ok ? ExitOk : ExitUsage;
        }));
        audit.Add(verify);

        var headConnection = new ConnectionOptions();
        var headJson = JsonFlag();
        var head = new Command("head", "Print the newest record's sequence and hash (anchor them outside the server).") { headJson };
        headConnection.AddTo(head);
        head.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await headConnection.ConnectAsync(p, env, ct);
            var h = await client.GetAuditHeadAsync(ct: ct);
            if (p.GetValue(headJson))
                await WriteJsonAsync(env, h);
            else
                await env.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"sequence: {h.Sequence}{Environment.NewLine}hash:     {h.Hash}"));
            return ExitOk;
        }));
        audit.Add(head);
        return audit;
    }

    // NAME (as in protocol-spec/opcodes.md, any case) or a hex value 0xNNNN.
    internal static Opcode ParseOpcode(string value)
    {
        var v = value.Trim();
        if (v.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            if (ushort.TryParse(v.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ushort number) && number != 0)
                return (Opcode)number;
        }
        else if (v.Length > 0 && char.IsLetter(v[0]) && Enum.TryParse<Opcode>(v, ignoreCase: true, out var named) && named != Opcode.None)
        {
            return named;
        }
        throw new UsageException($"Bad --opcode '{value}': expected an opcode name such as RunSubmit, or 0xNNNN.");
    }

    internal static AuditOutcome ParseOutcome(string value) => value.Trim().ToLowerInvariant() switch
    {
        "allowed" => AuditOutcome.Allowed,
        "denied" => AuditOutcome.Denied,
        "failed" => AuditOutcome.Failed,
        _ => throw new UsageException($"Bad --outcome '{value}': expected allowed, denied or failed."),
    };

    // Unix milliseconds (all digits), or what ParseInstant takes: ISO 8601 or a time ago (30m, 12h, 7d).
    internal static DateTimeOffset ParseAuditInstant(string option, string value, DateTimeOffset now)
    {
        var v = value.Trim();
        if (v.Length > 0 && v.All(char.IsAsciiDigit))
        {
            if (long.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out long ms) && ms <= DateTimeOffset.MaxValue.ToUnixTimeMilliseconds())
                return DateTimeOffset.FromUnixTimeMilliseconds(ms);
            throw new UsageException($"Bad {option} '{value}': out of range.");
        }
        return ParseInstant(option, v, now);
    }

    private static string OpcodeName(Opcode opcode) =>
        Enum.IsDefined(opcode) ? opcode.ToString() : "0x" + ((ushort)opcode).ToString("x4", CultureInfo.InvariantCulture);

    private static string OutcomeName(AuditOutcome outcome) => outcome switch
    {
        AuditOutcome.Allowed => "ALLOWED",
        AuditOutcome.Denied => "DENIED",
        AuditOutcome.Failed => "FAILED",
        _ => ((byte)outcome).ToString(CultureInfo.InvariantCulture),
    };

    // --tenant, --principal, --opcode, --outcome, --since/--from, --until/--to, --after, --limit of `audit query`.
    internal sealed class AuditFilterOptions
    {
        private readonly Option<string?> _tenant = new("--tenant", "-t") { Description = "Tenant (default: the caller's own; * = every tenant, platform-admin)." };
        private readonly Option<string?> _principal = new("--principal") { Description = "Only this principal (API key id or executor id)." };
        private readonly Option<string?> _opcode = new("--opcode") { Description = "Only this opcode: a name (RunSubmit) or 0xNNNN." };
        private readonly Option<string?> _outcome = new("--outcome") { Description = "Only this outcome: allowed, denied or failed." };
        private readonly Option<string?> _since = new("--since", "--from") { Description = "At or after: ISO 8601, Unix ms, or a time ago (30m, 12h, 7d)." };
        private readonly Option<string?> _until = new("--until", "--to") { Description = "Before: ISO 8601, Unix ms, or a time ago." };
        private readonly Option<long> _after = new("--after") { Description = "Records after this sequence (the paging cursor)." };
        private readonly Option<int> _limit = new("--limit", "-n") { Description = "Records per page (default 100, at most 1000)." };

        public void AddTo(Command command)
        {
            command.Add(_tenant);
            command.Add(_principal);
            command.Add(_opcode);
            command.Add(_outcome);
            command.Add(_since);
            command.Add(_until);
            command.Add(_after);
            command.Add(_limit);
        }

        public AuditFilter Read(ParseResult p, DateTimeOffset now)
        {
            int limit = p.GetValue(_limit);
            if (limit is < 0 or > 1000)
                throw new UsageException("--limit must be 1..1000.");
            long after = p.GetValue(_after);
            if (after < 0)
                throw new UsageException("--after must not be negative.");
            var from = p.GetValue(_since) is { } since ? ParseAuditInstant("--since", since, now) : (DateTimeOffset?)null;
            var to = p.GetValue(_until) is { } until ? ParseAuditInstant("--until", until, now) : (DateTimeOffset?)null;
            if (from is not null && to is not null && from >= to)
                throw new UsageException("--since is not earlier than --until.");
            return new AuditFilter
            {
                TenantId = Empty(p.GetValue(_tenant)),
                PrincipalId = Empty(p.GetValue(_principal)),
                Opcode = p.GetValue(_opcode) is { } op ? ParseOpcode(op) : null,
                Outcome = p.GetValue(_outcome) is { } outcome ? ParseOutcome(outcome) : null,
                From = from,
                To = to,
                AfterSequence = after,
                Limit = limit,
            };
        }

        private static string? Empty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
    }
}
