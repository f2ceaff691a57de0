using BenchmarkDotNet.Attributes;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Server.Sessions;
using Wayang.Fast.Testing;

namespace Wayang.Fast.Benchmarks.Server;

// The RBAC decision the dispatcher makes for every request: opcode -> permission, then the principal's live grant.
// Principals come from a real TenantDirectory (a developer key, and a tenant-role key), so the grant is the one a
// connection reads. Each operation checks a mix of allowed and denied opcodes spread over the opcode table.
[MemoryDiagnoser]
public class AuthorizationBenchmarks
{
    private static readonly Opcode[] Mix =
    [
        Opcode.Ping, Opcode.RunSubmit, Opcode.RunGet, Opcode.TaskResult, Opcode.DlqReplay, Opcode.AuditQuery,
        Opcode.KeyCreate, Opcode.DefinitionTransition,
    ];

    private Principal _developer = null!;
    private Principal _custom = null!;

    [GlobalSetup]
    public void Setup()
    {
        var directory = new TenantDirectory(new InMemoryStateStore());
        directory.CreateTenantAsync("acme", "").AsTask().GetAwaiter().GetResult();
        directory.PutRoleAsync("acme", "runner", ["runs.read", "runs.submit", "dlq.manage"]).AsTask().GetAwaiter().GetResult();
        var developer = directory.CreateKeyAsync("acme", "dev", [Roles.Developer]).AsTask().GetAwaiter().GetResult();
        var custom = directory.CreateKeyAsync("acme", "runner", ["runner", Roles.Viewer]).AsTask().GetAwaiter().GetResult();
        directory.Authenticate(developer.Secret, out var p1);
        directory.Authenticate(custom.Secret, out var p2);
        _developer = p1!;
        _custom = p2!;
    }

    // One decision (the per-request cost), averaged over the mix.
    [Benchmark(OperationsPerInvoke = 16)]
    public int Check()
    {
        int allowed = 0;
        foreach (var opcode in Mix)
        {
            if (Authorization.Check(_developer, opcode) == ErrorCode.None)
                allowed++;
            if (Authorization.Check(_custom, opcode) == ErrorCode.None)
                allowed++;
        }
        return allowed;
    }
}
