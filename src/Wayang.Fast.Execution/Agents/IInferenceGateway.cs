using System.Text.Json;

namespace Wayang.Fast.Execution.Agents;

// What an AGENT node needs from the inference plane, owned by the execution plane (ARCHITECTURE: the calling plane
// owns the interface). A server without an inference plane has none, and AGENT nodes are refused at validation.
public interface IInferenceGateway
{
    ValueTask<AgentCallResult> CallAgentAsync(AgentCall call, CancellationToken cancellationToken);
}

// AgentVersion: the node's agentVersion (null when the workflow names the agent without one).
public sealed record AgentCall(string TenantId, string RunId, string NodeId, int Attempt, string Agent, JsonElement? Config, JsonElement? Input, JsonElement? Upstream,
    int? AgentVersion = null);

// Success with Output, or a failure with an error code string (retried per the node's retry policy unless not retryable).
public sealed record AgentCallResult(bool Success, JsonElement? Output, string? ErrorCode = null, string? ErrorMessage = null, bool Retryable = true);
