using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Wayang.Fast.Host.Tests;

// The real `wayang serve` as a child process on a fixed port and data directory, so a test can kill -9 it and start it
// again where clients expect it.
internal sealed class ChildServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();

    private ChildServer(Process process) => _process = process;

    public int Pid => _process.Id;

    public string StdOut
    {
        get
        {
            lock (_stdout)
                return _stdout.ToString();
        }
    }

    public string StdErr
    {
        get
        {
            lock (_stderr)
                return _stderr.ToString();
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    // extraArgs follow the defaults below, so a later flag (e.g. another --log-level) wins.
    public static async Task<ChildServer> StartAsync(string dataDirectory, int port, params string[] extraArgs)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "wayang.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing: the Host project is referenced, so its build output sits beside the tests");
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(dotnet) || !File.Exists(dotnet))
            dotnet = "dotnet";
        var info = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { dll, "serve", "--data-dir", dataDirectory, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--http-port", "-1", "--log-level", "warning" }.Concat(extraArgs))
            info.ArgumentList.Add(arg);
        var child = new ChildServer(Process.Start(info)!);
        child._process.OutputDataReceived += (_, e) => Append(child._stdout, e.Data);
        child._process.ErrorDataReceived += (_, e) => Append(child._stderr, e.Data);
        child._process.BeginOutputReadLine();
        child._process.BeginErrorReadLine();
        await Wait.UntilAsync(() => child.Listening || child._process.HasExited, TimeSpan.FromSeconds(90), "child serve started");
        Assert.False(child._process.HasExited, "serve exited early: " + child.StdErr);
        return child;
    }

    private bool Listening => ServeOutput.ListeningLine().IsMatch(StdOut);

    private static void Append(StringBuilder sb, string? line)
    {
        if (line is null)
            return;
        lock (sb)
            sb.AppendLine(line);
    }

    // SIGKILL: the crash a durable server must survive.
    public Task KillAsync() => SignalAndWaitAsync(9);

    // SIGTERM: a graceful stop; returns the exit code.
    public async Task<int> TerminateAsync()
    {
        await SignalAndWaitAsync(15);
        return _process.ExitCode;
    }

    private async Task SignalAndWaitAsync(int signal)
    {
        Assert.Equal(0, Kill(_process.Id, signal));
        using var exited = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await _process.WaitForExitAsync(exited.Token);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
