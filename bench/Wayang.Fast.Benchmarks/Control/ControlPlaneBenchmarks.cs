using System.Text;
using BenchmarkDotNet.Attributes;
using Wayang.Fast.Common.Audit;
using Wayang.Fast.Control.Audit;
using Wayang.Fast.Control.Definitions;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Benchmarks.Control;

// What the control plane costs besides the RBAC check (AuthorizationBenchmarks): recording one audit record (encode,
// SHA-256 chain, journal enqueue; Relaxed durability so the commit's fsync is not in the number: it is shared by every
// record of a group commit) and checking one definition against its JSON Schema (registration time, not a hot path).
[MemoryDiagnoser]
public class ControlPlaneBenchmarks
{
    private static readonly byte[] Workflow = Encoding.UTF8.GetBytes("""
        {"id":"orders","inputs":[{"name":"order","required":true}],
         "nodes":[
           {"id":"charge","type":"TASK","executorType":"payments","retry":{"maxAttempts":3,"initialDelayMs":500},"timeoutMs":30000},
           {"id":"check","type":"DECISION","dependsOn":["charge"],"transitions":[
              {"on":"CONDITION","to":"ship","condition":{"path":"charge.status","op":"EQ","value":"ok"}},
              {"on":"DEFAULT","to":"refund"}]},
           {"id":"ship","type":"TASK","executorType":"shipping"},
           {"id":"refund","type":"TASK","executorType":"payments","critical":false}],
         "outputs":{"shipment":{"path":"ship.id"}}}
        """);

    private static readonly AuditEvent Denial = new()
    {
        TenantId = "acme", PrincipalId = "wyk_0123456789abcdef", PrincipalTenantId = "acme", Opcode = 0x0210, Operation = "RunSubmit",
        Resource = "", Outcome = AuditOutcome.Denied, Reason = "PERMISSION_DENIED", ConnectionId = 42,
    };

    private string _directory = "";
    private AuditLog _audit = null!;

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), "wayang-bench-audit-" + Guid.NewGuid().ToString("N"));
        _audit = AuditLog.Open(_directory, new StorageOptions { Durability = DurabilityMode.Relaxed, JournalPageBits = 20, JournalMemoryBits = 24 });
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _audit.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark]
    public long AuditAppend() => _audit.AppendAsync(Denial).AsTask().GetAwaiter().GetResult().Sequence;

    [Benchmark]
    public int WorkflowSchemaCheck() => DefinitionSchemas.ValidateWorkflow(Workflow).Count;
}
