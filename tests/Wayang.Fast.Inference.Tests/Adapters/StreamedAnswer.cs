using System.Net.Sockets;
using System.Text;
using Wayang.Fast.Inference.Contracts;

namespace Wayang.Fast.Inference.Tests.Adapters;

// A stream's deltas put together the way a caller of IInferenceProvider would, checking the contract on the way:
// nothing after the delta with FinishReason, tool calls identified by index with id and name on their first delta.
public sealed class StreamedAnswer
{
    public string Text { get; private set; } = "";
    public List<ToolCall> ToolCalls { get; } = [];
    public FinishReason? FinishReason { get; private set; }
    public TokenUsage? Usage { get; private set; }
    public int Deltas { get; private set; }

    public static async Task<StreamedAnswer> CollectAsync(IAsyncEnumerable<ChatDelta> stream, CancellationToken cancellationToken = default)
    {
        var answer = new StreamedAnswer();
        var text = new StringBuilder();
        var calls = new SortedDictionary<int, (string Id, string Name, StringBuilder Args)>();
        await foreach (var delta in stream.WithCancellation(cancellationToken))
        {
            Assert.Null(answer.FinishReason);
            answer.Deltas++;
            text.Append(delta.Content);
            foreach (var call in delta.ToolCalls ?? [])
            {
                if (!calls.TryGetValue(call.Index, out var c))
                {
                    Assert.False(string.IsNullOrEmpty(call.Name));
                    calls[call.Index] = c = (call.Id ?? "", call.Name!, new StringBuilder());
                }
                c.Args.Append(call.ArgumentsJson);
            }
            answer.FinishReason = delta.FinishReason;
            answer.Usage = delta.Usage ?? answer.Usage;
        }
        answer.Text = text.ToString();
        foreach (var (_, c) in calls)
            answer.ToolCalls.Add(new ToolCall { Id = c.Id, Name = c.Name, ArgumentsJson = c.Args.ToString() });
        return answer;
    }

    // A loopback port with nothing listening: connecting is refused at once, no timeout involved.
    public static Uri ClosedPort()
    {
        using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return new Uri($"http://127.0.0.1:{port}/");
    }
}
