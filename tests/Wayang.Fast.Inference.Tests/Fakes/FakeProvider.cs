using System.Runtime.CompilerServices;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;

namespace Wayang.Fast.Inference.Tests.Fakes;

// A provider whose behaviour each test scripts: answers, failures with any inference code, hangs, streams that break.
// Counts calls and records the tokens it was given, so tests can assert cancellation reached it.
public sealed class FakeProvider(string name) : IInferenceProvider
{
    private int _chatCalls;
    private int _streamCalls;

    public string Name => name;
    public string Kind => "fake";
    public ProviderCapabilities Capabilities { get; set; } = ProviderCapabilities.Chat | ProviderCapabilities.Streaming | ProviderCapabilities.Embeddings;

    public Func<ChatRequest, string, CancellationToken, Task<ChatResponse>> OnChat { get; set; } = (_, model, _) => Task.FromResult(Answer(model, "ok"));
    public Func<ChatRequest, string, CancellationToken, IAsyncEnumerable<ChatDelta>> OnStream { get; set; } = (_, _, ct) => Tokens(["o", "k"], ct);
    public ProviderHealth Health { get; set; } = new(true, TimeSpan.FromMilliseconds(1));

    public int ChatCalls => Volatile.Read(ref _chatCalls);
    public int StreamCalls => Volatile.Read(ref _streamCalls);
    public List<string> Models { get; } = [];
    public TaskCompletionSource Cancelled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<ChatResponse> ChatAsync(ChatRequest request, string model, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _chatCalls);
        lock (Models)
            Models.Add(model);
        cancellationToken.Register(() => Cancelled.TrySetResult());
        return OnChat(request, model, cancellationToken);
    }

    public IAsyncEnumerable<ChatDelta> StreamChatAsync(ChatRequest request, string model, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _streamCalls);
        lock (Models)
            Models.Add(model);
        cancellationToken.Register(() => Cancelled.TrySetResult());
        return OnStream(request, model, cancellationToken);
    }

    public Task<EmbeddingResponse> EmbedAsync(EmbeddingRequest request, string model, CancellationToken cancellationToken) =>
        Task.FromResult(new EmbeddingResponse { Model = model, Vectors = [.. request.Inputs.Select(i => new float[] { i.Length })] });

    public Task<IReadOnlyList<ProviderModel>> ListModelsAsync(CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<ProviderModel>>([]);

    public Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken) => Task.FromResult(Health);

    public static ChatResponse Answer(string model, string text) => new()
    {
        Id = "r1",
        Model = model,
        Choices = [new ChatChoice { Message = ChatMessage.Text(ChatRole.Assistant, text), FinishReason = FinishReason.Stop }],
        Usage = new TokenUsage { PromptTokens = 3, CompletionTokens = 1 },
    };

    public static Task<ChatResponse> Fails(ErrorCode code, string provider = "fake", long retryAfterMs = 0) =>
        Task.FromException<ChatResponse>(InferenceErrors.Create(code, provider, $"scripted {code}", retryAfterMs));

    public static async IAsyncEnumerable<ChatDelta> Tokens(IEnumerable<string> pieces, [EnumeratorCancellation] CancellationToken ct)
    {
        foreach (var p in pieces)
        {
            ct.ThrowIfCancellationRequested();
            await Task.Yield();
            yield return new ChatDelta { Content = p };
        }
        yield return new ChatDelta { FinishReason = FinishReason.Stop, Usage = new TokenUsage { PromptTokens = 3, CompletionTokens = 2 } };
    }

    // Yields `before` deltas, then waits until cancelled (a provider that stalls).
    public static async IAsyncEnumerable<ChatDelta> Stalls(int before, [EnumeratorCancellation] CancellationToken ct)
    {
        for (int i = 0; i < before; i++)
            yield return new ChatDelta { Content = "t" + i };
        await Task.Delay(Timeout.Infinite, ct);
        yield break;
    }

    // Yields `before` deltas, then fails with the code.
    public static async IAsyncEnumerable<ChatDelta> Breaks(int before, ErrorCode code, [EnumeratorCancellation] CancellationToken ct)
    {
        for (int i = 0; i < before; i++)
        {
            await Task.Yield();
            yield return new ChatDelta { Content = "t" + i };
        }
        ct.ThrowIfCancellationRequested();
        throw InferenceErrors.Create(code, "fake", $"scripted {code}");
    }
}
