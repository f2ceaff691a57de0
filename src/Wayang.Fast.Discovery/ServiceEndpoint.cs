using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Wayang.Fast.Discovery;

// One instance of a service: where to dial it, plus what the registry knows about it.
// Equality covers every field, so a resolver can tell a real membership change from a repeated answer.
public sealed class ServiceEndpoint : IEquatable<ServiceEndpoint>
{
    private static readonly IReadOnlyDictionary<string, string> NoMeta = new Dictionary<string, string>();

    public ServiceEndpoint(string host, int port, string? id = null, IReadOnlyList<string>? tags = null, IReadOnlyDictionary<string, string>? meta = null)
    {
        if (!IsValidHost(host))
            throw new ArgumentException($"'{host}' is not a host name or IP address.", nameof(host));
        if (port is <= 0 or > 65535)
            throw new ArgumentOutOfRangeException(nameof(port), port, "The port must be 1..65535.");
        Host = host;
        Port = port;
        Id = string.IsNullOrEmpty(id) ? null : id;
        Tags = tags ?? [];
        Meta = meta ?? NoMeta;
    }

    public string Host { get; }
    public int Port { get; }
    public string? Id { get; }
    public IReadOnlyList<string> Tags { get; }
    public IReadOnlyDictionary<string, string> Meta { get; }

    // "host:port"; an IPv6 address is bracketed so the result parses back.
    public override string ToString() =>
        Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port.ToString(CultureInfo.InvariantCulture)}" : $"{Host}:{Port.ToString(CultureInfo.InvariantCulture)}";

    // "host:port", "[v6]:port", or a bare host/IPv4/IPv6 when defaultPort is given.
    public static ServiceEndpoint Parse(string text, int? defaultPort = null) =>
        TryParse(text, defaultPort, out var endpoint, out var error) ? endpoint : throw new FormatException(error);

    public static bool TryParse(string? text, int? defaultPort, [NotNullWhen(true)] out ServiceEndpoint? endpoint) =>
        TryParse(text, defaultPort, out endpoint, out _);

    private static bool TryParse(string? text, int? defaultPort, [NotNullWhen(true)] out ServiceEndpoint? endpoint, out string error)
    {
        endpoint = null;
        var s = text?.Trim() ?? "";
        if (s.Length == 0)
        {
            error = "An endpoint is empty; expected host:port.";
            return false;
        }

        string host;
        string? portText;
        if (s[0] == '[')
        {
            int close = s.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                error = $"'{s}' has '[' without ']'.";
                return false;
            }
            host = s[1..close];
            var rest = s[(close + 1)..];
            if (rest.Length == 0)
                portText = null;
            else if (rest[0] == ':')
                portText = rest[1..];
            else
            {
                error = $"'{s}' has text after ']' that is not ':port'.";
                return false;
            }
        }
        else
        {
            int first = s.IndexOf(':', StringComparison.Ordinal);
            if (first >= 0 && first != s.LastIndexOf(':'))
            {
                // Several colons and no brackets: only a bare IPv6 address, which cannot carry a port.
                host = s;
                portText = null;
            }
            else if (first >= 0)
            {
                host = s[..first];
                portText = s[(first + 1)..];
            }
            else
            {
                host = s;
                portText = null;
            }
        }

        if (!IsValidHost(host))
        {
            error = $"'{s}' does not start with a host name or IP address.";
            return false;
        }

        int port;
        if (portText is null)
        {
            if (defaultPort is not { } d)
            {
                error = $"'{s}' has no port; expected host:port.";
                return false;
            }
            port = d;
        }
        else if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port))
        {
            error = $"'{s}' has a port that is not a number.";
            return false;
        }
        if (port is <= 0 or > 65535)
        {
            error = $"'{s}' has port {port}; the port must be 1..65535.";
            return false;
        }

        endpoint = new ServiceEndpoint(host, port);
        error = "";
        return true;
    }

    private static bool IsValidHost(string? host) =>
        !string.IsNullOrEmpty(host) && Uri.CheckHostName(host) != UriHostNameType.Unknown;

    public bool Equals(ServiceEndpoint? other)
    {
        if (other is null)
            return false;
        if (ReferenceEquals(this, other))
            return true;
        if (Port != other.Port || !string.Equals(Host, other.Host, StringComparison.OrdinalIgnoreCase)
            || !string.Equals(Id, other.Id, StringComparison.Ordinal) || !Tags.SequenceEqual(other.Tags, StringComparer.Ordinal)
            || Meta.Count != other.Meta.Count)
            return false;
        foreach (var (key, value) in Meta)
        {
            if (!other.Meta.TryGetValue(key, out var v) || !string.Equals(value, v, StringComparison.Ordinal))
                return false;
        }
        return true;
    }

    public override bool Equals(object? obj) => Equals(obj as ServiceEndpoint);

    public override int GetHashCode() =>
        HashCode.Combine(StringComparer.OrdinalIgnoreCase.GetHashCode(Host), Port, Id);

    public static bool operator ==(ServiceEndpoint? left, ServiceEndpoint? right) => left is null ? right is null : left.Equals(right);

    public static bool operator !=(ServiceEndpoint? left, ServiceEndpoint? right) => !(left == right);
}
