using System.Net;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.LoadGen.Scenarios;

// What a scenario's setup step gets: the target and a way to make unary calls on an authenticated connection.
public sealed class ScenarioSetupContext
{
    private readonly Engine.LoadConnection _connection;

    internal ScenarioSetupContext(IPEndPoint endPoint, string apiKey, Engine.LoadConnection connection)
    {
        EndPoint = endPoint;
        ApiKey = apiKey;
        _connection = connection;
    }

    public IPEndPoint EndPoint { get; }

    public string ApiKey { get; }

    // One request, its reply frame type and a copy of the reply body (setup is not the hot path).
    public Task<(FrameType Type, byte[] Body)> CallAsync(Opcode opcode, byte[] body, CancellationToken cancellationToken)
        => _connection.CallAsync(opcode, body, cancellationToken);
}
