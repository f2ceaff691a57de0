using System.Globalization;

namespace Wayang.Fast.LoadGen;

public enum LoadModel
{
    // Closed, pipelined: each connection keeps `pipeline` requests in flight and sends a new one as each reply arrives.
    Closed,
    // Closed, batch: each connection writes `pipeline` requests at once and waits for all of them (redis-benchmark -P).
    ClosedBatch,
    // Open: a fixed arrival rate, latency measured from each request's intended send time.
    Open,
}

public sealed class LoadOptions
{
    // Hard bounds: a load run always stops by itself.
    public static readonly TimeSpan MaxDuration = TimeSpan.FromHours(1);
    public const long MaxRequests = 10_000_000_000;
    public const int MaxConnections = 10_000;
    public const int MaxPipeline = 4096;

    public string Host { get; set; } = "127.0.0.1";
    public int Port { get; set; } = 7420;
    public string? Key { get; set; }
    public string? KeyFile { get; set; }
    public string Scenario { get; set; } = "ping";
    public LoadModel Model { get; set; } = LoadModel.Closed;
    public int Connections { get; set; } = 50;
    public int Pipeline { get; set; } = 1;
    public TimeSpan Duration { get; set; } = TimeSpan.FromSeconds(10);
    public TimeSpan Warmup { get; set; } = TimeSpan.FromSeconds(2);
    public long Requests { get; set; }
    public double Rate { get; set; }
    public int MaxInFlight { get; set; } = 1024;
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(5);
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);
    public string? JsonOut { get; set; }
    public string? Label { get; set; }
    public int ServerPid { get; set; }
    public bool SelfTest { get; set; }
    public bool ServeFake { get; set; }
    public bool Help { get; set; }
    public bool ListScenarios { get; set; }
    // Scenario "tasks": executor connections the generator runs, and the slots each registers.
    public int Executors { get; set; } = 2;
    public int Slots { get; set; } = 512;
    // Scenario "fairness": the flooding tenant's connections (0 = baseline, the quiet tenant alone).
    public int FloodConnections { get; set; } = 4;

    public const string Usage = """
        wayang-loadgen: load generator for the Wayang.Fast protocol (loopback targets only)

        usage: wayang-loadgen [options]
          --host <h>             target host, loopback only (default 127.0.0.1)
          --port <p>             target protocol port (default 7420)
          --key <k>              API key for HELLO
          --key-file <path>      read the API key from a file (e.g. <data>/bootstrap-admin.key)
          --scenario <name>      scenario to run (default ping; --list-scenarios shows all)
          --connections <n>      connections (default 50)
          --pipeline <n>         closed model: requests in flight per connection (default 1)
          --batch                closed model, batch style: write <pipeline> requests, wait for all replies
                                 (redis-benchmark -P semantics); default is the sliding-window style
          --rate <req/s>         open model: fixed total arrival rate; latency from the intended send time
          --max-in-flight <n>    open model: in-flight cap per connection (default 1024; server's cap applies)
          --executors <n>        scenario tasks: executor connections run by the generator (default 2)
          --slots <n>            scenario tasks: slots each executor registers (default 512)
          --flood-connections <n> scenario fairness: the flooding tenant's connections (default 4; 0 = quiet tenant alone)
          --duration <t>         measured time, e.g. 10s, 500ms, 2m (default 10s)
          --warmup <t>           unmeasured warmup before it (default 2s)
          --requests <n>         measure exactly n requests instead of a duration
          --drain-timeout <t>    how long to wait for in-flight replies at the end (default 5s)
          --connect-timeout <t>  connect + handshake timeout (default 10s)
          --json-out <path>      also write the report as JSON
          --label <text>         free text carried into the report
          --server-pid <pid>     also report the server process's CPU time in the measured window (Linux /proc)
          --self-test            run against an in-process fake server and check the results
          --serve-fake           run only the fake server (HELLO/Ping) on --host/--port with --key, for up to
                                 --duration; a stand-in target for trying compare-redis without the real server
          --list-scenarios       list scenarios
          --help                 this text
        """;

    public static LoadOptions Parse(IReadOnlyList<string> args)
    {
        var o = new LoadOptions();
        bool batch = false;
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            string Next()
            {
                if (i + 1 >= args.Count)
                    throw new ArgumentException($"{a} needs a value");
                return args[++i];
            }
            switch (a)
            {
                case "--host": o.Host = Next(); break;
                case "--port": o.Port = ParseInt(a, Next(), 1, 65535); break;
                case "--key": o.Key = Next(); break;
                case "--key-file": o.KeyFile = Next(); break;
                case "--scenario": o.Scenario = Next(); break;
                case "--connections" or "-c": o.Connections = ParseInt(a, Next(), 1, MaxConnections); break;
                case "--pipeline" or "-P": o.Pipeline = ParseInt(a, Next(), 1, MaxPipeline); break;
                case "--batch": batch = true; break;
                case "--rate": o.Rate = ParseDouble(a, Next()); break;
                case "--max-in-flight": o.MaxInFlight = ParseInt(a, Next(), 1, MaxPipeline); break;
                case "--duration": o.Duration = ParseTime(a, Next()); break;
                case "--warmup": o.Warmup = ParseTime(a, Next()); break;
                case "--requests" or "-n": o.Requests = ParseLong(a, Next(), 1, MaxRequests); break;
                case "--drain-timeout": o.DrainTimeout = ParseTime(a, Next()); break;
                case "--connect-timeout": o.ConnectTimeout = ParseTime(a, Next()); break;
                case "--json-out": o.JsonOut = Next(); break;
                case "--label": o.Label = Next(); break;
                case "--server-pid": o.ServerPid = ParseInt(a, Next(), 1, int.MaxValue); break;
                case "--self-test": o.SelfTest = true; break;
                case "--serve-fake": o.ServeFake = true; break;
                case "--list-scenarios": o.ListScenarios = true; break;
                case "--executors": o.Executors = ParseInt(a, Next(), 1, 1000); break;
                case "--slots": o.Slots = ParseInt(a, Next(), 1, 10_000); break;
                case "--flood-connections": o.FloodConnections = ParseInt(a, Next(), 0, 1000); break;
                case "--help" or "-h" or "-?": o.Help = true; break;
                default: throw new ArgumentException($"unknown option {a} (see --help)");
            }
        }

        if (o.Rate < 0 || double.IsNaN(o.Rate) || o.Rate > 10_000_000)
            throw new ArgumentException("--rate must be between 0 and 10,000,000 req/s");
        if (o.Rate > 0 && batch)
            throw new ArgumentException("--batch is a closed-model style; it cannot be combined with --rate");
        o.Model = o.Rate > 0 ? LoadModel.Open : batch ? LoadModel.ClosedBatch : LoadModel.Closed;
        if (o.Duration <= TimeSpan.Zero || o.Duration > MaxDuration)
            throw new ArgumentException($"--duration must be in (0, {MaxDuration}]");
        if (o.Warmup < TimeSpan.Zero || o.Warmup > MaxDuration)
            throw new ArgumentException($"--warmup must be in [0, {MaxDuration}]");
        if (o.DrainTimeout < TimeSpan.Zero || o.DrainTimeout > TimeSpan.FromMinutes(5))
            throw new ArgumentException("--drain-timeout must be in [0, 5m]");
        if (o.Key is not null && o.KeyFile is not null)
            throw new ArgumentException("give --key or --key-file, not both");
        return o;
    }

    public string ResolveKey()
    {
        if (Key is not null)
            return Key;
        if (KeyFile is not null)
            return File.ReadAllText(KeyFile).Trim();
        throw new ArgumentException("an API key is needed: --key <k> or --key-file <path>");
    }

    private static int ParseInt(string name, string value, int min, int max)
        => (int)ParseLong(name, value, min, max);

    private static long ParseLong(string name, string value, long min, long max)
    {
        value = value.Replace("_", "", StringComparison.Ordinal);
        long multiplier = 1;
        if (value.EndsWith('k') || value.EndsWith('K'))
            (multiplier, value) = (1_000, value[..^1]);
        else if (value.EndsWith('m') || value.EndsWith('M'))
            (multiplier, value) = (1_000_000, value[..^1]);
        if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n * multiplier < min || n * multiplier > max)
            throw new ArgumentException($"{name}: expected an integer in [{min}, {max}], got '{value}'");
        return n * multiplier;
    }

    private static double ParseDouble(string name, string value)
    {
        if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double d))
            throw new ArgumentException($"{name}: expected a number, got '{value}'");
        return d;
    }

    // 10 (seconds), 10s, 250ms, 2m, 1h.
    public static TimeSpan ParseTime(string name, string value)
    {
        (string digits, double unitSeconds) = value switch
        {
            _ when value.EndsWith("ms", StringComparison.Ordinal) => (value[..^2], 0.001),
            _ when value.EndsWith('s') => (value[..^1], 1.0),
            _ when value.EndsWith('m') => (value[..^1], 60.0),
            _ when value.EndsWith('h') => (value[..^1], 3600.0),
            _ => (value, 1.0),
        };
        if (!double.TryParse(digits, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) || d < 0 || d * unitSeconds > MaxDuration.TotalSeconds)
            throw new ArgumentException($"{name}: expected a time like 10s, 500ms, 2m; got '{value}'");
        return TimeSpan.FromSeconds(d * unitSeconds);
    }
}
