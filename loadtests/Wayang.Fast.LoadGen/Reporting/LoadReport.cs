using System.Globalization;
using System.Text;
using System.Text.Json;
using HdrHistogram;

namespace Wayang.Fast.LoadGen.Reporting;

public sealed class LatencySummary
{
    public long Count { get; init; }
    public double MeanMs { get; init; }
    public double StdDevMs { get; init; }
    public double P50Ms { get; init; }
    public double P75Ms { get; init; }
    public double P95Ms { get; init; }
    public double P99Ms { get; init; }
    public double P999Ms { get; init; }
    public double MaxMs { get; init; }

    // The histogram counts 100 ns units (TimeSpan ticks).
    public static LatencySummary From(HistogramBase h)
    {
        if (h.TotalCount == 0)
            return new LatencySummary();
        static double Ms(double ticks) => ticks / TimeSpan.TicksPerMillisecond;
        return new LatencySummary
        {
            Count = h.TotalCount,
            MeanMs = Ms(h.GetMean()),
            StdDevMs = Ms(h.GetStdDeviation()),
            P50Ms = Ms(h.GetValueAtPercentile(50)),
            P75Ms = Ms(h.GetValueAtPercentile(75)),
            P95Ms = Ms(h.GetValueAtPercentile(95)),
            P99Ms = Ms(h.GetValueAtPercentile(99)),
            P999Ms = Ms(h.GetValueAtPercentile(99.9)),
            MaxMs = Ms(h.GetMaxValue()),
        };
    }
}

// The run's result, NBomber-style: one scenario, its load model, counts, throughput, latency and bytes moved.
public sealed record LoadReport
{
    public string Tool { get; init; } = "wayang-loadgen";
    public string? Label { get; init; }
    public string Scenario { get; init; } = "";
    public string Model { get; init; } = "";
    public string Target { get; init; } = "";
    public int Connections { get; init; }
    public int Pipeline { get; init; }
    public double TargetRate { get; init; }
    public int MaxInFlightPerConnection { get; init; }
    public long RequestsBudget { get; init; }
    public double WarmupSeconds { get; init; }
    public double DurationSeconds { get; init; }
    public double ElapsedSeconds { get; init; }
    public DateTimeOffset StartedAt { get; init; }
    public long Ok { get; init; }
    public long Failed { get; init; }
    public long TimedOut { get; init; }
    public long BacklogAtEnd { get; init; }
    public long UnexpectedFrames { get; init; }
    public double RequestsPerSecond { get; init; }
    public double OkPerSecond { get; init; }
    public LatencySummary Latency { get; init; } = new();
    public LatencySummary? LatencyUncorrected { get; init; }
    public long BytesSent { get; init; }
    public long BytesReceived { get; init; }
    public IReadOnlyDictionary<string, long> Errors { get; init; } = new Dictionary<string, long>();
    public IReadOnlyList<string> ConnectionErrors { get; init; } = [];
    public int ProcessorCount { get; init; } = Environment.ProcessorCount;
    // The generator's own managed allocations during the load phase (whole run, warmup and drain included): the
    // steady state should allocate nothing per request, so this stays small and flat as the request count grows.
    public long GeneratorAllocatedBytes { get; init; }
    public int GeneratorGen0Collections { get; init; }
    // CPU seconds over the measured window: this generator, and the server when --server-pid was given.
    public double? GeneratorCpuSeconds { get; init; }
    public double? ServerCpuSeconds { get; init; }

    private double? PerRequestUs(double? seconds) => seconds is { } s && Ok + Failed > 0 ? s * 1e6 / (Ok + Failed) : null;

    public long AllFailed => Failed + TimedOut;

