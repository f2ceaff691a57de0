namespace Wayang.Fast.Inference.Adapters.LlamaCpp;

public sealed class LlamaCppOptions
{
    public string Name { get; set; } = "llamacpp";
    // GGUF files; a model's name is its file name without ".gguf".
    public string ModelsDirectory { get; set; } = "";
    // Tokens of KV cache each concurrent sequence gets (prompt plus completion). 0: the model's trained context,
    // capped at 4096 so that a model trained for 128k does not reserve gigabytes per sequence.
    public int ContextLength { get; set; }
    // Requests decoded together on one context; more wait for a free sequence.
    public int MaxSequences { get; set; } = 4;
    // Tokens per llama_decode call: one per generating sequence plus prompt chunks.
    public int BatchSize { get; set; } = 512;
    // llama.cpp's compute threads; 0: its default.
    public int Threads { get; set; }
    // The completion budget of a request that names none.
    public int DefaultMaxTokens { get; set; } = 512;

    // Tests only: called on the decode thread after every step with the model's stop token, so a test can hold the
    // decoder between steps (and a stop still ends the wait) instead of racing it.
    internal Action<CancellationToken>? AfterStepForTests { get; set; }

    // Tests only: an f32 KV cache and no flash attention, so llama.cpp computes in f32 throughout and serves as the
    // token-for-token oracle of our engine (its default f16 cache rounds K/V, which can flip a near-tie greedy pick).
    internal bool F32KvCacheForTests { get; set; }
}
