using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.LoadGen.Scenarios;

// Opcode Ping (0x0001): a REQUEST with an empty body answered by an empty RESPONSE. It is the server's
// parse -> dispatch -> reply path with nothing behind it, the counterpart of Redis's PING_MBULK.
public sealed class PingScenario : IScenario
{
    public string Name => "ping";

    public string Description => "Ping opcode request/response (empty bodies); compares with redis-benchmark PING_MBULK";

    public Opcode Opcode => Opcode.Ping;

    public IReadOnlyList<byte[]> CreateRequestBodies() => [[]];

    public ValueTask SetupAsync(ScenarioSetupContext context, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ReplyOutcome Classify(in Frame frame)
        => frame.Header.Type == FrameType.Response && frame.Header.Opcode == Opcode.Ping ? ReplyOutcome.Ok : ReplyOutcome.Failed;
}
