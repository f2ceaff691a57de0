using CsCheck;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Server.Tests;

public sealed class FuzzTests
{
    // Random bytes, before or after a successful handshake, never escape a session as an exception: the
    // session-fault counter stays 0, and the server keeps serving fresh connections.
    [Fact]
    public async Task Random_bytes_never_crash_the_server()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxFrameBytes = 4096);
        var unobserved = 0;
        EventHandler<UnobservedTaskExceptionEventArgs> handler = (_, e) =>
        {
            if (e.Exception.ToString().Contains("Wayang.Fast.Server", StringComparison.Ordinal))
                Interlocked.Increment(ref unobserved);
        };
        TaskScheduler.UnobservedTaskException += handler;
        try
        {
            // Mostly valid-looking headers (version 1, known types, known or nearby opcodes) so the fuzz reaches
            // dispatch and every plane's decoding.
            ushort[] known = [.. Enum.GetValues<Opcode>().Select(o => (ushort)o)];
            var opcode = Gen.OneOf(Gen.UShort[0, 0x0106], Gen.Int[0, known.Length - 1].Select(i => known[i]));
            var header = Gen.Select(Gen.UInt[0, 64], Gen.Byte[1, 12], Gen.UInt[0, 8], opcode)
                .Select((len, type, stream, op) =>
                {
                    var h = new byte[FrameHeader.Size];
                    BitConverter.TryWriteBytes(h.AsSpan(0), len);
                    h[4] = 1;
                    h[5] = type;
                    BitConverter.TryWriteBytes(h.AsSpan(8), stream);
                    BitConverter.TryWriteBytes(h.AsSpan(12), op);
                    return h;
                });
            var chunk = Gen.OneOf(Gen.Byte.Array[0, 80], header, Gen.Select(header, Gen.Byte.Array[0, 64]).Select((h, b) => h.Concat(b).ToArray()));
            var input = Gen.Select(Gen.Bool, chunk.Array[1, 8]);

            input.Sample((authenticate, chunks) =>
            {
                RunOne(server, authenticate, chunks).GetAwaiter().GetResult();
            }, iter: 300, threads: 1);

            await using var fresh = await server.ConnectAsync();
            await fresh.PingAsync(1);
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= handler;
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Equal(0, Volatile.Read(ref server.Server.Core.Metrics.SessionFaults));
        Assert.Equal(0, unobserved);
    }

    private static async Task RunOne(TestServer server, bool authenticate, byte[][] chunks)
    {
        await using var client = authenticate ? await server.ConnectAsync(credit: 2) : await RawClient.ConnectAsync(server.EndPoint);
        foreach (var c in chunks)
            await client.SendAsync(c);
        client.ShutdownSend();
        // Whatever the server answers, it must end the conversation: read until it closes.
        await client.ReadUntilClosedAsync();
    }
}
