using MessagePack;
using MessagePack.Resolvers;

namespace Wayang.Fast.Protocol;

// MessagePack options are always passed explicitly. Anything read from a socket uses Untrusted:
// MessagePackSecurity.UntrustedData bounds recursion depth and uses collision-resistant hashing.
public static class WireOptions
{
    public static readonly MessagePackSerializerOptions Untrusted =
        MessagePackSerializerOptions.Standard
            .WithResolver(StandardResolver.Instance)
            .WithSecurity(MessagePackSecurity.UntrustedData);

    // For bodies we produce ourselves (replies, journal payloads we wrote).
    public static readonly MessagePackSerializerOptions Trusted =
        MessagePackSerializerOptions.Standard.WithResolver(StandardResolver.Instance);

    public const int ProtocolVersion = 1;
    public const int DefaultMaxFrameBytes = 1024 * 1024;
    public const int DefaultPort = 7420;
    public const int DefaultHttpPort = 7421;
}
