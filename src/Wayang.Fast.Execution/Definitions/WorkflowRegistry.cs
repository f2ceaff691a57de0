using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Execution.Planning;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Execution.Definitions;

// Tenant-scoped, versioned workflow definitions (STUB: implemented by the registry work item).
public sealed class WorkflowRegistry
{
    public WorkflowRegistry(IStateStore store, ValidationContext validation, TimeProvider? time = null) => throw new NotImplementedException();

    // Validates, assigns the next version (1, 2, ...), stores durably, returns the compiled version.
    public ValueTask<CompiledWorkflow> RegisterAsync(string tenantId, WorkflowDefinition definition, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    // version 0: the latest.
    public CompiledWorkflow? Get(string tenantId, string workflowId, int version) => throw new NotImplementedException();

    public IReadOnlyList<WorkflowSummary> List(string tenantId) => throw new NotImplementedException();
}
