using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;
using Wayang.Fast.Benchmarks.Inference;

// Pick suites with --filter, e.g. `dotnet run -c Release --project bench/Wayang.Fast.Benchmarks -- --filter '*Frame*'`.
// BenchmarkDotNet rebuilds the whole project graph for its runner; on a 2-core machine that takes longer than its
// 2-minute default, so the build timeout is raised here rather than on every command line.
// A few measurements also have a plain console mode (first argument), for runs BenchmarkDotNet would make too long.
switch (args.FirstOrDefault())
{
    case "engine-throughput":
        return EngineThroughputConsole.Run(args[1..]);
    case "engine-tradeoffs":
        return EngineTradeoffsConsole.Run(args[1..]);
    default:
        var config = ManualConfig.Create(DefaultConfig.Instance).WithBuildTimeout(TimeSpan.FromMinutes(15));
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
        return 0;
}
