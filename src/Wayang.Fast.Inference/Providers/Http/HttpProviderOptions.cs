namespace Wayang.Fast.Inference.Providers.Http;

// What every HTTP-based adapter is configured with. ApiKey is the resolved credential (the server resolves
// "secret://" references through the secret store before it builds the adapter); it is never logged.
public sealed class HttpProviderOptions
{
    public string Name { get; set; } = "";
    public Uri BaseAddress { get; set; } = new("http://127.0.0.1/");
    public string? ApiKey { get; set; }
    // The connect timeout (the other timeouts are the gateway's).
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);
    // Extra request headers (an organisation id, an API version override, a gateway's routing header).
    public Dictionary<string, string> Headers { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}
