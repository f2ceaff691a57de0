using System.Text.Json;
using Wayang.Fast.Execution.Runs;

namespace Wayang.Fast.Execution.DeadLetters;

// A task whose attempts ran out, with everything needed to understand and replay it. Stored durably per tenant.
public sealed class DeadLetter
{
    public string Id { get; set; } = "";
    public string TenantId { get; set; } = "";
    public string RunId { get; set; } = "";
    public string WorkflowId { get; set; } = "";
    public int WorkflowVersion { get; set; }
    public string NodeId { get; set; } = "";
    public string? ExecutorType { get; set; }
    public JsonElement? Input { get; set; }
    public JsonElement? Config { get; set; }
    public List<AttemptRecord> Attempts { get; set; } = [];
    public string? LastErrorCode { get; set; }
    public string? LastErrorMessage { get; set; }
    // The executor that failed the last attempt.
    public string? ExecutorId { get; set; }
    public long DeadLetteredAtMs { get; set; }
}
