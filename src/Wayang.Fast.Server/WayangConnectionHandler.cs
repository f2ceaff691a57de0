using Microsoft.AspNetCore.Connections;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Server.Sessions;

namespace Wayang.Fast.Server;

// Kestrel hands each accepted socket of the protocol endpoint here; the session owns its pipes from then on.
internal sealed class WayangConnectionHandler(ServerCore core) : ConnectionHandler
{
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        var metrics = core.Metrics;
        long current = Interlocked.Increment(ref metrics.ConnectionsCurrent);
        try
        {
            if (current > core.Options.MaxConnections || core.ShuttingDown)
            {
                await RefuseAsync(connection, core.ShuttingDown ? ErrorCode.ShuttingDown : ErrorCode.TooManyConnections).ConfigureAwait(false);
                return;
            }
            Interlocked.Increment(ref metrics.ConnectionsTotal);
            var session = core.CreateSession(connection.Transport, connection.ConnectionId, connection.RemoteEndPoint?.ToString());
            await session.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref metrics.ConnectionsCurrent);
        }
    }

    private async Task RefuseAsync(ConnectionContext connection, ErrorCode code)
    {
        if (code == ErrorCode.TooManyConnections)
            Interlocked.Increment(ref core.Metrics.ConnectionsRejected);
        core.Metrics.Error(code);
        Log.ConnectionRefused(core.Logger, ErrorRegistry.NameOf(code));
        var output = connection.Transport.Output;
        FrameWriter.Write(output, FrameType.Error, Opcode.None, 0, ErrorBodies.Default(code));
        await output.FlushAsync().ConfigureAwait(false);

        // Read briefly before closing so the peer's HELLO, already in flight, does not turn our close into
        // an RST that could destroy the ERROR before the peer reads it.
        var input = connection.Transport.Input;
        using var quiet = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(quiet.Token).ConfigureAwait(false);
                input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                    break;
            }
        }
        catch (Exception)
        {
            // Quiet period over, or the peer is gone.
        }
    }
}
