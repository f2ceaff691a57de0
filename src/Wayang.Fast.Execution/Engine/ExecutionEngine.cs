using Microsoft.Extensions.Logging;
using Wayang.Fast.Execution.Agents;
using Wayang.Fast.Execution.DeadLetters;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Runs;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Execution.Engine;

// The execution plane (STUB: the engine work item implements it). Every method that changes state returns only
// after that change is durable in the state store.
public sealed class ExecutionEngine : IAsyncDisposable
{
    private ExecutionEngine() { }

    // Loads definitions, runs, dead letters; requeues what was queued or leased at the crash; re-arms timers.
    public static ValueTask<ExecutionEngine> OpenAsync(IStateStore store, ExecutionOptions options, IInferenceGateway? inference = null,
        TimeProvider? time = null, ILogger? logger = null, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    public bool InferenceAvailable => throw new NotImplementedException();

    // ---- definitions ----
    public ValueTask<WorkflowSummary> RegisterWorkflowAsync(string tenantId, WorkflowDefinition definition, CancellationToken cancellationToken = default) => throw new NotImplementedException();
    public WorkflowDefinition? GetWorkflow(string tenantId, string workflowId, int version) => throw new NotImplementedException();
    public IReadOnlyList<WorkflowSummary> ListWorkflows(string tenantId) => throw new NotImplementedException();

    // ---- runs ----
    public ValueTask<SubmitRunResult> SubmitAsync(string tenantId, SubmitRunRequest request, CancellationToken cancellationToken = default) => throw new NotImplementedException();
    // A deep copy, safe to read; null when missing or in another tenant. Waits until what it shows is durable.
    public ValueTask<RunState?> GetRunAsync(string tenantId, string runId, CancellationToken cancellationToken = default) => throw new NotImplementedException();
    public IReadOnlyList<RunSummary> ListRuns(string tenantId, RunStatus? status, int limit) => throw new NotImplementedException();
    public ValueTask<RunSummary> CancelRunAsync(string tenantId, string runId, string? reason, CancellationToken cancellationToken = default) => throw new NotImplementedException();
    public ValueTask<RunSummary> SuspendRunAsync(string tenantId, string runId, CancellationToken cancellationToken = default) => throw new NotImplementedException();
    public ValueTask<RunSummary> ResumeRunAsync(string tenantId, string runId, CancellationToken cancellationToken = default) => throw new NotImplementedException();
    public ValueTask<RunSummary> SignalRunAsync(string tenantId, string runId, string signal, System.Text.Json.JsonElement? payload, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    // ---- executors ----
    // tenantId: the executor's tenant; shared = true (system-tenant executors) serves every tenant's queues.
    public ExecutorHandle RegisterExecutor(string tenantId, bool shared, ExecutorRegistration registration, IExecutorChannel channel) => throw new NotImplementedException();
    public void GrantCredit(ExecutorHandle executor, int credits) => throw new NotImplementedException();
    public void SetSlots(ExecutorHandle executor, int slots) => throw new NotImplementedException();
    public void Heartbeat(ExecutorHandle executor) => throw new NotImplementedException();
    public void UnregisterExecutor(ExecutorHandle executor) => throw new NotImplementedException();
    // callerTenantId: the tenant of the connection reporting; a result for another tenant's run is TASK_TOKEN_INVALID.
    public ValueTask<TaskResultAck> CompleteTaskAsync(string callerTenantId, bool shared, TaskResult result, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    // ---- queues and stats ----
    // tenantId null: every tenant (platform admin, /metrics).
    public ExecutionStats GetStats(string? tenantId) => throw new NotImplementedException();

    // ---- dead letters ----
    public IReadOnlyList<DeadLetter> ListDeadLetters(string tenantId, DeadLetterFilter filter) => throw new NotImplementedException();
    public DeadLetter? GetDeadLetter(string tenantId, string deadLetterId) => throw new NotImplementedException();
    // ids or (ids empty) the filter; paced at ratePerSecond (0: the option's default). Each entry either replays
    // (new attempt, recorded in the run, entry removed) or reports why not.
    public ValueTask<IReadOnlyList<ReplayOutcome>> ReplayDeadLettersAsync(string tenantId, IReadOnlyList<string> ids, DeadLetterFilter? filter, int ratePerSecond, CancellationToken cancellationToken = default) => throw new NotImplementedException();
    public ValueTask<int> DiscardDeadLettersAsync(string tenantId, IReadOnlyList<string> ids, DeadLetterFilter? filter, CancellationToken cancellationToken = default) => throw new NotImplementedException();

    public ValueTask DisposeAsync() => throw new NotImplementedException();
}
