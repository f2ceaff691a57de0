using System.Net;
using System.Net.Sockets;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Adapters.OpenAi;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers.Http;

namespace Wayang.Fast.Inference.Tests.Adapters;

// The connect timeout, made deterministic without a black-hole address: a listening socket that never accepts, its
// accept queue filled by connections of our own, drops further SYNs (Linux), so the adapter's connect hangs until its
// ConnectTimeout passes.
public sealed class ConnectTimeoutTests
{
    [Fact]
    public async Task A_connect_that_hangs_is_INFERENCE_TIMEOUT_connect()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(0);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        var fillers = new List<Socket>();
        try
        {
            // Fill the accept queue: connects complete while there is room, then hang; stop at the first that hangs.
            for (int i = 0; i < 16; i++)
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                fillers.Add(s);
                using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
                try
                {
                    await s.ConnectAsync(IPAddress.Loopback, port, cts.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
            using var provider = new OpenAiProvider(new HttpProviderOptions
            {
                Name = "stuck", BaseAddress = new Uri($"http://127.0.0.1:{port}/"), ConnectTimeout = TimeSpan.FromMilliseconds(300),
            });

            var ex = await Assert.ThrowsAsync<WayangException>(() =>
                provider.ChatAsync(new ChatRequest { Messages = [ChatMessage.Text(ChatRole.User, "hi")] }, "m", CancellationToken.None));

            Assert.Equal((ErrorCode.InferenceTimeout, "connect"), (ex.Code, ex.Error.Details["timeout"]));
        }
        finally
        {
            foreach (var s in fillers)
                s.Dispose();
        }
    }
}
