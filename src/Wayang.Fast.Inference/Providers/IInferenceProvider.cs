using Wayang.Fast.Inference.Contracts;

namespace Wayang.Fast.Inference.Providers;

// One configured provider instance (an Ollama host, an OpenAI-compatible endpoint with its key, the in-process
// llama.cpp runtime). Adapters translate the gateway's contracts into the provider's API and every failure into a
// WayangException with an inference code (InferenceErrors); they honour cancellation at once (an HTTP request is
// aborted, llama.cpp stops decoding). Timeouts other than connect are the gateway's: it cancels the token.
public interface IInferenceProvider
{
    // The instance name that fallback chains and the model registry refer to ("openai", "ollama-gpu1").
    string Name { get; }
    // The adapter: "llamacpp", "ollama", "openai", "anthropic", "triton", "gollek", or a test double's.
    string Kind { get; }
    ProviderCapabilities Capabilities { get; }

    // model: the provider-side model name (the registry has resolved aliases).
    Task<ChatResponse> ChatAsync(ChatRequest request, string model, CancellationToken cancellationToken);

    // Deltas as the provider produces them; the enumeration ends after the delta with FinishReason. A failure after
    // the first delta is STREAM_BROKEN (or the provider's classified error), before it the classified error.
    IAsyncEnumerable<ChatDelta> StreamChatAsync(ChatRequest request, string model, CancellationToken cancellationToken);

    Task<EmbeddingResponse> EmbedAsync(EmbeddingRequest request, string model, CancellationToken cancellationToken);

    // What the provider serves right now (Ollama's tags, OpenAI's /v1/models, the GGUF files of the models directory).
    Task<IReadOnlyList<ProviderModel>> ListModelsAsync(CancellationToken cancellationToken);

    // A cheap probe (a models listing, a health endpoint); never throws: failures are in the result.
    Task<ProviderHealth> CheckHealthAsync(CancellationToken cancellationToken);
}

[Flags]
public enum ProviderCapabilities
{
    None = 0,
    Chat = 1,
    Streaming = 2,
    Embeddings = 4,
    Tools = 8,
    JsonMode = 16,
    // Runs in this process or on this machine: routing's LOCAL preference and cache warming apply.
    Local = 32,
}

public sealed record ProviderModel(string Name, long? SizeBytes = null, int? ContextLength = null, bool Loaded = false);

public sealed record ProviderHealth(bool Healthy, TimeSpan Latency, string? Error = null);
