using Wayang.Fast.Inference.Adapters.Anthropic;
using Wayang.Fast.Inference.Adapters.Gollek;
using Wayang.Fast.Inference.Adapters.LlamaCpp;
using Wayang.Fast.Inference.Adapters.Ollama;
using Wayang.Fast.Inference.Adapters.OpenAi;
using Wayang.Fast.Inference.Adapters.Triton;
using Wayang.Fast.Inference.Providers.Http;

namespace Wayang.Fast.Inference.Providers;

// One provider instance as configuration describes it ("Wayang:Inference:Providers:<n>"). Kind picks the adapter;
// the HTTP fields serve ollama, openai, anthropic and triton, the models-directory fields the in-process runtimes
// (llamacpp, gollek).
public sealed class ProviderConfig
{
    public string Name { get; set; } = "";
    // llamacpp, gollek, ollama, openai, anthropic, triton.
    public string Kind { get; set; } = "";
    public string? BaseAddress { get; set; }
    // Prefer supplying it through the environment (WAYANG_Inference__Providers__0__ApiKey) over a file.
    public string? ApiKey { get; set; }
    public double ConnectTimeoutSeconds { get; set; } = 5;
    public Dictionary<string, string> Headers { get; set; } = new(StringComparer.OrdinalIgnoreCase);
    // ollama: how long a model stays loaded after a request (keep_alive); null: Ollama's default.
    public double? KeepAliveSeconds { get; set; }
    // triton and gollek: max_tokens when a request gives none (Triton's generate extension requires one).
    public int DefaultMaxTokens { get; set; } = 1024;
    // llamacpp and gollek.
    public string? ModelsDirectory { get; set; }
    public int ContextLength { get; set; }
    public int MaxSequences { get; set; } = 4;
    public int Threads { get; set; }
    // gollek: tokens per scheduler step (0: 2048 or the context) and the hold of the first step after idle.
    public int MaxBatchedTokens { get; set; }
    public double MaxBatchWaitMilliseconds { get; set; }
    // gollek: where the forward pass runs, "cpu" (default), "cuda" or "ilgpu-cpu" (see GollekOptions.Backend).
    public string? Backend { get; set; }
}

public static class ProviderFactory
{
    public static readonly IReadOnlyList<string> Kinds = ["llamacpp", "gollek", "ollama", "openai", "anthropic", "triton"];

    // ArgumentException naming the provider for what cannot work (an unknown kind, a missing address or directory).
    public static IInferenceProvider Create(ProviderConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (string.IsNullOrWhiteSpace(config.Name))
            throw new ArgumentException("An inference provider needs a Name.", nameof(config));
        switch (config.Kind.ToLowerInvariant())
        {
            case "llamacpp":
                if (string.IsNullOrWhiteSpace(config.ModelsDirectory))
                    throw new ArgumentException($"Provider '{config.Name}' (llamacpp) needs a ModelsDirectory.", nameof(config));
                return new LlamaCppProvider(new LlamaCppOptions
                {
                    Name = config.Name, ModelsDirectory = config.ModelsDirectory, ContextLength = config.ContextLength, MaxSequences = config.MaxSequences, Threads = config.Threads,
                });
            case "gollek":
                if (string.IsNullOrWhiteSpace(config.ModelsDirectory))
                    throw new ArgumentException($"Provider '{config.Name}' (gollek) needs a ModelsDirectory.", nameof(config));
                if (config.MaxBatchedTokens < 0 || (config.MaxBatchedTokens > 0 && config.MaxBatchedTokens < config.MaxSequences))
                    throw new ArgumentException($"Provider '{config.Name}' (gollek) has MaxBatchedTokens {config.MaxBatchedTokens}; it must be 0 (the default) or at least MaxSequences ({config.MaxSequences}), so every decode fits a step.", nameof(config));
                if (config.MaxBatchWaitMilliseconds is < 0 or > 60_000 || double.IsNaN(config.MaxBatchWaitMilliseconds))
                    throw new ArgumentException($"Provider '{config.Name}' (gollek) has MaxBatchWaitMilliseconds {config.MaxBatchWaitMilliseconds}; it must be between 0 and 60000.", nameof(config));
                var backend = GollekBackends.Normalize(config.Backend)
                    ?? throw new ArgumentException($"Provider '{config.Name}' (gollek) has backend '{config.Backend}'; known backends: {string.Join(", ", GollekBackends.All)}.", nameof(config));
                return new GollekProvider(new GollekOptions
                {
                    Name = config.Name, ModelsDirectory = config.ModelsDirectory, ContextLength = config.ContextLength, MaxSequences = config.MaxSequences, Threads = config.Threads,
                    DefaultMaxTokens = config.DefaultMaxTokens, Backend = backend, MaxBatchedTokens = config.MaxBatchedTokens,
                    MaxBatchWait = TimeSpan.FromMilliseconds(config.MaxBatchWaitMilliseconds),
                });
            case "ollama":
                return new OllamaProvider(Http(config), config.KeepAliveSeconds is double s ? TimeSpan.FromSeconds(s) : null);
            case "openai":
                return new OpenAiProvider(Http(config));
            case "anthropic":
                return new AnthropicProvider(Http(config));
            case "triton":
                return new TritonProvider(Http(config), config.DefaultMaxTokens);
            default:
                throw new ArgumentException($"Provider '{config.Name}' has kind '{config.Kind}'; known kinds: {string.Join(", ", Kinds)}.", nameof(config));
        }
    }

    private static HttpProviderOptions Http(ProviderConfig config)
    {
        if (!Uri.TryCreate(config.BaseAddress, UriKind.Absolute, out var address) || address.Scheme is not ("http" or "https"))
            throw new ArgumentException($"Provider '{config.Name}' ({config.Kind}) needs an http(s) BaseAddress.", nameof(config));
        return new HttpProviderOptions
        {
            Name = config.Name,
            BaseAddress = address,
            ApiKey = config.ApiKey,
            ConnectTimeout = TimeSpan.FromSeconds(config.ConnectTimeoutSeconds > 0 ? config.ConnectTimeoutSeconds : 5),
            Headers = new Dictionary<string, string>(config.Headers, StringComparer.OrdinalIgnoreCase),
        };
    }
}
