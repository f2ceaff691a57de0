using BenchmarkDotNet.Running;

// Pick suites with --filter, e.g. `dotnet run -c Release --project bench/Wayang.Fast.Benchmarks -- --filter '*Frame*'`.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
