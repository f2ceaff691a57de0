using System.Collections.Frozen;
using Wayang.Fast.Execution.Definitions;

namespace Wayang.Fast.Execution.Planning;

// A validated definition with the indexes the planner needs, built once per registered version: incoming edges
// per node, a topological order, and each node's effective retry policy.
public sealed class CompiledWorkflow
{
    private static readonly RetryPolicy NoRetry = new() { MaxAttempts = 1 };

    private CompiledWorkflow(WorkflowDefinition definition, string tenantId)
    {
        Definition = definition;
        TenantId = tenantId;
        Nodes = [.. definition.Nodes];
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < Nodes.Length; i++)
            index[Nodes[i].Id] = i;
        IndexOf = index.ToFrozenDictionary(StringComparer.Ordinal);

        var incoming = new List<Edge>[Nodes.Length];
        for (int i = 0; i < incoming.Length; i++)
            incoming[i] = [];
        for (int to = 0; to < Nodes.Length; to++)
        {
            foreach (var dep in Nodes[to].DependsOn)
                incoming[to].Add(new Edge(index[dep], -1));
        }
        for (int from = 0; from < Nodes.Length; from++)
        {
            var transitions = Nodes[from].Transitions;
            for (int t = 0; t < transitions.Count; t++)
                incoming[index[transitions[t].To]].Add(new Edge(from, t));
        }
        Incoming = [.. incoming.Select(l => l.ToArray())];
        TopologicalOrder = TopologicalSort(Incoming) ?? throw new InvalidOperationException("The workflow graph has a cycle; validate before compiling.");
        Retry = [.. Nodes.Select(n => n.Retry ?? definition.DefaultRetry ?? NoRetry)];
    }

    public WorkflowDefinition Definition { get; }
    public string TenantId { get; }
    public string WorkflowId => Definition.Id;
    public int Version => Definition.Version;
    public NodeDefinition[] Nodes { get; }
    public FrozenDictionary<string, int> IndexOf { get; }
    // Per node: the edges that end at it. TransitionIndex -1 is a dependsOn edge (AND); otherwise the index of the
    // source node's transition (OR across transition edges).
    public Edge[][] Incoming { get; }
    public int[] TopologicalOrder { get; }
    public RetryPolicy[] Retry { get; }

    public bool HasAgentNodes => Nodes.Any(n => n.Type == NodeType.Agent);

    public static CompiledWorkflow Compile(string tenantId, WorkflowDefinition definition) => new(definition, tenantId);

    // Kahn's algorithm; null when there is a cycle.
    public static int[]? TopologicalSort(Edge[][] incoming)
    {
        int n = incoming.Length;
        var indegree = new int[n];
        var outgoing = new List<int>[n];
        for (int i = 0; i < n; i++)
            outgoing[i] = [];
        for (int to = 0; to < n; to++)
        {
            foreach (var e in incoming[to])
            {
                indegree[to]++;
                outgoing[e.From].Add(to);
            }
        }
        var order = new int[n];
        int count = 0;
        var ready = new Queue<int>();
        for (int i = 0; i < n; i++)
        {
            if (indegree[i] == 0)
                ready.Enqueue(i);
        }
        while (ready.Count > 0)
        {
            int node = ready.Dequeue();
            order[count++] = node;
            foreach (int next in outgoing[node])
            {
                if (--indegree[next] == 0)
                    ready.Enqueue(next);
            }
        }
        return count == n ? order : null;
    }

    public readonly record struct Edge(int From, int TransitionIndex)
    {
        public bool IsDependsOn => TransitionIndex < 0;
    }
}
