using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Wayang.Fast.Client;
using Wayang.Fast.Client.Execution;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;

namespace Wayang.Fast.Host;

// The execution plane's commands: workflows, runs, dlq, queues, scheduling. Arguments are checked before connecting, so a usage
// error never needs a server. --json prints the SDK's records as JSON instead of tables.
public static partial class WayangCli
{
    private static readonly JsonSerializerOptions CliJson = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseUpper) },
    };

    private static Command BuildWorkflows(CliEnvironment env)
    {
        var workflows = new Command("workflows", "Register, show and list workflow definitions.");

        var registerConnection = new ConnectionOptions();
        var file = new Argument<string>("file") { Description = "The definition as a JSON file (see protocol-spec/execution.md)." };
        var registerJson = JsonFlag();
        var register = new Command("register", "Register a workflow definition; the server assigns its next version.") { file, registerJson };
        registerConnection.AddTo(register);
        register.SetAction((p, ct) => Guard(env, async () =>
        {
            var definition = ReadFile(env, p.GetValue(file)!);
            await using var client = await registerConnection.ConnectAsync(p, env, ct);
            var registered = await client.RegisterWorkflowAsync(definition, ct: ct);
            if (p.GetValue(registerJson))
                await WriteJsonAsync(env, registered);
            else
                await env.Out.WriteLineAsync($"registered workflow {registered.WorkflowId} version {registered.Version}");
            return ExitOk;
        }));
        workflows.Add(register);

        var getConnection = new ConnectionOptions();
        var getId = new Argument<string>("id") { Description = "Workflow id." };
        var getVersion = new Option<int>("--version") { Description = "Version to show (default: the latest)." };
        var get = new Command("get", "Print a stored workflow definition as JSON.") { getId, getVersion };
        getConnection.AddTo(get);
        get.SetAction((p, ct) => Guard(env, async () =>
        {
            int version = p.GetValue(getVersion);
            if (version < 0)
                throw new UsageException("--version must be positive.");
            await using var client = await getConnection.ConnectAsync(p, env, ct);
            var json = await client.GetWorkflowAsync(p.GetValue(getId)!, version, ct: ct);
            await env.Out.WriteLineAsync(Indent(json));
            return ExitOk;
        }));
        workflows.Add(get);

        var listConnection = new ConnectionOptions();
        var listJson = JsonFlag();
        var list = new Command("list", "List the tenant's workflows.") { listJson };
        listConnection.AddTo(list);
        list.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await listConnection.ConnectAsync(p, env, ct);
            var all = await client.ListWorkflowsAsync(ct: ct);
            if (p.GetValue(listJson))
            {
                await WriteJsonAsync(env, all);
                return ExitOk;
            }
            await WriteTableAsync(env.Out, ["WORKFLOW", "LATEST", "VERSIONS", "UPDATED"], all.Select(w => new[]
            {
                w.WorkflowId, Num(w.LatestVersion), string.Join(',', w.Versions.Select(Num)), FormatTime(w.UpdatedAt),
            }));
            return ExitOk;
        }));
        workflows.Add(list);
        return workflows;
    }

    private static Command BuildRuns(CliEnvironment env)
    {
        var runs = new Command("runs", "Submit, inspect and control workflow runs.");

        var submitConnection = new ConnectionOptions();
        var workflow = new Argument<string>("workflow") { Description = "Workflow id." };
        var input = new Option<string?>("--input", "-i") { Description = "Run input: a JSON document, or @file to read it from a file." };
        var key = new Option<string?>("--idempotency-key") { Description = "A repeat with the same key returns the original run." };
        var version = new Option<int>("--version") { Description = "Workflow version (default: the latest)." };
        var submitJson = JsonFlag();
        var submit = new Command("submit", "Submit a run of a workflow.") { workflow, input, key, version, submitJson };
        submitConnection.AddTo(submit);
        submit.SetAction((p, ct) => Guard(env, async () =>
        {
            var inputJson = JsonArgument(env, "--input", p.GetValue(input));
            int v = p.GetValue(version);
            if (v < 0)
                throw new UsageException("--version must be positive.");
            await using var client = await submitConnection.ConnectAsync(p, env, ct);
            var submitted = await client.SubmitRunAsync(p.GetValue(workflow)!, inputJson, p.GetValue(key), v, ct: ct);
            if (p.GetValue(submitJson))
            {
                await WriteJsonAsync(env, submitted);
                return ExitOk;
            }
            await env.Out.WriteLineAsync($"run id:   {submitted.RunId}");
            await env.Out.WriteLineAsync($"status:   {RunStatuses.Name(submitted.Status)}");
            await env.Out.WriteLineAsync($"version:  {Num(submitted.Version)}");
            await env.Out.WriteLineAsync($"replayed: {(submitted.Replayed ? "yes (the idempotency key matched an earlier submission)" : "no")}");
            return ExitOk;
        }));
        runs.Add(submit);

        var getConnection = new ConnectionOptions();
        var getRun = new Argument<string>("runId") { Description = "Run id." };
        var events = new Option<bool>("--events") { Description = "Include the run's event history." };
        var getJson = JsonFlag();
        var get = new Command("get", "Show a run: status, nodes, output and optionally its events.") { getRun, events, getJson };
        getConnection.AddTo(get);
        get.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await getConnection.ConnectAsync(p, env, ct);
            var run = await client.GetRunAsync(p.GetValue(getRun)!, p.GetValue(events), ct: ct);
            if (p.GetValue(getJson))
                await WriteJsonAsync(env, run);
            else
                await WriteRunAsync(env.Out, run);
            return ExitOk;
        }));
        runs.Add(get);

        var listConnection = new ConnectionOptions();
        var status = new Option<string?>("--status") { Description = "Only runs in this status (CREATED, PENDING, RUNNING, SUSPENDED, COMPLETED, FAILED, CANCELLED)." };
        var limit = new Option<int>("--limit", "-n") { Description = "At most this many runs (default 100, at most 1000)." };
        var listJson = JsonFlag();
        var list = new Command("list", "List the tenant's runs.") { status, limit, listJson };
        listConnection.AddTo(list);
        list.SetAction((p, ct) => Guard(env, async () =>
        {
            RunStatus? wanted = null;
            if (p.GetValue(status) is { } s)
            {
                if (!RunStatuses.TryParse(s, out var parsed))
                    throw new UsageException($"Unknown --status '{s}': expected CREATED, PENDING, RUNNING, SUSPENDED, COMPLETED, FAILED or CANCELLED.");
                wanted = parsed;
            }
            int n = p.GetValue(limit);
            if (n is < 0 or > 1000)
                throw new UsageException("--limit must be 1..1000.");
            await using var client = await listConnection.ConnectAsync(p, env, ct);
            var all = await client.ListRunsAsync(wanted, n, ct: ct);
            if (p.GetValue(listJson))
            {
                await WriteJsonAsync(env, all);
                return ExitOk;
            }
            await WriteTableAsync(env.Out, ["RUN", "WORKFLOW", "VERSION", "STATUS", "CREATED", "UPDATED"], all.Select(r => new[]
            {
                r.RunId, r.WorkflowId, Num(r.WorkflowVersion), RunStatuses.Name(r.Status), FormatTime(r.CreatedAt), FormatTime(r.UpdatedAt),
            }));
            return ExitOk;
        }));
        runs.Add(list);

        runs.Add(BuildRunControl(env, "cancel", "Cancel a run (its queued and running nodes are cancelled).", withReason: true,
            (client, runId, reason, ct) => client.CancelRunAsync(runId, reason, ct: ct)));
        runs.Add(BuildRunControl(env, "suspend", "Suspend a run: nothing new is dispatched until it is resumed.", withReason: false,
            (client, runId, _, ct) => client.SuspendRunAsync(runId, ct: ct)));
        runs.Add(BuildRunControl(env, "resume", "Resume a suspended run.", withReason: false,
            (client, runId, _, ct) => client.ResumeRunAsync(runId, ct: ct)));

        var signalConnection = new ConnectionOptions();
        var signalRun = new Argument<string>("runId") { Description = "Run id." };
        var signalName = new Argument<string>("name") { Description = "Signal name (a WAIT node's signal)." };
        var payload = new Option<string?>("--payload", "-p") { Description = "Signal payload: a JSON document, or @file." };
        var signal = new Command("signal", "Send a signal to a run; WAIT nodes waiting for it complete with the payload as output.") { signalRun, signalName, payload };
        signalConnection.AddTo(signal);
        signal.SetAction((p, ct) => Guard(env, async () =>
        {
            var payloadJson = JsonArgument(env, "--payload", p.GetValue(payload));
            await using var client = await signalConnection.ConnectAsync(p, env, ct);
            var run = await client.SignalRunAsync(p.GetValue(signalRun)!, p.GetValue(signalName)!, payloadJson, ct: ct);
            await env.Out.WriteLineAsync($"signalled {run.RunId}: {RunStatuses.Name(run.Status)}");
            return ExitOk;
        }));
        runs.Add(signal);
        return runs;
    }

    private static Command BuildRunControl(CliEnvironment env, string name, string description, bool withReason,
        Func<WayangClient, string, string?, CancellationToken, Task<RunSummary>> action)
    {
        var connection = new ConnectionOptions();
        var runId = new Argument<string>("runId") { Description = "Run id." };
        var reason = new Option<string?>("--reason") { Description = "Why (recorded in the run's events)." };
        var command = new Command(name, description) { runId };
        if (withReason)
            command.Add(reason);
        connection.AddTo(command);
        command.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await connection.ConnectAsync(p, env, ct);
            var run = await action(client, p.GetValue(runId)!, withReason ? p.GetValue(reason) : null, ct);
            await env.Out.WriteLineAsync($"{run.RunId}: {RunStatuses.Name(run.Status)}");
            return ExitOk;
        }));
        return command;
    }

    private static Command BuildDlq(CliEnvironment env)
    {
        var dlq = new Command("dlq", "The dead-letter queue: tasks whose attempts ran out.");

        var listConnection = new ConnectionOptions();
        var listFilter = new DlqFilterOptions(withLimit: true);
        var listJson = JsonFlag();
        var list = new Command("list", "List dead-lettered tasks, newest first.") { listJson };
        listFilter.AddTo(list);
        listConnection.AddTo(list);
        list.SetAction((p, ct) => Guard(env, async () =>
        {
            var filter = listFilter.Read(p);
            await using var client = await listConnection.ConnectAsync(p, env, ct);
            var all = await client.ListDeadLettersAsync(filter, ct: ct);
            if (p.GetValue(listJson))
            {
                await WriteJsonAsync(env, all);
                return ExitOk;
            }
            await WriteTableAsync(env.Out, ["ID", "RUN", "WORKFLOW", "NODE", "ATTEMPTS", "ERROR", "DEAD-LETTERED"], all.Select(d => new[]
            {
                d.Id, d.RunId, d.WorkflowId, d.NodeId, Num(d.Attempts.Count), d.LastErrorCode ?? "", FormatTime(d.DeadLetteredAt),
            }));
            return ExitOk;
        }));
        dlq.Add(list);

        var showConnection = new ConnectionOptions();
        var showId = new Argument<string>("id") { Description = "Dead-letter id." };
        var showJson = JsonFlag();
        var show = new Command("show", "Show one dead-lettered task with its input, config and every attempt.") { showId, showJson };
        showConnection.AddTo(show);
        show.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await showConnection.ConnectAsync(p, env, ct);
            var entry = await client.GetDeadLetterAsync(p.GetValue(showId)!, ct: ct);
            if (p.GetValue(showJson))
                await WriteJsonAsync(env, entry);
            else
                await WriteDeadLetterAsync(env.Out, entry);
            return ExitOk;
        }));
        dlq.Add(show);

        dlq.Add(BuildDlqAction(env, replay: true));
        dlq.Add(BuildDlqAction(env, replay: false));
        return dlq;
    }

    private static Command BuildDlqAction(CliEnvironment env, bool replay)
    {
        var connection = new ConnectionOptions();
        var ids = new Argument<string[]>("id") { Description = "Dead-letter ids.", Arity = ArgumentArity.ZeroOrMore };
        var all = new Option<bool>("--all") { Description = "Every entry matching the filters (all of the tenant's entries without filters)." };
        var filter = new DlqFilterOptions(withLimit: false);
        var rate = new Option<int>("--rate") { Description = "Replays per second (default: the server's, 50)." };
        var command = replay
            ? new Command("replay", "Replay dead-lettered tasks: each runs again as a new attempt of its node.") { ids, all, rate }
            : new Command("discard", "Discard dead-lettered tasks for good.") { ids, all };
        filter.AddTo(command);
        connection.AddTo(command);
        command.SetAction((p, ct) => Guard(env, async () =>
        {
            var list = p.GetValue(ids) ?? [];
            bool everything = p.GetValue(all);
            var f = filter.Read(p);
            if (list.Length > 0 && (everything || !f.IsEmpty))
                throw new UsageException("Give dead-letter ids, or --all with optional filters, not both.");
            if (list.Length == 0 && !everything)
                throw new UsageException("Give dead-letter ids, or --all (narrowed by --workflow, --node, --error, --since, --until).");
            int perSecond = replay ? p.GetValue(rate) : 0;
            if (perSecond < 0)
                throw new UsageException("--rate must be positive.");
            await using var client = await connection.ConnectAsync(p, env, ct);
            if (!replay)
            {
                int discarded = list.Length > 0
                    ? await client.DiscardDeadLettersAsync(list, ct: ct)
                    : await client.DiscardDeadLettersAsync(f, all: true, ct: ct);
                await env.Out.WriteLineAsync($"discarded {Num(discarded)}");
                return ExitOk;
            }
            // A paced replay answers when the last entry was handled: no per-call timeout unless --timeout asks for one.
            TimeSpan? timeout = p.GetValue<double?>("--timeout") is null ? Timeout.InfiniteTimeSpan : null;
            var outcomes = list.Length > 0
                ? await client.ReplayDeadLettersAsync(list, perSecond, timeout, ct)
                : await client.ReplayDeadLettersAsync(f, all: true, perSecond, timeout, ct);
            int ok = 0;
            foreach (var o in outcomes)
            {
                if (o.Replayed)
                {
                    ok++;
                    await env.Out.WriteLineAsync($"replayed {o.DeadLetterId} (run {o.RunId})");
                }
                else
                {
                    await env.Out.WriteLineAsync($"not replayed {o.DeadLetterId}: {o.Error?.Name}: {o.Error?.Message}");
                }
            }
            await env.Out.WriteLineAsync($"replayed {Num(ok)} of {Num(outcomes.Count)}");
            return ok == outcomes.Count ? ExitOk : ExitServerError;
        }));
        return command;
    }

    // Tenant weights and limits (platform-admin): `wayang scheduling set <tenant> --weight 3 ...`, `wayang scheduling list`.
    private static Command BuildScheduling(CliEnvironment env)
    {
        var command = new Command("scheduling", "Tenants' fair-share weights and limits (platform-admin).");

        var setConnection = new ConnectionOptions();
        var tenant = new Argument<string>("tenant") { Description = "The tenant." };
        var weight = new Option<int>("--weight") { Description = "Fair-share weight within a priority class, 1..1000.", DefaultValueFactory = _ => 1 };
        var maxConcurrent = new Option<int>("--max-concurrent") { Description = "Most tasks leased at once (0 = no limit)." };
        var maxQueued = new Option<int>("--max-queued") { Description = "Most tasks queued; beyond it TENANT_QUEUE_LIMIT (0 = no limit)." };
        var rate = new Option<int>("--max-submits-per-second") { Description = "Submission rate; beyond it TENANT_RATE_LIMITED (0 = no limit)." };
        var set = new Command("set", "Replace a tenant's weight and limits (durable).") { tenant, weight, maxConcurrent, maxQueued, rate };
        setConnection.AddTo(set);
        set.SetAction((p, ct) => Guard(env, async () =>
        {
            var schedule = new TenantScheduleInfo(p.GetValue(tenant)!, p.GetValue(weight), p.GetValue(maxConcurrent), p.GetValue(maxQueued), p.GetValue(rate));
            if (schedule.Weight is < 1 or > 1000)
                throw new UsageException("--weight must be 1..1000.");
            if (schedule.MaxConcurrent < 0 || schedule.MaxQueued < 0 || schedule.MaxSubmitsPerSecond < 0)
                throw new UsageException("limits are 0 (none) or positive.");
            await using var client = await setConnection.ConnectAsync(p, env, ct);
            var stored = await client.SetTenantScheduleAsync(schedule, ct: ct);
            await env.Out.WriteLineAsync(Describe(stored));
            return ExitOk;
        }));

        var listConnection = new ConnectionOptions();
        var json = JsonFlag();
        var list = new Command("list", "Show every tenant that has a schedule.") { json };
        listConnection.AddTo(list);
        list.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await listConnection.ConnectAsync(p, env, ct);
            var schedules = await client.ListTenantSchedulesAsync(ct: ct);
            if (p.GetValue(json))
            {
                await WriteJsonAsync(env, schedules);
                return ExitOk;
            }
            await WriteTableAsync(env.Out, ["TENANT", "WEIGHT", "MAX CONCURRENT", "MAX QUEUED", "MAX SUBMITS/S"], schedules.Select(s => new[]
            {
                s.TenantId, Num(s.Weight), Limit(s.MaxConcurrent), Limit(s.MaxQueued), Limit(s.MaxSubmitsPerSecond),
            }));
            return ExitOk;
        }));

        command.Add(set);
        command.Add(list);
        return command;

        static string Limit(int value) => value == 0 ? "-" : Num(value);
        static string Describe(TenantScheduleInfo s) =>
            $"tenant {s.TenantId}: weight {Num(s.Weight)}, max concurrent {Limit(s.MaxConcurrent)}, max queued {Limit(s.MaxQueued)}, max submits/s {Limit(s.MaxSubmitsPerSecond)}";
    }

    private static Command BuildQueues(CliEnvironment env)
    {
        var connection = new ConnectionOptions();
        var allTenants = new Option<bool>("--all-tenants") { Description = "Every tenant's queues and executors (platform-admin)." };
        var json = JsonFlag();
        var queues = new Command("queues", "Show task queues (depth, limit, leased) and connected executors (slots, in flight).") { allTenants, json };
        connection.AddTo(queues);
        queues.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await connection.ConnectAsync(p, env, ct);
            var stats = await client.GetQueueStatsAsync(p.GetValue(allTenants), ct: ct);
            if (p.GetValue(json))
            {
                await WriteJsonAsync(env, stats);
                return ExitOk;
            }
            await WriteTableAsync(env.Out, ["TENANT", "EXECUTOR TYPE", "DEPTH", "MAX", "LEASED"], stats.Queues.Select(q => new[]
            {
                q.TenantId, q.ExecutorType, Num(q.Depth), Num(q.MaxDepth), Num(q.Leased),
            }));
            await env.Out.WriteLineAsync();
            await WriteTableAsync(env.Out, ["EXECUTOR", "TENANT", "TYPES", "SLOTS", "IN FLIGHT", "CREDIT", "HEARTBEAT"], stats.Executors.Select(e => new[]
            {
                e.ExecutorId, e.TenantId + (e.Shared ? " (shared)" : ""), string.Join(',', e.ExecutorTypes), Num(e.Slots), Num(e.InFlight), Num(e.Credit),
                e.LastHeartbeat is { } at ? FormatTime(at) : "-",
            }));
            await env.Out.WriteLineAsync();
            await env.Out.WriteLineAsync($"runs active: {stats.RunsActive.ToString(CultureInfo.InvariantCulture)}");
            return ExitOk;
        }));
        return queues;
    }

    private static async Task WriteRunAsync(TextWriter output, RunInfo run)
    {
        await output.WriteLineAsync($"run id:    {run.RunId}");
        await output.WriteLineAsync($"workflow:  {run.WorkflowId} version {Num(run.WorkflowVersion)}");
        await output.WriteLineAsync($"status:    {RunStatuses.Name(run.Status)}");
        if (run.ErrorCode is not null)
            await output.WriteLineAsync($"error:     {run.ErrorCode}: {run.ErrorMessage}");
        await output.WriteLineAsync($"created:   {FormatTime(run.CreatedAt)}");
        if (run.FinishedAt is { } finished)
            await output.WriteLineAsync($"finished:  {FormatTime(finished)}");
        if (run.IdempotencyKey is not null)
            await output.WriteLineAsync($"idempotency key: {run.IdempotencyKey}");
        await output.WriteLineAsync();
        await WriteTableAsync(output, ["NODE", "STATUS", "ATTEMPT", "ERROR"], run.Nodes.Select(n => new[]
        {
            n.NodeId, RunStatuses.Name(n.Status), Num(n.Attempt), n.ErrorCode is null ? "" : $"{n.ErrorCode}: {n.ErrorMessage}",
        }));
        if (run.Input is { } input)
        {
            await output.WriteLineAsync();
            await output.WriteLineAsync("input:");
            await output.WriteLineAsync(Indent(input));
        }
        if (run.Output is { } result)
        {
            await output.WriteLineAsync();
            await output.WriteLineAsync("output:");
            await output.WriteLineAsync(Indent(result));
        }
        if (run.Events.Count > 0)
        {
            await output.WriteLineAsync();
            await WriteTableAsync(output, ["SEQ", "TIME", "EVENT", "NODE", "ATTEMPT", "DETAIL"], run.Events.Select(e => new[]
            {
                e.Seq.ToString(CultureInfo.InvariantCulture), FormatTime(e.At), JsonNamingPolicy.SnakeCaseUpper.ConvertName(e.Type.ToString()),
                e.NodeId ?? "", e.Attempt > 0 ? Num(e.Attempt) : "", e.Detail ?? "",
            }));
        }
    }

    private static async Task WriteDeadLetterAsync(TextWriter output, DeadLetterInfo d)
    {
        await output.WriteLineAsync($"id:            {d.Id}");
        await output.WriteLineAsync($"run:           {d.RunId}");
        await output.WriteLineAsync($"workflow:      {d.WorkflowId} version {Num(d.WorkflowVersion)}");
        await output.WriteLineAsync($"node:          {d.NodeId}");
        await output.WriteLineAsync($"executor type: {d.ExecutorType}");
        await output.WriteLineAsync($"last executor: {d.ExecutorId}");
        await output.WriteLineAsync($"last error:    {d.LastErrorCode}: {d.LastErrorMessage}");
        await output.WriteLineAsync($"dead-lettered: {FormatTime(d.DeadLetteredAt)}");
        await output.WriteLineAsync();
        await WriteTableAsync(output, ["ATTEMPT", "EXECUTOR", "STARTED", "ENDED", "RESULT"], d.Attempts.Select(a => new[]
        {
            Num(a.Attempt), a.ExecutorId ?? "", a.StartedAt is { } s ? FormatTime(s) : "", a.EndedAt is { } e ? FormatTime(e) : "",
            a.Succeeded ? "ok" : $"{a.ErrorCode}: {a.ErrorMessage}",
        }));
        if (d.Input is { } input)
        {
            await output.WriteLineAsync();
            await output.WriteLineAsync("input:");
            await output.WriteLineAsync(Indent(input));
        }
        if (d.Config is { } config)
        {
            await output.WriteLineAsync();
            await output.WriteLineAsync("config:");
            await output.WriteLineAsync(Indent(config));
        }
    }

    private static Option<bool> JsonFlag() => new("--json") { Description = "Print JSON instead of a table." };

    private static string Num(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static async Task WriteJsonAsync<T>(CliEnvironment env, T value) =>
        await env.Out.WriteLineAsync(JsonSerializer.Serialize(value, CliJson));

    private static string Indent(JsonElement element) => JsonSerializer.Serialize(element, CliJson);

    private static string Indent(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            return Indent(document.RootElement);
        }
        catch (JsonException)
        {
            return json;
        }
    }

    private static string ReadFile(CliEnvironment env, string path) => ReadPath(env, path, File.ReadAllText);

    private static byte[] ReadBytes(CliEnvironment env, string path) => ReadPath(env, path, File.ReadAllBytes);

    // A file the user named, relative to the working directory; a file that cannot be read is a usage error.
    private static T ReadPath<T>(CliEnvironment env, string path, Func<string, T> read)
    {
        var full = Path.GetFullPath(path, env.WorkingDirectory);
        try
        {
            return read(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"Cannot read '{full}': {e.Message}");
        }
    }

    // ownerOnly: mode 0600 from creation on, so the bytes (a secret, a private key) are never readable by others.
    private static void WriteBytes(string fullPath, ReadOnlySpan<byte> bytes, FileMode mode, bool ownerOnly)
    {
        var options = new FileStreamOptions { Mode = mode, Access = FileAccess.Write };
        if (ownerOnly && !OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        try
        {
            using var file = new FileStream(fullPath, options);
            file.Write(bytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"Cannot write '{fullPath}': {e.Message}");
        }
    }

    // A JSON document given inline or as @file; checked here so a typo is a usage error, not a server round trip.
    // Sent compact: the server's idempotency check compares the input as sent, and a repeated command should match
    // whatever spacing it was typed with.
    internal static string? JsonArgument(CliEnvironment env, string option, string? value)
    {
        if (value is null)
            return null;
        var json = value.StartsWith('@') ? ReadFile(env, value[1..]) : value;
        try
        {
            using var document = JsonDocument.Parse(json);
            return JsonSerializer.Serialize(document.RootElement);
        }
        catch (JsonException e)
        {
            throw new UsageException($"{option} is not valid JSON: {e.Message}");
        }
    }

    // An instant: ISO 8601 ("2025-01-31T12:00:00Z"), or a time ago as a number with s, m, h or d ("90m", "2d").
    internal static DateTimeOffset ParseInstant(string option, string value, DateTimeOffset now)
    {
        var v = value.Trim();
        if (v.Length >= 2 && "smhd".Contains(v[^1], StringComparison.Ordinal)
            && double.TryParse(v[..^1], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double amount) && amount >= 0)
        {
            var ago = v[^1] switch
            {
                's' => TimeSpan.FromSeconds(amount),
                'm' => TimeSpan.FromMinutes(amount),
                'h' => TimeSpan.FromHours(amount),
                _ => TimeSpan.FromDays(amount),
            };
            return now - ago;
        }
        if (DateTimeOffset.TryParse(v, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
            return at;
        throw new UsageException($"Bad {option} '{value}': expected an ISO 8601 time or a time ago such as 30m, 12h, 7d.");
    }

    // --workflow, --node, --error, --since, --until (and --limit for list) of the dlq commands.
    private sealed class DlqFilterOptions
    {
        private readonly Option<string?> _workflow = new("--workflow") { Description = "Only this workflow." };
        private readonly Option<string?> _node = new("--node") { Description = "Only this node." };
        private readonly Option<string?> _error = new("--error") { Description = "Only this last error code." };
        private readonly Option<string?> _since = new("--since") { Description = "Dead-lettered at or after: ISO 8601, or a time ago (30m, 12h, 7d)." };
        private readonly Option<string?> _until = new("--until") { Description = "Dead-lettered at or before: ISO 8601, or a time ago." };
        private readonly Option<int>? _limit;

        public DlqFilterOptions(bool withLimit)
        {
            if (withLimit)
                _limit = new Option<int>("--limit", "-n") { Description = "At most this many entries (default 100, at most 1000)." };
        }

        public void AddTo(Command command)
        {
            command.Add(_workflow);
            command.Add(_node);
            command.Add(_error);
            command.Add(_since);
            command.Add(_until);
            if (_limit is not null)
                command.Add(_limit);
        }

        public DeadLetterFilter Read(ParseResult p)
        {
            var now = DateTimeOffset.UtcNow;
            int limit = _limit is null ? 0 : p.GetValue(_limit);
            if (limit is < 0 or > 1000)
                throw new UsageException("--limit must be 1..1000.");
            var from = p.GetValue(_since) is { } since ? ParseInstant("--since", since, now) : (DateTimeOffset?)null;
            var to = p.GetValue(_until) is { } until ? ParseInstant("--until", until, now) : (DateTimeOffset?)null;
            if (from is not null && to is not null && from > to)
                throw new UsageException("--since is later than --until.");
            return new DeadLetterFilter
            {
                WorkflowId = Empty(p.GetValue(_workflow)),
                NodeId = Empty(p.GetValue(_node)),
                ErrorCode = Empty(p.GetValue(_error)),
                From = from,
                To = to,
                Limit = limit,
            };
        }

        private static string? Empty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;
    }
}
