using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Amazon.KeyManagementService;
using Amazon.KeyManagementService.Model;
using Amazon.Runtime;

namespace Wayang.Fast.Control.Tests.Secrets;

// Skipped, with the reason shown, where moto's server is not installed: the tests need a KMS endpoint.
public sealed class MotoFactAttribute : FactAttribute
{
    public MotoFactAttribute()
    {
        if (MotoFixture.Executable is null)
            Skip = "moto_server not found on PATH: install moto[server] to run the AWS KMS tests.";
    }
}

// moto_server on a free loopback port for the test class, with one symmetric KMS key created through the SDK.
public sealed class MotoFixture : IAsyncLifetime
{
    public static readonly string? Executable = FindOnPath("moto_server");

    private Process? _process;

    public Uri ServiceUrl { get; private set; } = null!;
    public string KeyId { get; private set; } = "";
    public AWSCredentials Credentials { get; } = new BasicAWSCredentials("testing", "testing");

    public AmazonKeyManagementServiceClient Client() =>
        new(Credentials, new AmazonKeyManagementServiceConfig { ServiceURL = ServiceUrl.ToString(), AuthenticationRegion = "us-east-1" });

    public async Task InitializeAsync()
    {
        if (Executable is null)
            return;
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        ServiceUrl = new Uri($"http://127.0.0.1:{port}");
        _process = Process.Start(new ProcessStartInfo(Executable, ["-H", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        // Poll until it answers (it takes a second or two to import), up to a generous bound.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            try
            {
                using var response = await http.GetAsync(new Uri(ServiceUrl, "/moto-api/"));
                break;
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline && !_process.HasExited)
            {
                await Task.Delay(50);
            }
        }
        using var kms = Client();
        KeyId = (await kms.CreateKeyAsync(new CreateKeyRequest { KeySpec = KeySpec.SYMMETRIC_DEFAULT, KeyUsage = KeyUsageType.ENCRYPT_DECRYPT })).KeyMetadata.Arn;
    }

    public Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        _process?.Dispose();
        return Task.CompletedTask;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);
}
