using System.Globalization;
using System.Text.Json.Serialization;

namespace Wayang.Fast.Discovery.Internal;

// The subset of Consul's HTTP API bodies that discovery reads and writes. Field names are Consul's own
// (PascalCase, "ID" upper-case); see https://developer.hashicorp.com/consul/api-docs/health and .../agent/service.

// One element of GET /v1/health/service/:service.
internal sealed class ConsulHealthEntry
{
    public ConsulNode? Node { get; set; }
    public ConsulService? Service { get; set; }
}

internal sealed class ConsulNode
{
    [JsonPropertyName("ID")]
    public string? Id { get; set; }

    [JsonPropertyName("Node")]
    public string? Name { get; set; }

    public string? Address { get; set; }
    public string? Datacenter { get; set; }
}

internal sealed class ConsulService
{
    [JsonPropertyName("ID")]
    public string? Id { get; set; }

    [JsonPropertyName("Service")]
    public string? Name { get; set; }

    public List<string>? Tags { get; set; }
    public string? Address { get; set; }
    public Dictionary<string, string>? Meta { get; set; }
    public int Port { get; set; }
}

// Body of PUT /v1/agent/service/register.
internal sealed class ConsulRegistrationBody
{
    [JsonPropertyName("ID")]
    public string Id { get; set; } = "";

    public string Name { get; set; } = "";

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public List<string>? Tags { get; set; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Address { get; set; }

    public int Port { get; set; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Dictionary<string, string>? Meta { get; set; }

    public ConsulCheckBody? Check { get; set; }
}

internal sealed class ConsulCheckBody
{
    [JsonPropertyName("CheckID")]
    public string CheckId { get; set; } = "";

    public string Name { get; set; } = "";

    // Go duration strings ("15s", "500ms"), as Consul parses them.
    [JsonPropertyName("TTL")]
    public string Ttl { get; set; } = "";

    public string DeregisterCriticalServiceAfter { get; set; } = "";

    // Initial status: the server registers once it is listening, so it starts healthy instead of critical.
    public string Status { get; set; } = "passing";
}

[JsonSourceGenerationOptions(PropertyNameCaseInsensitive = true)]
[JsonSerializable(typeof(List<ConsulHealthEntry>))]
[JsonSerializable(typeof(ConsulRegistrationBody))]
internal sealed partial class ConsulJsonContext : JsonSerializerContext;

internal static class ConsulDuration
{
    // Consul takes Go durations; whole seconds read best, anything finer goes out in milliseconds.
    public static string Format(TimeSpan value)
    {
        long ms = Math.Max(1, (long)Math.Ceiling(value.TotalMilliseconds));
        return ms % 1000 == 0
            ? (ms / 1000).ToString(CultureInfo.InvariantCulture) + "s"
            : ms.ToString(CultureInfo.InvariantCulture) + "ms";
    }
}

// Consul answered, but not with success (ACL denied, unknown service id, server error).
internal sealed class ConsulHttpException(int statusCode, string message) : Exception(message)
{
    public int StatusCode { get; } = statusCode;
}
