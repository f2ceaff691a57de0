namespace Wayang.Fast.Execution.Definitions;

public sealed record ValidationContext(bool InferenceAvailable, IReadOnlyCollection<string> KnownExecutorTypes, int MaxNodes);

// Structural validation at registration (STUB: implemented by the validator work item).
public static class WorkflowValidator
{
    // Throws WayangException(WORKFLOW_INVALID) naming the offending node, or AGENT_UNAVAILABLE.
    public static void Validate(WorkflowDefinition definition, ValidationContext context) => throw new NotImplementedException();
}
