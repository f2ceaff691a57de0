using System.Collections.Concurrent;
using MessagePack;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Sessions;

// ERROR bodies carrying a code's default message are serialized once and reused: a peer that provokes
// errors at a high rate (TOO_MANY_IN_FLIGHT, UNKNOWN_OPCODE) costs no allocation per error.
internal static class ErrorBodies
{
    private static readonly ConcurrentDictionary<ErrorCode, byte[]> Defaults = new();

    public static byte[] Default(ErrorCode code) =>
        Defaults.TryGetValue(code, out var body) ? body : Defaults.GetOrAdd(code, static c => Serialize(new WayangError(c)));

    public static byte[] Serialize(WayangError error) =>
        MessagePackSerializer.Serialize(ErrorBodyMapping.ToBody(error), WireOptions.Trusted);
}
