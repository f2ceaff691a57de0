using System.Text;
using MessagePack;
using Wayang.Fast.Common.Audit;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Client.Tests;

// The control-plane calls against the scripted FakeServer: each sends its opcode with the right body and maps the reply.
public sealed class ControlCallsTests
{
    private static T Body<T>(ReceivedFrame frame) => MessagePackSerializer.Deserialize<T>(frame.Body, WireOptions.Untrusted);

    // Answers every REQUEST of `opcode` with reply(request frame), AuditHead with headSequence; other opcodes get the
    // default behaviour.
    private static FakeServer Answering(Opcode opcode, Func<ReceivedFrame, object> reply, long headSequence = 0) => new()
    {
        OnFrame = async (session, frame) =>
        {
            if (frame.Type == FrameType.Request && frame.Opcode == Opcode.AuditHead)
            {
                await session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId, new AuditHeadDto { Sequence = headSequence, Hash = [1] });
                return;
            }
            if (frame.Type != FrameType.Request || frame.Opcode != opcode)
            {
                await FakeServer.DefaultBehaviour(session, frame);
                return;
            }
            var message = reply(frame);
            await session.SendAsync(FrameType.Response, frame.Opcode, frame.StreamId,
                MessagePackSerializer.Serialize(message.GetType(), message, WireOptions.Trusted));
        },
    };

    [Fact]
    public async Task Roles_list_put_and_delete_send_their_opcodes_and_map_the_roles()
    {
        await using var server = new FakeServer
        {
            OnFrame = (session, frame) => frame.Opcode switch
            {
                Opcode.RoleList => session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId, new RoleListResponse
                {
                    Roles =
                    [
                        new RoleDto { TenantId = "shop", Name = "viewer", BuiltIn = true, Permissions = ["session", "runs.read"], UpdatedAtMs = 0 },
                        new RoleDto { TenantId = "shop", Name = "reporter", Permissions = ["session", "audit.read"], UpdatedAtMs = 5000 },
                    ],
                }),
                Opcode.RolePut => session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId, new RoleDto
                {
                    TenantId = "shop",
                    Name = Body<RolePutRequest>(frame).Name,
                    Permissions = ["session", .. Body<RolePutRequest>(frame).Permissions],
                    UpdatedAtMs = 7000,
                }),
                Opcode.RoleDelete => session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId, new RoleDto
                {
                    TenantId = "shop",
                    Name = Body<RoleDeleteRequest>(frame).Name,
                    Permissions = ["session"],
                    UpdatedAtMs = 7000,
                }),
                _ => FakeServer.DefaultBehaviour(session, frame),
            },
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var roles = await client.ListRolesAsync();
        var put = await client.PutRoleAsync("reporter", ["audit.read", "runs.read"], tenantId: "shop");
        var deleted = await client.DeleteRoleAsync("reporter");

        Assert.Equal(2, roles.Count);
        Assert.True(roles[0].BuiltIn);
        Assert.Equal(("shop", "reporter", false, DateTimeOffset.FromUnixTimeMilliseconds(5000)), (roles[1].TenantId, roles[1].Name, roles[1].BuiltIn, roles[1].UpdatedAt));
        Assert.Equal(["session", "audit.read"], roles[1].Permissions);
        Assert.Equal(["session", "audit.read", "runs.read"], put.Permissions);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(7000), put.UpdatedAt);
        Assert.Equal("reporter", deleted.Name);

        var frames = server.Frames;
        Assert.Equal([Opcode.RoleList, Opcode.RolePut, Opcode.RoleDelete], frames.Select(f => f.Opcode));
        Assert.Equal("", Body<RoleListRequest>(frames[0]).TenantId);
        var putRequest = Body<RolePutRequest>(frames[1]);
        Assert.Equal(("shop", "reporter"), (putRequest.TenantId, putRequest.Name));
        Assert.Equal(["audit.read", "runs.read"], putRequest.Permissions);
        Assert.Equal(("", "reporter"), (Body<RoleDeleteRequest>(frames[2]).TenantId, Body<RoleDeleteRequest>(frames[2]).Name));
    }

    [Fact]
    public async Task Bindings_grant_and_revoke_send_key_and_role_and_return_the_key()
    {
        await using var server = new FakeServer
        {
            OnFrame = (session, frame) =>
            {
                if (frame.Opcode is not (Opcode.BindingGrant or Opcode.BindingRevoke or Opcode.BindingList))
                    return FakeServer.DefaultBehaviour(session, frame);
                if (frame.Opcode == Opcode.BindingList)
                {
                    return session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId, new BindingListResponse
                    {
                        Bindings = [new BindingDto { KeyId = "k9", KeyName = "ci", Roles = ["viewer"], Revoked = false }],
                    });
                }
                var request = Body<BindingRequest>(frame);
                string[] roles = frame.Opcode == Opcode.BindingGrant ? ["viewer", request.Role] : ["viewer"];
                return session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId,
                    new ApiKeyInfoDto { KeyId = request.KeyId, TenantId = "shop", Name = "ci", Roles = roles, CreatedAtMs = 1 });
            },
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var bindings = await client.ListBindingsAsync("shop");
        var granted = await client.GrantRoleAsync("k9", "developer");
        var revoked = await client.RevokeRoleAsync("k9", "developer");

        var binding = Assert.Single(bindings);
        Assert.Equal(("k9", "ci", false), (binding.KeyId, binding.KeyName, binding.Revoked));
        Assert.Equal(["viewer"], binding.Roles);
        Assert.Equal(["viewer", "developer"], granted.Roles);
        Assert.Equal(["viewer"], revoked.Roles);
        var frames = server.Frames;
        Assert.Equal("shop", Body<BindingListRequest>(frames[0]).TenantId);
        Assert.Equal([Opcode.BindingList, Opcode.BindingGrant, Opcode.BindingRevoke], frames.Select(f => f.Opcode));
        Assert.All(frames.Skip(1), f => Assert.Equal(("k9", "developer"), (Body<BindingRequest>(f).KeyId, Body<BindingRequest>(f).Role)));
    }

    [Fact]
    public async Task Validate_returns_every_violation_as_data()
    {
        await using var server = Answering(Opcode.DefinitionValidate, _ => new DefinitionValidateResponse
        {
            Valid = false,
            Violations =
            [
                new ViolationDto { Pointer = "/nodes/0/type", Reason = "must be one of TASK, AGENT, WAIT" },
                new ViolationDto { Pointer = "", Reason = "required property 'id' is missing" },
            ],
        });
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var json = """{"nodes":[{"type":"X"}]}""";
        var result = await client.ValidateDefinitionAsync(DefinitionKind.Workflow, json);

        Assert.False(result.Valid);
        Assert.Equal(
            [new DefinitionViolation("/nodes/0/type", "must be one of TASK, AGENT, WAIT"), new DefinitionViolation("", "required property 'id' is missing")],
            result.Violations);
        var request = Body<DefinitionRequest>(Assert.Single(server.Frames));
        Assert.Equal((byte)DefinitionKind.Workflow, request.Kind);
        Assert.Equal(json, Encoding.UTF8.GetString(request.DefinitionJson));
        Assert.Empty(request.DefinitionMsgPack);
    }

    [Fact]
    public async Task Validate_with_MessagePack_sends_the_map_in_its_own_field()
    {
        await using var server = Answering(Opcode.DefinitionValidate, _ => new DefinitionValidateResponse { Valid = true });
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());
        var map = MessagePackSerializer.Serialize(new Dictionary<string, object> { ["id"] = "helper", ["model"] = "m" }, WireOptions.Trusted);

        var result = await client.ValidateDefinitionMsgPackAsync(DefinitionKind.Agent, map);

        Assert.True(result.Valid);
        Assert.Empty(result.Violations);
        var request = Body<DefinitionRequest>(Assert.Single(server.Frames));
        Assert.Equal((byte)DefinitionKind.Agent, request.Kind);
        Assert.Equal(map, request.DefinitionMsgPack);
        Assert.Empty(request.DefinitionJson);
    }

    [Fact]
    public async Task Create_maps_the_stored_version_and_a_refusal_carries_its_violations()
    {
        bool refuse = false;
        await using var server = new FakeServer
        {
            OnFrame = (session, frame) =>
            {
                if (frame.Opcode != Opcode.DefinitionCreate)
                    return FakeServer.DefaultBehaviour(session, frame);
                if (Volatile.Read(ref refuse))
                {
                    return session.SendErrorAsync(frame.StreamId, ErrorCode.AgentInvalid, "2 violations", details: new Dictionary<string, string>
                    {
                        ["violations"] = """[{"pointer":"/model","reason":"is required"},{"pointer":"","reason":"unknown property 'x'"}]""",
                    });
                }
                var request = Body<DefinitionRequest>(frame);
                return session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId, new DefinitionVersionDto
                {
                    Kind = request.Kind,
                    Id = "helper",
                    Version = 3,
                    State = (byte)DefinitionState.Draft,
                    DefinitionJson = request.DefinitionJson,
                    CreatedAtMs = 1000,
                    UpdatedAtMs = 2000,
                });
            },
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var created = await client.CreateDefinitionAsync(DefinitionKind.Agent, """{"id":"helper"}"""u8.ToArray());
        Assert.Equal(new DefinitionVersion(DefinitionKind.Agent, "helper", 3, DefinitionState.Draft, """{"id":"helper"}""",
            DateTimeOffset.FromUnixTimeMilliseconds(1000), DateTimeOffset.FromUnixTimeMilliseconds(2000)), created);

        Volatile.Write(ref refuse, true);
        var e = await Assert.ThrowsAsync<WayangException>(() => client.CreateDefinitionAsync(DefinitionKind.Agent, """{"x":1}"""));
        Assert.Equal(ErrorCode.AgentInvalid, e.Code);
        Assert.Equal([new DefinitionViolation("/model", "is required"), new DefinitionViolation("", "unknown property 'x'")], DefinitionViolation.FromError(e));
        Assert.Empty(DefinitionViolation.FromError(new WayangException(ErrorCode.AgentInvalid, "no details")));
    }

    [Fact]
    public async Task Lifecycle_list_and_get_send_kind_id_version_and_target()
    {
        await using var server = new FakeServer
        {
            OnFrame = (session, frame) => frame.Opcode switch
            {
                Opcode.DefinitionTransition => session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId, new DefinitionVersionDto
                {
                    Kind = Body<DefinitionTransitionRequest>(frame).Kind,
                    Id = Body<DefinitionTransitionRequest>(frame).Id,
                    Version = Body<DefinitionTransitionRequest>(frame).Version,
                    State = Body<DefinitionTransitionRequest>(frame).Target,
                    DefinitionJson = "{}"u8.ToArray(),
                }),
                Opcode.DefinitionList => session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId, new DefinitionListResponse
                {
                    Definitions =
                    [
                        new DefinitionSummaryDto
                        {
                            Kind = 1, Id = "orders", LatestVersion = 2, PublishedVersion = 1, Versions = [1, 2], States = [3, 1], UpdatedAtMs = 9000,
                        },
                        new DefinitionSummaryDto { Kind = 2, Id = "helper", LatestVersion = 1, Versions = [1], States = [1] },
                    ],
                }),
                Opcode.DefinitionGet => session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId, new DefinitionVersionDto
                {
                    Kind = 1,
                    Id = "orders",
                    Version = 2,
                    State = 1,
                    DefinitionJson = """{"id":"orders","nodes":[]}"""u8.ToArray(),
                }),
                _ => FakeServer.DefaultBehaviour(session, frame),
            },
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var published = await client.PublishDefinitionAsync(DefinitionKind.Workflow, "orders", 1);
        var archived = await client.ArchiveDefinitionAsync(DefinitionKind.Agent, "helper", 4);
        var validated = await client.TransitionDefinitionAsync(DefinitionKind.Workflow, "orders", 2, DefinitionState.Validated);
        var all = await client.ListDefinitionsAsync();
        var agents = await client.ListDefinitionsAsync(DefinitionKind.Agent);
        var newest = await client.GetDefinitionAsync(DefinitionKind.Workflow, "orders");

        Assert.Equal((DefinitionState.Published, 1), (published.State, published.Version));
        Assert.Equal((DefinitionKind.Agent, "helper", DefinitionState.Archived), (archived.Kind, archived.Id, archived.State));
        Assert.Equal(DefinitionState.Validated, validated.State);
        var orders = all[0];
        Assert.Equal((DefinitionKind.Workflow, 2, (int?)1), (orders.Kind, orders.LatestVersion, orders.PublishedVersion));
        Assert.Equal([new DefinitionVersionState(1, DefinitionState.Published), new DefinitionVersionState(2, DefinitionState.Draft)], orders.Versions);
        Assert.Null(all[1].PublishedVersion);
        Assert.Equal("""{"id":"orders","nodes":[]}""", newest.DefinitionJson);
        Assert.Equal(2, agents.Count);

        var frames = server.Frames;
        var transitions = frames.Where(f => f.Opcode == Opcode.DefinitionTransition).Select(Body<DefinitionTransitionRequest>).ToList();
        Assert.Equal([(1, "orders", 1, 3), (2, "helper", 4, 4), (1, "orders", 2, 2)],
            transitions.Select(t => ((int)t.Kind, t.Id, t.Version, (int)t.Target)));
        Assert.Equal([0, 2], frames.Where(f => f.Opcode == Opcode.DefinitionList).Select(f => (int)Body<DefinitionListRequest>(f).Kind));
        var get = Body<DefinitionGetRequest>(frames.Single(f => f.Opcode == Opcode.DefinitionGet));
        Assert.Equal((1, "orders", 0), ((int)get.Kind, get.Id, get.Version));

        // Checked before anything is sent.
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.TransitionDefinitionAsync(DefinitionKind.Workflow, "orders", 1, DefinitionState.Draft));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.PublishDefinitionAsync(DefinitionKind.Workflow, "orders", 0));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.GetDefinitionAsync((DefinitionKind)9, "orders"));
        Assert.Equal(frames.Count, server.Frames.Count);
    }

    [Fact]
    public async Task ReadAudit_follows_NextAfterSequence_until_the_last_page()
    {
        // 7 records served 3 at a time: pages after 0, 3, 6; the last one says NextAfterSequence = 0.
        const int total = 7;
        await using var server = Answering(Opcode.AuditQuery, frame => AuditPageOf(frame, total), headSequence: total);
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());
        var filter = new AuditFilter
        {
            PrincipalId = "k7",
            Opcode = Opcode.RunSubmit,
            Outcome = AuditOutcome.Denied,
            From = DateTimeOffset.FromUnixTimeMilliseconds(1000),
            To = DateTimeOffset.FromUnixTimeMilliseconds(99_000),
            Limit = 3,
        };

        var entries = new List<AuditEntry>();
        await foreach (var entry in client.ReadAuditAsync(filter))
            entries.Add(entry);

        Assert.Equal(Enumerable.Range(1, total).Select(i => (long)i), entries.Select(e => e.Sequence));
        Assert.Equal(Opcode.AuditHead, server.Frames[0].Opcode);
        var requests = server.Frames.Where(f => f.Opcode == Opcode.AuditQuery).Select(Body<AuditQueryRequest>).ToList();
        Assert.Equal([0L, 3L, 6L], requests.Select(r => r.AfterSequence));
        Assert.All(requests, r =>
        {
            Assert.Equal(("", "k7", (ushort)Opcode.RunSubmit, (byte)AuditOutcome.Denied), (r.TenantId, r.PrincipalId, r.Opcode, r.Outcome));
            Assert.Equal((1000L, 99_000L, 3), (r.FromMs, r.ToMs, r.Limit));
        });

        var second = entries[1];
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(2000), second.Time);
        Assert.Equal((Opcode.RunSubmit, "RunSubmit", AuditOutcome.Denied, "PERMISSION_DENIED"), (second.Opcode, second.Operation, second.Outcome, second.Reason));
        Assert.Equal("01" + new string('0', 62), second.PreviousHash);
        Assert.Equal("ab02" + new string('0', 60), second.Hash);
        Assert.Equal("run:r2", second.Details["run"]);

        // One page at a time through QueryAuditAsync.
        var page = await client.QueryAuditAsync(filter with { AfterSequence = 6 });
        Assert.True(page.IsLastPage);
        Assert.Equal(7, Assert.Single(page.Records).Sequence);
    }

    // Every query is itself recorded, so the log grows while it is read: the read ends at the head it saw first.
    [Fact]
    public async Task ReadAudit_stops_at_the_head_it_saw_when_it_began()
    {
        await using var server = Answering(Opcode.AuditQuery, frame => AuditPageOf(frame, 1000), headSequence: 5);
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var entries = new List<AuditEntry>();
        await foreach (var entry in client.ReadAuditAsync(new AuditFilter { Limit = 3 }))
            entries.Add(entry);

        Assert.Equal([1L, 2L, 3L, 4L, 5L], entries.Select(e => e.Sequence));
        Assert.Equal([0L, 3L], server.Frames.Where(f => f.Opcode == Opcode.AuditQuery).Select(f => Body<AuditQueryRequest>(f).AfterSequence));
    }

    [Fact]
    public async Task ReadAudit_refuses_a_cursor_that_does_not_advance()
    {
        await using var server = Answering(Opcode.AuditQuery, _ => new AuditQueryResponse { Records = [Record(6)], NextAfterSequence = 5 }, headSequence: 10);
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var e = await Assert.ThrowsAsync<WayangException>(async () =>
        {
            await foreach (var _ in client.ReadAuditAsync(new AuditFilter { AfterSequence = 5 }))
            {
            }
        });
        Assert.Equal(ErrorCode.BadBody, e.Code);
    }

    [Fact]
    public async Task Verify_and_head_send_empty_bodies_and_map_hashes_as_lowercase_hex()
    {
        await using var server = new FakeServer
        {
            OnFrame = (session, frame) => frame.Opcode switch
            {
                Opcode.AuditVerify => session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId, new AuditVerifyResponse
                {
                    Ok = false,
                    RecordsChecked = 41,
                    FirstBrokenSequence = 17,
                    Reason = "hash mismatch",
                    HeadSequence = 41,
                    HeadHash = [0xAB, 0xCD],
                }),
                Opcode.AuditHead => session.SendMessageAsync(FrameType.Response, frame.Opcode, frame.StreamId,
                    new AuditHeadDto { Sequence = 41, Hash = [0xDE, 0xAD, 0xBE, 0xEF] }),
                _ => FakeServer.DefaultBehaviour(session, frame),
            },
        };
        await using var client = await WayangClient.ConnectAsync(server.ClientOptions());

        var verification = await client.VerifyAuditAsync();
        var head = await client.GetAuditHeadAsync();

        Assert.Equal(new AuditVerification(false, 41, 17, "hash mismatch", 41, "abcd"), verification);
        Assert.Equal(new AuditHeadInfo(41, "deadbeef"), head);
        Assert.All(server.Frames, f => Assert.Empty(f.Body));
        Assert.Equal([Opcode.AuditVerify, Opcode.AuditHead], server.Frames.Select(f => f.Opcode));
    }

    // Records 1..total, Limit per page after the request's cursor.
    private static AuditQueryResponse AuditPageOf(ReceivedFrame frame, int total)
    {
        var request = Body<AuditQueryRequest>(frame);
        long first = request.AfterSequence + 1;
        long last = Math.Min(total, request.AfterSequence + request.Limit);
        return new AuditQueryResponse
        {
            Records = [.. Enumerable.Range((int)first, (int)(last - first + 1)).Select(s => Record(s))],
            NextAfterSequence = last < total ? last : 0,
        };
    }

    private static AuditRecordDto Record(long sequence)
    {
        var previous = new byte[32];
        previous[0] = (byte)(sequence - 1);
        var hash = new byte[32];
        hash[0] = 0xAB;
        hash[1] = (byte)sequence;
        return new AuditRecordDto
        {
            Sequence = sequence,
            TimeMs = sequence * 1000,
            TenantId = "shop",
            PrincipalId = "k7",
            PrincipalTenantId = "shop",
            Opcode = (ushort)Opcode.RunSubmit,
            Operation = "RunSubmit",
            Resource = "workflow:orders",
            Outcome = (byte)AuditOutcome.Denied,
            Reason = "PERMISSION_DENIED",
            ConnectionId = 3,
            Details = new Dictionary<string, string> { ["run"] = "run:r" + sequence },
            PreviousHash = previous,
            Hash = hash,
        };
    }
}
