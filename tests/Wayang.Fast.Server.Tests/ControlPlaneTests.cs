using System.Text;
using MessagePack;
using Wayang.Fast.Common.Audit;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Tests;

// RBAC, the audit log and definitions over real sockets.
public sealed class ControlPlaneTests
{
    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    private static async Task<AuditRecordDto[]> AuditAsync(ProtocolConnection c, AuditQueryRequest query) =>
        (await c.CallAsync<AuditQueryRequest, AuditQueryResponse>(Opcode.AuditQuery, query)).Records;

    [Fact]
    public async Task A_denial_is_recorded_with_principal_tenant_opcode_reason_and_connection_and_only_its_tenant_sees_it()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await using var viewer = await h.ConnectAsync("viewer");
        await viewer.ExpectErrorAsync(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "one" }, ErrorCode.PermissionDenied);

        await using var auditor = await h.ConnectAsync("auditor");
        var denied = await AuditAsync(auditor, new AuditQueryRequest { Outcome = (byte)AuditOutcome.Denied });
        var record = Assert.Single(denied);
        Assert.Equal((ushort)Opcode.RunSubmit, record.Opcode);
        Assert.Equal("RunSubmit", record.Operation);
        Assert.Equal(ExecutionHarness.Tenant, record.TenantId);
        Assert.Equal(ExecutionHarness.Tenant, record.PrincipalTenantId);
        Assert.Equal(h.KeyId("viewer"), record.PrincipalId);
        Assert.Equal("PERMISSION_DENIED", record.Reason);
        Assert.True(record.ConnectionId > 0);
        Assert.True(record.TimeMs > 0);
        Assert.Equal(32, record.Hash.Length);

        // The auditor's own read is on record too.
        var reads = await AuditAsync(auditor, new AuditQueryRequest { Opcode = (ushort)Opcode.AuditQuery });
        Assert.Contains(reads, r => r.PrincipalId == h.KeyId("auditor") && r.Outcome == (byte)AuditOutcome.Allowed);

        // Another tenant's principals never see it; they may not even name this tenant.
        await using var otherAdmin = await h.ConnectWithKeyAsync(await h.CreateKeyAsync(ExecutionHarness.OtherTenant, "tenant-admin"));
        Assert.DoesNotContain(await AuditAsync(otherAdmin, new AuditQueryRequest()), r => r.TenantId == ExecutionHarness.Tenant);
        await otherAdmin.ExpectErrorAsync(Opcode.AuditQuery, new AuditQueryRequest { TenantId = ExecutionHarness.Tenant }, ErrorCode.PermissionDenied);
        await otherAdmin.ExpectErrorAsync(Opcode.AuditQuery, new AuditQueryRequest { TenantId = "*" }, ErrorCode.PermissionDenied);

        // The platform admin reads across tenants.
        await using var admin = await h.ConnectAdminAsync();
        var all = await AuditAsync(admin, new AuditQueryRequest { TenantId = "*", Outcome = (byte)AuditOutcome.Denied });
        Assert.Contains(all, r => r.Sequence == record.Sequence);
        Assert.Contains(all, r => r.TenantId == ExecutionHarness.OtherTenant && r.Operation == "AuditQuery");
    }

    [Fact]
    public async Task Changes_to_keys_roles_bindings_definitions_and_limits_are_recorded_and_the_chain_verifies_across_a_restart()
    {
        var dir = TestServer.NewDataDirectory();
        string adminKey;
        long headSequence;
        byte[] headHash;
        await using (var server = await TestServer.StartAsync(dataDirectory: dir))
        {
            adminKey = server.AdminKey;
            await using var admin = new ProtocolConnection(await server.ConnectAsync());
            await admin.CallAsync<TenantCreateRequest, TenantInfoDto>(Opcode.TenantCreate, new TenantCreateRequest { TenantId = "acme" });
            var key = await admin.CallAsync<KeyCreateRequest, KeyCreateResponse>(Opcode.KeyCreate, new KeyCreateRequest { TenantId = "acme", Name = "dev", Roles = ["viewer"] });
            await admin.CallAsync<RolePutRequest, RoleDto>(Opcode.RolePut, new RolePutRequest { TenantId = "acme", Name = "replayer", Permissions = ["dlq.manage"] });
            await admin.CallAsync<BindingRequest, ApiKeyInfoDto>(Opcode.BindingGrant, new BindingRequest { KeyId = key.Key.KeyId, Role = "developer" });
            await admin.CallAsync<TenantScheduleDto, TenantScheduleDto>(Opcode.TenantScheduleSet, new TenantScheduleDto { TenantId = "acme", Weight = 2 });
            await using var dev = new ProtocolConnection(await server.ConnectAsync(key.Secret));
            var draft = await dev.CallAsync<DefinitionRequest, DefinitionVersionDto>(Opcode.DefinitionCreate,
                new DefinitionRequest { Kind = 1, DefinitionJson = Utf8(ExecutionHarness.OneTaskJson) });
            await dev.CallAsync<DefinitionTransitionRequest, DefinitionVersionDto>(Opcode.DefinitionTransition,
                new DefinitionTransitionRequest { Kind = 1, Id = "one", Version = draft.Version, Target = (byte)DefinitionState.Published });
            await admin.ExpectErrorAsync(Opcode.KeyRevoke, new KeyRevokeRequest { KeyId = "wyk_missing" }, ErrorCode.KeyNotFound);

            var records = await AuditAsync(admin, new AuditQueryRequest { TenantId = "*" });
            Assert.Equal(
                ["TenantCreate", "KeyCreate", "RolePut", "BindingGrant", "TenantScheduleSet", "DefinitionCreate", "DefinitionTransition"],
                records.Where(r => r.Outcome == (byte)AuditOutcome.Allowed && r.Operation != "AuditQuery").Select(r => r.Operation));
            Assert.Contains(records, r => r.Operation == "DefinitionTransition" && r.Resource == "workflow:one@1->PUBLISHED" && r.TenantId == "acme");
            Assert.Contains(records, r => r.Operation == "BindingGrant" && r.Resource.EndsWith("/developer", StringComparison.Ordinal));
            // Records chain: each carries its predecessor's hash.
            for (int i = 1; i < records.Length; i++)
                Assert.Equal(records[i - 1].Hash, records[i].PreviousHash);
            var head = (await admin.CallBytesAsync(Opcode.AuditHead, [])).Decode<AuditHeadDto>();
            headSequence = head.Sequence;
            headHash = head.Hash;
        }

        await using (var server = await TestServer.StartAsync(dataDirectory: dir, adminKey: adminKey))
        {
            await using var admin = new ProtocolConnection(await server.ConnectAsync());
            var verify = (await admin.CallBytesAsync(Opcode.AuditVerify, [])).Decode<AuditVerifyResponse>();
            Assert.True(verify.Ok, verify.Reason);
            Assert.Equal(0, verify.FirstBrokenSequence);
            // Everything before the restart is there, plus the head read and this verify.
            Assert.True(verify.HeadSequence >= headSequence + 1);
            var old = await AuditAsync(admin, new AuditQueryRequest { TenantId = "*", AfterSequence = headSequence - 1, Limit = 1 });
            Assert.Equal(headHash, old.Single().Hash);
        }
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public async Task Tenant_A_cannot_read_or_guess_tenant_Bs_resources()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await using var otherAdmin = await h.ConnectWithKeyAsync(await h.CreateKeyAsync(ExecutionHarness.OtherTenant, "tenant-admin"));
        var otherKey = await otherAdmin.CallAsync<KeyCreateRequest, KeyCreateResponse>(Opcode.KeyCreate, new KeyCreateRequest { Name = "b-viewer", Roles = ["viewer"] });
        await otherAdmin.CallAsync<WorkflowRegisterRequest, WorkflowRegisterResponse>(Opcode.WorkflowRegister,
            new WorkflowRegisterRequest { DefinitionJson = Utf8("""{"id":"secret-flow","nodes":[{"id":"s","type":"TASK","executorType":"worker"}]}""") });
        var run = await otherAdmin.CallAsync<RunSubmitRequest, RunSubmitResponse>(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "secret-flow" });
        await otherAdmin.CallAsync<DefinitionRequest, DefinitionVersionDto>(Opcode.DefinitionCreate,
            new DefinitionRequest { Kind = 2, DefinitionJson = Utf8("""{"id":"secret-agent","model":"m"}""") });

        await using var a = await h.ConnectAsync("tenant-admin");
        // Each foreign id answers exactly like an id that exists nowhere: same code, same message shape.
        async Task Same<T>(Opcode opcode, Func<string, T> request, string foreignId, string missingId, ErrorCode code)
        {
            var foreign = await a.ExpectErrorAsync(opcode, request(foreignId), code);
            var missing = await a.ExpectErrorAsync(opcode, request(missingId), code);
            Assert.Equal(missing.Message?.Replace(missingId, "ID", StringComparison.Ordinal), foreign.Message?.Replace(foreignId, "ID", StringComparison.Ordinal));
        }

        await Same(Opcode.RunGet, id => new RunGetRequest { RunId = id }, run.RunId, "run_00000000000000000000000000", ErrorCode.RunNotFound);
        await Same(Opcode.RunCancel, id => new RunControlRequest { RunId = id }, run.RunId, "run_00000000000000000000000000", ErrorCode.RunNotFound);
        await Same(Opcode.WorkflowGet, id => new WorkflowGetRequest { WorkflowId = id }, "secret-flow", "no-such-flow", ErrorCode.WorkflowNotFound);
        await Same(Opcode.RunSubmit, id => new RunSubmitRequest { WorkflowId = id }, "secret-flow", "no-such-flow", ErrorCode.WorkflowNotFound);
        await Same(Opcode.DefinitionGet, id => new DefinitionGetRequest { Kind = 1, Id = id }, "secret-flow", "no-such-flow", ErrorCode.WorkflowNotFound);
        await Same(Opcode.DefinitionTransition, id => new DefinitionTransitionRequest { Kind = 1, Id = id, Version = 1, Target = 4 }, "secret-flow", "no-such-flow", ErrorCode.WorkflowNotFound);
        await Same(Opcode.DefinitionGet, id => new DefinitionGetRequest { Kind = 2, Id = id }, "secret-agent", "no-such-agent", ErrorCode.AgentNotFound);
        await Same(Opcode.DefinitionTransition, id => new DefinitionTransitionRequest { Kind = 2, Id = id, Version = 1, Target = 3 }, "secret-agent", "no-such-agent", ErrorCode.AgentNotFound);
        await Same(Opcode.KeyRevoke, id => new KeyRevokeRequest { KeyId = id }, otherKey.Key.KeyId, "wyk_0000000000000000", ErrorCode.KeyNotFound);
        await Same(Opcode.BindingGrant, id => new BindingRequest { KeyId = id, Role = "developer" }, otherKey.Key.KeyId, "wyk_0000000000000000", ErrorCode.KeyNotFound);

        // Listings never show the other tenant's things.
        var defs = await a.CallAsync<DefinitionListRequest, DefinitionListResponse>(Opcode.DefinitionList, new DefinitionListRequest());
        Assert.DoesNotContain(defs.Definitions, d => d.Id.StartsWith("secret", StringComparison.Ordinal));
        var runs = await a.CallAsync<RunListRequest, RunListResponse>(Opcode.RunList, new RunListRequest());
        Assert.DoesNotContain(runs.Runs, r => r.RunId == run.RunId);
        var bindings = await a.CallAsync<BindingListRequest, BindingListResponse>(Opcode.BindingList, new BindingListRequest());
        Assert.DoesNotContain(bindings.Bindings, b => b.KeyId == otherKey.Key.KeyId);
        // Naming the other tenant outright is refused (and audited).
        await a.ExpectErrorAsync(Opcode.BindingList, new BindingListRequest { TenantId = ExecutionHarness.OtherTenant }, ErrorCode.PermissionDenied);
        await a.ExpectErrorAsync(Opcode.RolePut, new RolePutRequest { TenantId = ExecutionHarness.OtherTenant, Name = "x" }, ErrorCode.PermissionDenied);
        await a.ExpectErrorAsync(Opcode.KeyList, new KeyListRequest { TenantId = ExecutionHarness.OtherTenant }, ErrorCode.PermissionDenied);

        // The other tenant's key still has its single role: nothing was changed by the probes.
        Assert.Equal(["viewer"], (await otherAdmin.CallAsync<KeyListRequest, KeyListResponse>(Opcode.KeyList, new KeyListRequest())).Keys.Single(k => k.KeyId == otherKey.Key.KeyId).Roles);
    }

    [Fact]
    public async Task A_binding_granted_or_revoked_applies_to_an_open_connection_at_its_next_request()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await h.RegisterOneTaskAsync();
        await using var viewer = await h.ConnectAsync("viewer");
        await viewer.ExpectErrorAsync(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "one" }, ErrorCode.PermissionDenied);

        await using var admin = await h.ConnectAsync("tenant-admin");
        await admin.CallAsync<BindingRequest, ApiKeyInfoDto>(Opcode.BindingGrant, new BindingRequest { KeyId = h.KeyId("viewer"), Role = "operator" });
        await viewer.CallAsync<RunSubmitRequest, RunSubmitResponse>(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "one" });

        // A tenant role changes everyone bound to it at once.
        await admin.CallAsync<RolePutRequest, RoleDto>(Opcode.RolePut, new RolePutRequest { Name = "submitter", Permissions = ["runs.submit"] });
        await admin.CallAsync<BindingRequest, ApiKeyInfoDto>(Opcode.BindingGrant, new BindingRequest { KeyId = h.KeyId("viewer"), Role = "submitter" });
        await admin.CallAsync<BindingRequest, ApiKeyInfoDto>(Opcode.BindingRevoke, new BindingRequest { KeyId = h.KeyId("viewer"), Role = "operator" });
        await viewer.CallAsync<RunSubmitRequest, RunSubmitResponse>(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "one" });
        await admin.CallAsync<RolePutRequest, RoleDto>(Opcode.RolePut, new RolePutRequest { Name = "submitter", Permissions = ["runs.read"] });
        await viewer.ExpectErrorAsync(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "one" }, ErrorCode.PermissionDenied);

        var roles = await admin.CallAsync<RoleListRequest, RoleListResponse>(Opcode.RoleList, new RoleListRequest());
        Assert.Contains(roles.Roles, r => r.Name == "submitter" && !r.BuiltIn && r.Permissions.Contains("runs.read"));
        Assert.DoesNotContain(roles.Roles, r => r.Name == "platform-admin");
        await admin.ExpectErrorAsync(Opcode.RoleDelete, new RoleDeleteRequest { Name = "submitter" }, ErrorCode.RoleInUse);
        await admin.ExpectErrorAsync(Opcode.RolePut, new RolePutRequest { Name = "developer", Permissions = ["runs.read"] }, ErrorCode.RoleBuiltIn);
    }

    [Fact]
    public async Task Definitions_as_JSON_or_MessagePack_pass_the_same_checks_and_validate_stores_nothing()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await using var dev = await h.ConnectAsync("developer");
        const string bad = """{"id":"Bad Id","nodes":[{"id":"a","type":"TASK","executorType":"worker","colour":"red","timeoutMs":0}],"extra":1}""";
        var fromJson = await dev.CallAsync<DefinitionRequest, DefinitionValidateResponse>(Opcode.DefinitionValidate,
            new DefinitionRequest { Kind = 1, DefinitionJson = Utf8(bad) });
        var fromMsgPack = await dev.CallAsync<DefinitionRequest, DefinitionValidateResponse>(Opcode.DefinitionValidate,
            new DefinitionRequest { Kind = 1, DefinitionMsgPack = MessagePackSerializer.ConvertFromJson(bad, WireOptions.Untrusted) });
        Assert.False(fromJson.Valid);
        Assert.True(fromJson.Violations.Length >= 4, string.Join("; ", fromJson.Violations.Select(v => $"{v.Pointer}: {v.Reason}")));
        Assert.Equal(fromJson.Violations.Select(v => (v.Pointer, v.Reason)), fromMsgPack.Violations.Select(v => (v.Pointer, v.Reason)));
        Assert.Contains(fromJson.Violations, v => v.Pointer == "/extra");
        Assert.Contains(fromJson.Violations, v => v.Pointer == "/nodes/0/colour");
        Assert.Contains(fromJson.Violations, v => v.Pointer == "/nodes/0/timeoutMs");
        Assert.Contains(fromJson.Violations, v => v.Pointer == "/id");

        // A schema-valid workflow with a graph error is reported by the semantic checks.
        var cyclic = await dev.CallAsync<DefinitionRequest, DefinitionValidateResponse>(Opcode.DefinitionValidate, new DefinitionRequest
        {
            Kind = 1,
            DefinitionJson = Utf8("""{"id":"c","nodes":[{"id":"a","type":"TASK","executorType":"worker","dependsOn":["b"]},{"id":"b","type":"TASK","executorType":"worker","dependsOn":["a"]}]}"""),
        });
        Assert.False(cyclic.Valid);
        Assert.Single(cyclic.Violations);
        // Semantic problems of several nodes are all listed.
        var twoBad = await dev.CallAsync<DefinitionRequest, DefinitionValidateResponse>(Opcode.DefinitionValidate, new DefinitionRequest
        {
            Kind = 1,
            DefinitionJson = Utf8("""{"id":"t","nodes":[{"id":"a","type":"TASK","executorType":"worker","dependsOn":["ghost1"]},{"id":"b","type":"TASK","executorType":"worker","dependsOn":["ghost2"]}]}"""),
        });
        Assert.Equal(["/nodes/0", "/nodes/1"], twoBad.Violations.Select(v => v.Pointer));
        var ok = await dev.CallAsync<DefinitionRequest, DefinitionValidateResponse>(Opcode.DefinitionValidate,
            new DefinitionRequest { Kind = 1, DefinitionJson = Utf8(ExecutionHarness.OneTaskJson) });
        Assert.True(ok.Valid);
        Assert.Empty((await dev.CallAsync<DefinitionListRequest, DefinitionListResponse>(Opcode.DefinitionList, new DefinitionListRequest())).Definitions);

        // Create refuses the same definition with every violation under one code.
        var error = await dev.ExpectErrorAsync(Opcode.DefinitionCreate, new DefinitionRequest { Kind = 1, DefinitionJson = Utf8(bad) }, ErrorCode.WorkflowInvalid);
        Assert.Contains("/nodes/0/colour", error.Details["violations"], StringComparison.Ordinal);
        error = await dev.ExpectErrorAsync(Opcode.DefinitionCreate, new DefinitionRequest { Kind = 2, DefinitionJson = Utf8("""{"id":"x","model":"m","modelAlias":"n"}""") }, ErrorCode.AgentInvalid);
        Assert.Contains("modelAlias", error.Message, StringComparison.Ordinal);
        await dev.ExpectErrorAsync(Opcode.DefinitionCreate, new DefinitionRequest { Kind = 1 }, ErrorCode.InvalidArgument);
        await dev.ExpectErrorAsync(Opcode.DefinitionCreate, new DefinitionRequest { Kind = 9, DefinitionJson = Utf8("{}") }, ErrorCode.InvalidArgument);
        await dev.ExpectErrorAsync(Opcode.DefinitionCreate, new DefinitionRequest { Kind = 1, DefinitionMsgPack = [0xc1] }, ErrorCode.InvalidArgument);
    }

    [Fact]
    public async Task A_draft_is_not_runnable_until_published_and_an_archived_version_stops_new_runs()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await using var dev = await h.ConnectAsync("developer");
        var draft = await dev.CallAsync<DefinitionRequest, DefinitionVersionDto>(Opcode.DefinitionCreate,
            new DefinitionRequest { Kind = 1, DefinitionMsgPack = MessagePackSerializer.ConvertFromJson(ExecutionHarness.OneTaskJson, WireOptions.Untrusted) });
        Assert.Equal((1, (byte)DefinitionState.Draft), (draft.Version, draft.State));
        await dev.ExpectErrorAsync(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "one" }, ErrorCode.WorkflowNotPublished);

        var validated = await dev.CallAsync<DefinitionTransitionRequest, DefinitionVersionDto>(Opcode.DefinitionTransition,
            new DefinitionTransitionRequest { Kind = 1, Id = "one", Version = 1, Target = (byte)DefinitionState.Validated });
        Assert.Equal((byte)DefinitionState.Validated, validated.State);
        await dev.CallAsync<DefinitionTransitionRequest, DefinitionVersionDto>(Opcode.DefinitionTransition,
            new DefinitionTransitionRequest { Kind = 1, Id = "one", Version = 1, Target = (byte)DefinitionState.Published });
        var run = await dev.CallAsync<RunSubmitRequest, RunSubmitResponse>(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "one" });
        Assert.Equal(1, run.WorkflowVersion);

        // The queued run uses version 1: archiving it is refused until the run ends.
        await dev.ExpectErrorAsync(Opcode.DefinitionTransition, new DefinitionTransitionRequest { Kind = 1, Id = "one", Version = 1, Target = (byte)DefinitionState.Archived }, ErrorCode.DefinitionInUse);
        await dev.CallAsync<RunControlRequest, RunSummaryDto>(Opcode.RunCancel, new RunControlRequest { RunId = run.RunId });
        var archived = await dev.CallAsync<DefinitionTransitionRequest, DefinitionVersionDto>(Opcode.DefinitionTransition,
            new DefinitionTransitionRequest { Kind = 1, Id = "one", Version = 1, Target = (byte)DefinitionState.Archived });
        Assert.Equal((byte)DefinitionState.Archived, archived.State);
        await dev.ExpectErrorAsync(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = "one" }, ErrorCode.WorkflowNotPublished);
        await dev.ExpectErrorAsync(Opcode.DefinitionTransition, new DefinitionTransitionRequest { Kind = 1, Id = "one", Version = 1, Target = (byte)DefinitionState.Published }, ErrorCode.DefinitionStateConflict);

        var shown = await dev.CallAsync<DefinitionGetRequest, DefinitionVersionDto>(Opcode.DefinitionGet, new DefinitionGetRequest { Kind = 1, Id = "one" });
        Assert.Equal((1, (byte)DefinitionState.Archived), (shown.Version, shown.State));
        Assert.Contains("\"executorType\":\"worker\"", Encoding.UTF8.GetString(shown.DefinitionJson), StringComparison.Ordinal);
        var list = await dev.CallAsync<DefinitionListRequest, DefinitionListResponse>(Opcode.DefinitionList, new DefinitionListRequest { Kind = 1 });
        var summary = Assert.Single(list.Definitions);
        Assert.Equal([1], summary.Versions);
        Assert.Equal([(byte)DefinitionState.Archived], summary.States);
        Assert.Equal(0, summary.PublishedVersion);
    }

    [Fact]
    public async Task An_agent_version_called_by_a_published_workflow_cannot_be_archived()
    {
        await using var h = await ExecutionHarness.StartAsync(o => o.Inference = new EchoGateway());
        await using var dev = await h.ConnectAsync("developer");
        await dev.CallAsync<DefinitionRequest, DefinitionVersionDto>(Opcode.DefinitionCreate,
            new DefinitionRequest { Kind = 2, DefinitionJson = Utf8("""{"id":"helper","model":"m"}""") });
        // A workflow may not publish against an agent version that is not published...
        await dev.ExpectErrorAsync(Opcode.WorkflowRegister, new WorkflowRegisterRequest { DefinitionJson = Utf8(AgentFlow) }, ErrorCode.WorkflowInvalid);
        await dev.CallAsync<DefinitionTransitionRequest, DefinitionVersionDto>(Opcode.DefinitionTransition,
            new DefinitionTransitionRequest { Kind = 2, Id = "helper", Version = 1, Target = (byte)DefinitionState.Published });
        await dev.CallAsync<WorkflowRegisterRequest, WorkflowRegisterResponse>(Opcode.WorkflowRegister, new WorkflowRegisterRequest { DefinitionJson = Utf8(AgentFlow) });

        // ...and the agent version may not be archived while a published workflow calls it.
        var error = await dev.ExpectErrorAsync(Opcode.DefinitionTransition,
            new DefinitionTransitionRequest { Kind = 2, Id = "helper", Version = 1, Target = (byte)DefinitionState.Archived }, ErrorCode.DefinitionInUse);
        Assert.Contains("helper", error.Message, StringComparison.Ordinal);
        await dev.CallAsync<DefinitionTransitionRequest, DefinitionVersionDto>(Opcode.DefinitionTransition,
            new DefinitionTransitionRequest { Kind = 1, Id = "asks", Version = 1, Target = (byte)DefinitionState.Archived });
        var archived = await dev.CallAsync<DefinitionTransitionRequest, DefinitionVersionDto>(Opcode.DefinitionTransition,
            new DefinitionTransitionRequest { Kind = 2, Id = "helper", Version = 1, Target = (byte)DefinitionState.Archived });
        Assert.Equal((byte)DefinitionState.Archived, archived.State);
    }

    private const string AgentFlow = """{"id":"asks","nodes":[{"id":"ask","type":"AGENT","agent":"helper","agentVersion":1}]}""";

    private sealed class EchoGateway : Wayang.Fast.Execution.Agents.IInferenceGateway
    {
        public ValueTask<Wayang.Fast.Execution.Agents.AgentCallResult> CallAgentAsync(Wayang.Fast.Execution.Agents.AgentCall call, CancellationToken cancellationToken) =>
            ValueTask.FromResult(new Wayang.Fast.Execution.Agents.AgentCallResult(true, call.Input));
    }

    [Fact]
    public async Task Verify_over_the_protocol_names_a_record_edited_in_the_data_directory()
    {
        var dir = TestServer.NewDataDirectory();
        const string marker = "tamper-marker-tenant";
        string adminKey;
        long markedSequence;
        await using (var server = await TestServer.StartAsync(dataDirectory: dir))
        {
            adminKey = server.AdminKey;
            await using var admin = new ProtocolConnection(await server.ConnectAsync());
            await admin.CallAsync<TenantCreateRequest, TenantInfoDto>(Opcode.TenantCreate, new TenantCreateRequest { TenantId = "before" });
            await admin.CallAsync<TenantCreateRequest, TenantInfoDto>(Opcode.TenantCreate, new TenantCreateRequest { TenantId = marker });
            await admin.CallAsync<TenantCreateRequest, TenantInfoDto>(Opcode.TenantCreate, new TenantCreateRequest { TenantId = "after" });
            var records = await AuditAsync(admin, new AuditQueryRequest { TenantId = "*" });
            markedSequence = records.Single(r => r.Resource == "tenant:" + marker).Sequence;
        }

        // Someone with access to the disk rewrites the tenant name in that record (same length, so the framing holds).
        int edited = 0;
        foreach (var file in Directory.EnumerateFiles(Path.Combine(dir, WayangServer.AuditDirectoryName), "*", SearchOption.AllDirectories))
        {
            var bytes = File.ReadAllBytes(file);
            var at = bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(marker));
            if (at < 0)
                continue;
            Encoding.UTF8.GetBytes("tamper-marker-TENANT").CopyTo(bytes, at);
            File.WriteAllBytes(file, bytes);
            edited++;
        }
        Assert.True(edited > 0, "the record was not found in the audit directory");

        await using (var server = await TestServer.StartAsync(dataDirectory: dir, adminKey: adminKey))
        {
            await using var admin = new ProtocolConnection(await server.ConnectAsync());
            var verify = (await admin.CallBytesAsync(Opcode.AuditVerify, [])).Decode<AuditVerifyResponse>();
            Assert.False(verify.Ok);
            Assert.Equal(markedSequence, verify.FirstBrokenSequence);
            Assert.False(string.IsNullOrEmpty(verify.Reason));
            // The server still runs and records.
            await admin.CallAsync<TenantCreateRequest, TenantInfoDto>(Opcode.TenantCreate, new TenantCreateRequest { TenantId = "later" });
        }
        Directory.Delete(dir, recursive: true);
    }
}