    public string ToText()
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append("scenario: ").Append(Scenario).Append("   model: ").Append(Model).Append("   target: ").Append(Target);
        if (Label is not null)
            sb.Append("   label: ").Append(Label);
        sb.AppendLine();
        string load = Model == "open"
            ? string.Create(c, $"connections: {Connections}   rate: {TargetRate:N0} req/s   max in flight/conn: {MaxInFlightPerConnection}")
            : string.Create(c, $"connections: {Connections}   pipeline: {Pipeline}");
        sb.AppendLine(load);
        string window = RequestsBudget > 0 ? string.Create(c, $"requests: {RequestsBudget:N0}") : string.Create(c, $"duration: {DurationSeconds:0.###} s");
        sb.AppendLine(c, $"{window}   warmup: {WarmupSeconds:0.###} s   measured: {ElapsedSeconds:0.000} s");
        sb.AppendLine();
        sb.AppendLine(c, $"requests     ok {Ok:N0}   failed {AllFailed:N0} (errors {Failed:N0}, timed out {TimedOut:N0})");
        sb.AppendLine(c, $"throughput   {RequestsPerSecond:N1} req/s   (ok {OkPerSecond:N1} req/s)");
        AppendLatency(sb, Model == "open" ? "latency (ms, from intended send time; coordinated-omission corrected)" : "latency (ms)", Latency);
        if (LatencyUncorrected is { } u)
            AppendLatency(sb, "latency (ms, from actual send time; uncorrected)", u);
        sb.AppendLine(c, $"bytes        sent {FormatBytes(BytesSent)} ({FormatBytes(PerSecond(BytesSent))}/s)   received {FormatBytes(BytesReceived)} ({FormatBytes(PerSecond(BytesReceived))}/s)");
        if (GeneratorCpuSeconds is { } gcpu)
        {
            sb.Append(c, $"cpu          generator {gcpu:0.00} s ({PerRequestUs(gcpu):0.00} us/request)");
            if (ServerCpuSeconds is { } scpu)
                sb.Append(c, $"   server {scpu:0.00} s ({PerRequestUs(scpu):0.00} us/request)");
            sb.AppendLine();
        }
        sb.AppendLine(c, $"generator    allocated {FormatBytes(GeneratorAllocatedBytes)} during the run, {GeneratorGen0Collections} gen0 GCs");
        if (BacklogAtEnd > 0)
            sb.AppendLine(c, $"backlog      {BacklogAtEnd:N0} requests were due but never sent (in-flight cap reached: the target is overloaded)");
        if (UnexpectedFrames > 0)
            sb.AppendLine(c, $"unexpected   {UnexpectedFrames:N0} frames matched no request in flight");
        foreach (var (name, count) in Errors.OrderByDescending(e => e.Value))
            sb.AppendLine(c, $"error        {name}: {count:N0}");
        foreach (var e in ConnectionErrors.GroupBy(x => x))
            sb.AppendLine(c, $"connection   {e.Key} (x{e.Count()})");
        return sb.ToString();
    }

    private double PerSecond(long v) => ElapsedSeconds > 0 ? v / ElapsedSeconds : 0;

    private static void AppendLatency(StringBuilder sb, string title, LatencySummary l)
    {
        var c = CultureInfo.InvariantCulture;
        sb.AppendLine(title);
        sb.AppendLine(c, $"  p50 {l.P50Ms:0.000}  p75 {l.P75Ms:0.000}  p95 {l.P95Ms:0.000}  p99 {l.P99Ms:0.000}  p99.9 {l.P999Ms:0.000}  max {l.MaxMs:0.000}  mean {l.MeanMs:0.000}  stddev {l.StdDevMs:0.000}");
    }

    private static string FormatBytes(double b) => b switch
    {
        >= 1 << 30 => (b / (1 << 30)).ToString("0.00 'GiB'", CultureInfo.InvariantCulture),
        >= 1 << 20 => (b / (1 << 20)).ToString("0.00 'MiB'", CultureInfo.InvariantCulture),
        >= 1 << 10 => (b / (1 << 10)).ToString("0.00 'KiB'", CultureInfo.InvariantCulture),
        _ => b.ToString("0 'B'", CultureInfo.InvariantCulture),
    };

    // Written by hand with Utf8JsonWriter: no reflection, stable field names (compare-redis parses them).
    public void WriteJson(Stream stream)
    {
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteString("tool", Tool);
        if (Label is not null)
            w.WriteString("label", Label);
        w.WriteString("scenario", Scenario);
        w.WriteString("model", Model);
        w.WriteString("target", Target);
        w.WriteNumber("connections", Connections);
        w.WriteNumber("pipeline", Pipeline);
        w.WriteNumber("targetRate", TargetRate);
        w.WriteNumber("maxInFlightPerConnection", MaxInFlightPerConnection);
        w.WriteNumber("requestsBudget", RequestsBudget);
        w.WriteNumber("warmupSeconds", WarmupSeconds);
        w.WriteNumber("durationSeconds", DurationSeconds);
        w.WriteNumber("elapsedSeconds", ElapsedSeconds);
        w.WriteString("startedAt", StartedAt);
        w.WriteNumber("processorCount", ProcessorCount);
        w.WriteNumber("ok", Ok);
        w.WriteNumber("failed", AllFailed);
        w.WriteNumber("errors", Failed);
        w.WriteNumber("timedOut", TimedOut);
        w.WriteNumber("backlogAtEnd", BacklogAtEnd);
        w.WriteNumber("unexpectedFrames", UnexpectedFrames);
        w.WriteNumber("requestsPerSecond", Math.Round(RequestsPerSecond, 1));
        w.WriteNumber("okPerSecond", Math.Round(OkPerSecond, 1));
        WriteLatency(w, "latencyMs", Latency);
        if (LatencyUncorrected is { } u)
            WriteLatency(w, "latencyUncorrectedMs", u);
        w.WriteNumber("bytesSent", BytesSent);
        w.WriteNumber("bytesReceived", BytesReceived);
        if (GeneratorCpuSeconds is { } gcpu)
            w.WriteNumber("generatorCpuSeconds", Math.Round(gcpu, 3));
        if (ServerCpuSeconds is { } scpu)
            w.WriteNumber("serverCpuSeconds", Math.Round(scpu, 3));
        w.WriteNumber("generatorAllocatedBytes", GeneratorAllocatedBytes);
        w.WriteNumber("generatorGen0Collections", GeneratorGen0Collections);
        w.WriteStartObject("errorsByName");
        foreach (var (name, count) in Errors)
            w.WriteNumber(name, count);
        w.WriteEndObject();
        w.WriteStartArray("connectionErrors");
        foreach (var e in ConnectionErrors)
            w.WriteStringValue(e);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteLatency(Utf8JsonWriter w, string name, LatencySummary l)
    {
        static double R(double v) => Math.Round(v, 4);
        w.WriteStartObject(name);
        w.WriteNumber("count", l.Count);
        w.WriteNumber("mean", R(l.MeanMs));
        w.WriteNumber("stdDev", R(l.StdDevMs));
        w.WriteNumber("p50", R(l.P50Ms));
        w.WriteNumber("p75", R(l.P75Ms));
        w.WriteNumber("p95", R(l.P95Ms));
        w.WriteNumber("p99", R(l.P99Ms));
        w.WriteNumber("p99_9", R(l.P999Ms));
        w.WriteNumber("max", R(l.MaxMs));
        w.WriteEndObject();
    }
}
