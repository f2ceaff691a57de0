namespace Wayang.Fast.Inference.Contracts;

public sealed class EmbeddingRequest
{
    public string Model { get; set; } = "";
    public List<string> Inputs { get; set; } = [];
    public string TenantId { get; set; } = "";
    public InferenceTimeouts? Timeouts { get; set; }
}

public sealed class EmbeddingResponse
{
    public string Provider { get; set; } = "";
    public string Model { get; set; } = "";
    // One vector per input, in input order.
    public List<float[]> Vectors { get; set; } = [];
    public TokenUsage Usage { get; set; } = new();
}
