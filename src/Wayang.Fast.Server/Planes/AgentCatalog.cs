using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Control.Definitions;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Engine;

namespace Wayang.Fast.Server.Planes;

// The bridge between the planes for agent definitions: the execution plane asks (through the interface it owns)
// whether an AGENT node's agent version is published; the control plane asks whether an agent version is still
// used before archiving it. Neither plane references the other; the server does.
internal sealed class AgentCatalog(AgentRegistry agents) : IAgentCatalog
{
    private ExecutionEngine? _engine;

    public AgentRegistry Agents { get; } = agents;

    // Set once the engine exists (it is built with this catalog).
    public void Attach(ExecutionEngine engine) => _engine = engine;

    public bool IsPublished(string tenantId, string agentId, int version) => version > 0 && Agents.IsPublished(tenantId, agentId, version);

    // An agent version is in use while a VALIDATED or PUBLISHED workflow version calls it: archiving it would leave
    // runnable workflows pointing at an agent that can no longer be resolved.
    public bool IsUsed(string tenantId, string agentId, int version)
    {
        var engine = _engine;
        if (engine is null)
            return false;
        foreach (var summary in engine.ListWorkflows(tenantId))
        {
            for (int i = 0; i < summary.Versions.Count; i++)
            {
                var state = i < summary.States.Count ? summary.States[i] : DefinitionState.Published;
                if (state is not (DefinitionState.Validated or DefinitionState.Published))
                    continue;
                var definition = engine.GetWorkflowVersion(tenantId, summary.WorkflowId, summary.Versions[i])?.Definition;
                if (definition is null)
                    continue;
                foreach (var node in definition.Nodes)
                {
                    if (node.Type == NodeType.Agent && node.Agent == agentId && node.AgentVersion == version)
                        return true;
                }
            }
        }
        return false;
    }
}
