using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using MessagePack;
using Wayang.Fast.LoadGen.Engine;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.LoadGen.Tasks;

// Scenario "fairness": two tenants share the same (shared, system-tenant) executors. The flooding tenant keeps
// --flood-connections x --pipeline submissions in flight, far more than the executors' slots, so its queue stays deep;
// the quiet tenant submits at --rate (open model). Reported: the quiet tenant's submit -> dispatch beside the flood's
// throughput. --flood-connections 0 gives the baseline (the quiet tenant alone). Needs a platform-admin key (it creates
// the two tenants and their keys).
internal static class FairnessLoadRunner
{
    private const string FloodTenant = "lg-flood";
    private const string QuietTenant = "lg-quiet";

    public static async Task<int> RunAsync(LoadOptions options, IPEndPoint endPoint, string adminKey, TextWriter log, CancellationToken cancellationToken)
    {
        using var connectCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        connectCts.CancelAfter(options.ConnectTimeout);
        string floodKey, quietKey;
        await using (var admin = await LoadConnection.ConnectAsync(endPoint, adminKey, "loadgen-setup", connectCts.Token))
        {
            floodKey = await TenantKeyAsync(admin, FloodTenant, connectCts.Token);
            quietKey = await TenantKeyAsync(admin, QuietTenant, connectCts.Token);
        }
        await TaskLoadRunner.RegisterWorkflowAsync(endPoint, floodKey, connectCts.Token);
        await TaskLoadRunner.RegisterWorkflowAsync(endPoint, quietKey, connectCts.Token);
        var window = Window.StartingNow(options);
        var executors = await TaskLoadRunner.ConnectExecutorsAsync(options, endPoint, adminKey, window, trackTenant: QuietTenant, connectCts.Token);
        var flood = new List<LoadSubmitter>();
        for (int i = 0; i < options.FloodConnections; i++)
            flood.Add(new LoadSubmitter(await LoadConnection.ConnectAsync(endPoint, floodKey, "loadgen-flood", connectCts.Token), window, options.Pipeline, 0, options.MaxInFlight));
        var quiet = new LoadSubmitter(await LoadConnection.ConnectAsync(endPoint, quietKey, "loadgen-quiet", connectCts.Token), window, 1, options.Rate, options.MaxInFlight);

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var executorTasks = executors.Select(e => e.RunAsync(stop.Token)).ToArray();
        var floodTasks = flood.Select(s => s.RunAsync(stop.Token)).ToArray();
        var quietTask = quiet.RunAsync(stop.Token);
        log.WriteLine($"fairness: flood {options.FloodConnections} connection(s) x pipeline {options.Pipeline}, quiet {options.Rate:0}/s, {options.Executors} shared executor(s) x {options.Slots} slots, warmup {options.Warmup.TotalSeconds:0.#} s, measured {options.Duration.TotalSeconds:0.#} s");

        // The flood never drains in time (that is the point): stop once the quiet tenant's submissions are all dispatched.
        await quietTask.WaitAsync(options.Warmup + options.Duration + options.DrainTimeout, cancellationToken).ConfigureAwait(false);
        await TaskLoadRunner.DrainAsync(() => executors.Sum(e => e.TrackedDispatchLatency.TotalCount) >= quiet.MeasuredAcked, options.DrainTimeout, cancellationToken)
            .ConfigureAwait(false);
        stop.Cancel();
        await Task.WhenAll(executorTasks.Concat(floodTasks).Select(t => t.ContinueWith(static _ => { }, TaskScheduler.Default))).ConfigureAwait(false);

        var quietDispatch = TaskLoadRunner.Merge(executors.Select(e => e.TrackedDispatchLatency));
        long completedInWindow = executors.Sum(e => e.CompletedInWindow);
        double seconds = options.Duration.TotalSeconds;
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"scenario fairness ({options.Label ?? "unlabelled"}): quiet tenant at {options.Rate:0}/s beside {(options.FloodConnections == 0 ? "no flood" : "a flooding tenant")}");
        text.AppendLine(CultureInfo.InvariantCulture, $"  completed tasks/s, both tenants: {completedInWindow / seconds:0}; quiet submissions acked in window: {quiet.MeasuredAcked}, dispatched: {quietDispatch.TotalCount}; flood QUEUE_FULL: {flood.Sum(f => f.QueueFull)}");
        // submit -> ack is the quiet run's durable commit, shared with the flood's writes; dispatch comes after it.
        text.AppendLine(TaskLoadRunner.Line("quiet submit -> ack", quiet.AckLatency));
        text.AppendLine(TaskLoadRunner.Line("quiet submit -> dispatch", quietDispatch));
        Console.Write(text.ToString());
        if (options.JsonOut is not null)
        {
            using var stream = File.Create(options.JsonOut);
            using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
            json.WriteStartObject();
            json.WriteString("scenario", "fairness");
            json.WriteNumber("floodConnections", options.FloodConnections);
            json.WriteNumber("quietRate", options.Rate);
            json.WriteNumber("tasksPerSecond", completedInWindow / seconds);
            TaskLoadRunner.WriteSummary(json, "quietSubmitToAck", quiet.AckLatency);
            TaskLoadRunner.WriteSummary(json, "quietSubmitToDispatch", quietDispatch);
            json.WriteEndObject();
        }
        long failed = quiet.Failed + executors.Sum(e => e.Failed);
        return failed == 0 && quietDispatch.TotalCount == quiet.MeasuredAcked ? 0 : 2;
    }

    // Creates the tenant (an existing one is fine) and a fresh developer key for it.
    private static async Task<string> TenantKeyAsync(LoadConnection admin, string tenant, CancellationToken ct)
    {
        var (type, reply) = await admin.CallAsync(Opcode.TenantCreate, MessagePackSerializer.Serialize(new TenantCreateRequest { TenantId = tenant, DisplayName = tenant }, WireOptions.Trusted), ct);
        if (type != FrameType.Response && !LoadConnection.DescribeError(reply).Contains("TENANT_EXISTS", StringComparison.Ordinal))
            throw new InvalidOperationException($"creating tenant {tenant} failed: " + LoadConnection.DescribeError(reply));
        (type, reply) = await admin.CallAsync(Opcode.KeyCreate, MessagePackSerializer.Serialize(
            new KeyCreateRequest { TenantId = tenant, Name = "loadgen-" + Guid.NewGuid().ToString("N")[..8], Roles = ["developer"] }, WireOptions.Trusted), ct);
        if (type != FrameType.Response)
            throw new InvalidOperationException($"creating a key for {tenant} failed: " + LoadConnection.DescribeError(reply));
        return MessagePackSerializer.Deserialize<KeyCreateResponse>(reply, WireOptions.Untrusted).Secret;
    }
}
