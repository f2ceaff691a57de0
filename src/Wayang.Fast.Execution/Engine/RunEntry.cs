using System.Text;
using Wayang.Fast.Execution.DeadLetters;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Dispatch;
using Wayang.Fast.Execution.Planning;
using Wayang.Fast.Execution.Runs;

namespace Wayang.Fast.Execution.Engine;

// One run the engine holds in memory: its durable state plus what only lives in memory (armed attempt deadlines,
// AGENT calls in flight, work deferred while suspended). Everything here is guarded by Gate.
internal sealed class RunEntry
{
    public RunEntry(RunState state, CompiledWorkflow workflow, WorkflowInfo info)
    {
        State = state;
        Workflow = workflow;
        Info = info;
        Key = Encoding.UTF8.GetBytes(string.Concat(ExecutionEngine.RunKeyPrefix, state.RunId));
    }

    public readonly Lock Gate = new();
    public readonly CompiledWorkflow Workflow;
    public readonly WorkflowInfo Info;
    public readonly byte[] Key;
    public readonly RunState State;

    // The latest write of this run's record: the journal commits in order, so once it completes every earlier write
    // is durable too. Readers that show state (GetRun, a duplicate result's ack) await it first.
    public Task PendingWrite = Task.CompletedTask;

    // Set when a finished run leaves the active map: whoever still holds this object must look the run up again.
    public bool Removed;

    // This run's armed attempt deadlines (a chain through DeadlineEntry.NextInRun).
    public DeadlineEntry? Deadlines;

    // AGENT calls in flight, by node id.
    public Dictionary<string, CancellationTokenSource>? AgentCalls;

    // TASK/AGENT nodes that became ready (or came back from an expired lease) while the run was suspended:
    // started on resume. Only allocated for suspended runs.
    public List<string>? Deferred;
}

// What the engine derives once per compiled workflow version.
internal sealed class WorkflowInfo
{
    public WorkflowInfo(CompiledWorkflow workflow, long defaultTimeoutMs)
    {
        var nodes = workflow.Nodes;
        Predecessors = new string[nodes.Length][];
        HandlesFailure = new bool[nodes.Length];
        TimeoutMs = new long[nodes.Length];
        var entryTypes = new List<string>();
        for (int i = 0; i < nodes.Length; i++)
        {
            var preds = new List<string>();
            foreach (var edge in workflow.Incoming[i])
            {
                var id = nodes[edge.From].Id;
                if (!preds.Contains(id))
                    preds.Add(id);
            }
            Predecessors[i] = [.. preds];
            HandlesFailure[i] = nodes[i].Transitions.Exists(t => t.On == TransitionOn.Failure);
            TimeoutMs[i] = nodes[i].TimeoutMs is long t && t > 0 ? t : defaultTimeoutMs;
            if (workflow.Incoming[i].Length == 0 && nodes[i].Type == NodeType.Task && nodes[i].ExecutorType is { } type && !entryTypes.Contains(type))
                entryTypes.Add(type);
        }
        EntryTaskTypes = [.. entryTypes];
    }

    // Per node index: the distinct direct predecessors (dependsOn and transition sources), for TaskAssignment.Upstream.
    public string[][] Predecessors { get; }

    public bool[] HandlesFailure { get; }

    // Per node index: the attempt timeout (the node's timeoutMs or the engine default).
    public long[] TimeoutMs { get; }

    // Executor types of the TASK entry nodes: the queues a submission must find room in.
    public string[] EntryTaskTypes { get; }

    // Runs of this version that are not finished (RunState.IsTerminal false): archiving the version waits for 0.
    // Changed with Interlocked; see ExecutionEngine.Definitions.
    public int ActiveRuns;
}

// An armed attempt deadline (TASK or AGENT). Lives in two lists: its run's chain (guarded by the run's Gate) and
// the timers' per-timeout list (guarded by the timers' lock).
internal sealed class DeadlineEntry
{
    public DeadlineEntry(RunEntry run, string nodeId, int attempt, long dueAtMs, long timeoutMs)
    {
        Run = run;
        NodeId = nodeId;
        Attempt = attempt;
        DueAtMs = dueAtMs;
        TimeoutMs = timeoutMs;
    }

    public RunEntry Run { get; }
    public string NodeId { get; }
    public int Attempt { get; }
    public long DueAtMs { get; }
    public long TimeoutMs { get; }

    public DeadlineEntry? NextInRun;

    // Timers' list links.
    public DeadlineEntry? Prev;
    public DeadlineEntry? Next;
    public bool Linked;
}

// What a state change under a run's lock asks to be done after the lock is released (and, for starts, after the
// write that made them ready is durable): the dispatcher is never called under a run lock.
internal struct Effects
{
    public QueuedTask? Task0;
    public List<QueuedTask>? MoreTasks;
    public List<(string NodeId, int Attempt)>? Agents;
    public string? Release;
    public List<string>? MoreReleases;
    public bool RemoveRun;
    public bool Finished;
    public DeadLetter? DeadLetter;
    public List<CancellationTokenSource>? CancelAgents;

    public void AddTask(QueuedTask task)
    {
        if (Task0 is null)
            Task0 = task;
        else
            (MoreTasks ??= []).Add(task);
    }

    public void AddRelease(string taskId)
    {
        if (Release is null)
            Release = taskId;
        else
            (MoreReleases ??= []).Add(taskId);
    }

    public void ClearStarts()
    {
        Task0 = null;
        MoreTasks = null;
        Agents = null;
    }
}
