namespace Wayang.Fast.Execution.Engine;

// An executor registered on one connection; opaque outside the execution plane (the dispatcher keeps its state here).
public sealed class ExecutorHandle
{
    internal ExecutorHandle(string executorId, string tenantId)
    {
        ExecutorId = executorId;
        TenantId = tenantId;
    }

    public string ExecutorId { get; }
    public string TenantId { get; }
}
