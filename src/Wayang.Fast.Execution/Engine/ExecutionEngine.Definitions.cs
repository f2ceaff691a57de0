using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Planning;
using Wayang.Fast.Execution.Runs;

namespace Wayang.Fast.Execution.Engine;

// The workflow lifecycle (WorkflowRegistry) as the server sees it, and the per-version count of unfinished runs that
// lets the registry refuse to archive a version in use.
//
// The count lives in WorkflowInfo (one per compiled version) and follows RunState.IsTerminal: +1 when a run is
// created (CreateRun) or loaded unfinished (recovery, a replay's Activate), -1/+1 whenever a run's status crosses
// the terminal line (TransitionRunLocked, under the run's lock). It is rebuilt at recovery and never stored. A run
// counts as finished from the moment it is finished in memory, before its final write is durable: a crash in
// between brings it back unfinished on a version that may be ARCHIVED by then, which is allowed (archived versions
// still load for the runs that pinned them).
public sealed partial class ExecutionEngine : IWorkflowVersionUsage
{
    // A new DRAFT (structure checked only). See WorkflowRegistry.CreateAsync.
    public ValueTask<WorkflowVersionInfo> CreateWorkflowAsync(string tenantId, WorkflowDefinition definition, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        return _registry.CreateAsync(tenantId, definition, cancellationToken);
    }

    // DEFINITION_STATE_CONFLICT, WORKFLOW_INVALID, DEFINITION_IN_USE: see WorkflowRegistry.TransitionAsync.
    public ValueTask<WorkflowVersionInfo> TransitionWorkflowAsync(string tenantId, string workflowId, int version, DefinitionState target,
        CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        return _registry.TransitionAsync(tenantId, workflowId, version, target, cancellationToken);
    }

    // The checks of a publication, storing nothing.
    public void ValidateWorkflow(string tenantId, WorkflowDefinition definition) => _registry.Validate(tenantId, definition);

    // version 0: the newest version in any state. Null when it does not exist in this tenant.
    public WorkflowVersionInfo? GetWorkflowVersion(string tenantId, string workflowId, int version) => _registry.GetVersion(tenantId, workflowId, version);

    int IWorkflowVersionUsage.ActiveRuns(string tenantId, string workflowId, int version)
    {
        var workflow = _registry.Get(tenantId, workflowId, version);
        // No WorkflowInfo yet: no run of this version was ever created or loaded.
        return workflow is not null && _infos.TryGetValue(workflow, out var info) ? Volatile.Read(ref info.ActiveRuns) : 0;
    }

    // Before a new run is built. Counted first, checked second (the registry marks a version before it counts, see
    // WorkflowRegistry.ArchiveAsync): a submission racing an archive is either counted by it (the archive is refused)
    // or refused here (the archive goes through), never both, never neither.
    private void StartCounting(CompiledWorkflow workflow, WorkflowInfo info)
    {
        Interlocked.Increment(ref info.ActiveRuns);
        if (_registry.IsRunnable(workflow))
            return;
        Interlocked.Decrement(ref info.ActiveRuns);
        throw new WayangException(ErrorCode.WorkflowNotPublished,
            $"Workflow '{workflow.WorkflowId}' version {workflow.Version} is no longer PUBLISHED.");
    }

    // Every change of a known run's status that can cross the terminal line goes through here.
    private static void TransitionRunLocked(RunEntry entry, RunStatus to)
    {
        var state = entry.State;
        bool wasTerminal = state.IsTerminal;
        RunStateMachine.Transition(state, to);
        if (wasTerminal != state.IsTerminal)
            Interlocked.Add(ref entry.Info.ActiveRuns, wasTerminal ? 1 : -1);
    }
}
