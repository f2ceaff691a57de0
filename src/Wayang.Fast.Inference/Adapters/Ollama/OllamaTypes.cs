using Wayang.Fast.Inference.Contracts;

namespace Wayang.Fast.Inference.Adapters.Ollama;

// Ollama's own accounting of one answer (its final object's *_duration fields, nanoseconds on the wire). Load is the
// time spent loading the model into memory: a cold model shows here, which is what cache warming is judged by.
public sealed record OllamaTimings(
    TimeSpan Total,
    TimeSpan Load,
    TimeSpan PromptEval,
    TimeSpan Eval,
    int PromptEvalCount,
    int EvalCount,
    string? DoneReason);

// A unary chat answer with Ollama's timings (IInferenceProvider.ChatAsync returns only the response).
public sealed record OllamaChatResult(ChatResponse Response, OllamaTimings Timings);

// Raised once per completed chat, unary or streamed: the stream's deltas carry usage but have no room for timings.
public sealed class OllamaTimingsEventArgs(string model, bool streamed, OllamaTimings timings) : EventArgs
{
    public string Model { get; } = model;
    public bool Streamed { get; } = streamed;
    public OllamaTimings Timings { get; } = timings;
}

// What /api/show tells about a model. ContextLength is the model's trained context (model_info "<arch>.context_length"),
// not the num_ctx a request runs with.
public sealed record OllamaModelDetails(
    string Model,
    string? Architecture,
    int? ContextLength,
    IReadOnlyList<string> Capabilities,
    string? ParameterSize,
    string? QuantizationLevel);
