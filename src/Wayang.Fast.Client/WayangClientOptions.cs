using Wayang.Fast.Discovery;
using Wayang.Fast.Protocol;

namespace Wayang.Fast.Client;

// Bound from configuration section "Wayang:Client" by AddWayangClient (see README.md).
public sealed class WayangClientOptions
{
    public const string SectionName = "Wayang:Client";

    public string Host { get; set; } = "127.0.0.1";
    public int Port { get; set; } = WireOptions.DefaultPort;

    // When set, every connect attempt resolves ServiceName through it and dials the members it returns (rotating
    // past members that fail), instead of Host:Port. Set in code: a StaticServiceResolver, a ConsulServiceResolver.
    public IServiceResolver? Resolver { get; set; }

    public string ServiceName { get; set; } = "wayang";
    public string ApiKey { get; set; } = "";
    public string ClientName { get; set; } = "wayang-dotnet";

    // Applies to unary calls without an explicit timeout. Timeout.InfiniteTimeSpan disables it.
    public TimeSpan DefaultTimeout { get; set; } = TimeSpan.FromSeconds(30);

    // Bounds TCP connect plus the HELLO/WELCOME handshake of one attempt.
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    // Credit each server stream starts with (0: the server's default). Also the client's grant window:
    // credit is returned in batches once half of it has been consumed.
    public uint InitialStreamCredit { get; set; } = 64;

    // A PING frame goes out when the connection was idle this long, so the server's idle timeout does not
    // close a connection the application still holds. TimeSpan.Zero disables keep-alive.
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(30);

    // Largest frame body accepted from the server (the server's own limit arrives in WELCOME and bounds requests).
    public int MaxReceiveFrameBytes { get; set; } = 16 * 1024 * 1024;

    public WayangReconnectOptions Reconnect { get; set; } = new();
}

// See README.md "Reconnect policy".
public sealed class WayangReconnectOptions
{
    // Connection attempts a call makes (the first included) before it fails with NOT_CONNECTED. 1 = no retry.
    public int MaxAttempts { get; set; } = 4;
    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromMilliseconds(100);
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(5);
}
