using System.Runtime.InteropServices;
using Wayang.Fast.LoadGen;
using Wayang.Fast.LoadGen.Engine;
using Wayang.Fast.LoadGen.Scenarios;
using Wayang.Fast.LoadGen.SelfTest;

// Socket completions run inline on the socket engine's epoll thread instead of hopping to a pool thread: the reply
// handlers are short and never block, and one thread serving many connections is the event-loop shape of
// redis-benchmark, which costs less CPU (the generator shares the cores with the server). Read once, by the socket
// engine's static constructor, so it must be set before the first socket; DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=0
// in the environment turns it off.
if (Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") is null)
    Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");

// Exit codes: 0 run completed without failures, 2 completed with failed requests, 1 usage or connection error.
LoadOptions options;
try
{
    options = LoadOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine("error: " + e.Message);
    return 1;
}

if (options.Help)
{
    Console.WriteLine(LoadOptions.Usage);
    return 0;
}
if (options.ListScenarios)
{
    foreach (var s in ScenarioCatalog.All)
        Console.WriteLine($"{s.Name,-16} {s.Description}");
    return 0;
}
if (options.SelfTest)
    return await SelfTestRunner.RunAsync(Console.Out);
if (options.ServeFake)
{
    await using var fake = new FakeServer(options.ResolveKey(), port: options.Port);
    Console.WriteLine($"fake server on {fake.EndPoint} for {options.Duration.TotalSeconds:0} s");
    var done = new TaskCompletionSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true;
        done.TrySetResult();
    };
    AppDomain.CurrentDomain.ProcessExit += (_, _) => done.TrySetResult();
    await Task.WhenAny(done.Task, Task.Delay(options.Duration));
    return 0;
}

try
{
    if (string.Equals(options.Scenario, "tasks", StringComparison.OrdinalIgnoreCase))
    {
        // The execution plane end to end: its own runner (submitters plus executors), see Tasks/TaskLoadRunner.cs.
        return await Wayang.Fast.LoadGen.Tasks.TaskLoadRunner.RunAsync(options, LoadRunner.ResolveLoopback(options.Host, options.Port), options.ResolveKey(), Console.Error, CancellationToken.None);
    }
    if (string.Equals(options.Scenario, "fairness", StringComparison.OrdinalIgnoreCase))
    {
        // Two tenants, one flooding, on shared executors: see Tasks/FairnessLoadRunner.cs.
        return await Wayang.Fast.LoadGen.Tasks.FairnessLoadRunner.RunAsync(options, LoadRunner.ResolveLoopback(options.Host, options.Port), options.ResolveKey(), Console.Error, CancellationToken.None);
    }
    var scenario = ScenarioCatalog.Find(options.Scenario)
        ?? throw new ArgumentException($"unknown scenario '{options.Scenario}' (see --list-scenarios)");
    var endPoint = LoadRunner.ResolveLoopback(options.Host, options.Port);
    string key = options.ResolveKey();

    using var cts = new CancellationTokenSource();
    // SIGINT (Ctrl+C) or SIGTERM: stop issuing, drain in-flight requests (bounded by --drain-timeout), print the
    // report of what was measured. A second signal kills the process as usual.
    Action<PosixSignalContext> onSignal = ctx =>
    {
        if (cts.IsCancellationRequested)
            return;
        ctx.Cancel = true;
        Console.Error.WriteLine("stopping early: draining in-flight requests");
        cts.Cancel();
    };
    using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, onSignal);
    using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, onSignal);

    var report = await LoadRunner.RunAsync(options, scenario, endPoint, key, Console.Error, cts.Token);
    Console.WriteLine(report.ToText());
    if (options.JsonOut is not null)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(options.JsonOut));
        if (dir is not null)
            Directory.CreateDirectory(dir);
        await using var file = File.Create(options.JsonOut);
        report.WriteJson(file);
    }
    return report.AllFailed == 0 && report.Ok > 0 ? 0 : 2;
}
catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException || LoadRunner.IsConnectFailure(e))
{
    Console.Error.WriteLine("error: " + e.Message);
    return 1;
}
