using System.Buffers;
using System.Globalization;
using System.Text;
using MessagePack;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Protocol.Tests;

// One golden frame: what it is built from (C# objects) and what a decoder must find in it.
// The committed hex in protocol-spec/vectors/frames.txt is the normative truth; these definitions must reproduce it.
internal sealed record GoldenVector(
    string Name,
    string Description,
    FrameType Type,
    uint StreamId,
    Opcode Opcode,
    BodyKind Kind,
    byte[] Body,
    Action<ReadOnlySequence<byte>> CheckBody)
{
    public byte[] EncodeFrame()
    {
        var output = new ArrayBufferWriter<byte>();
        FrameWriter.Write(output, Type, Opcode, StreamId, Body);
        return output.WrittenSpan.ToArray();
    }
}

internal enum BodyKind
{
    Empty,
    Opaque,
    MessagePack,
}

// The parsed form of one block of the vector file.
internal sealed record VectorEntry(string Name, IReadOnlyDictionary<string, string> Fields, byte[] Bytes);

internal static class GoldenVectors
{
    public const string FileName = "frames.txt";

    private static readonly byte[] PingPayload = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];

    public static IReadOnlyList<GoldenVector> All { get; } =
    [
        Message("hello", "HELLO: the client opens the session with protocol version 1, its name and an API key; InitialStreamCredit 0 asks for the server default.",
            FrameType.Hello, 0, Opcode.None,
            new HelloRequest { ProtocolVersion = 1, ClientName = "wayang-cli/0.1.0", ApiKey = "wk_example_0123456789abcdef", InitialStreamCredit = 0 },
            m =>
            {
                Assert.Equal(1, m.ProtocolVersion);
                Assert.Equal("wayang-cli/0.1.0", m.ClientName);
                Assert.Equal("wk_example_0123456789abcdef", m.ApiKey);
                Assert.Equal(0u, m.InitialStreamCredit);
            }),
        Message("welcome", "WELCOME: the server accepts; limits for this session, the authenticated principal, and the effective initial stream credit (32).",
            FrameType.Welcome, 0, Opcode.None,
            new WelcomeResponse
            {
                ServerVersion = "0.1.0", ProtocolVersion = 1, SessionId = "s_0123456789abcdefghij", MaxFrameBytes = 1048576,
                MaxInFlight = 1024, IdleTimeoutMs = 60000, TenantId = "acme", KeyId = "k_abcdefghij0123456789",
                Roles = ["tenant-admin"], InitialStreamCredit = 32,
            },
            m =>
            {
                Assert.Equal("0.1.0", m.ServerVersion);
                Assert.Equal(1, m.ProtocolVersion);
                Assert.Equal("s_0123456789abcdefghij", m.SessionId);
                Assert.Equal(1048576, m.MaxFrameBytes);
                Assert.Equal(1024, m.MaxInFlight);
                Assert.Equal(60000, m.IdleTimeoutMs);
                Assert.Equal("acme", m.TenantId);
                Assert.Equal("k_abcdefghij0123456789", m.KeyId);
                Assert.Equal(["tenant-admin"], m.Roles);
                Assert.Equal(32u, m.InitialStreamCredit);
            }),
        Message("error-handshake-failed", "ERROR on stream 0 answering HELLO: the API key is not valid. The server closes the connection after it.",
            FrameType.Error, 0, Opcode.None,
            new ErrorBody { Code = 2001, Name = "UNAUTHENTICATED", Message = "The credentials are missing or not valid.", Retryable = false, RetryAfterMs = 0, Details = [] },
            m =>
            {
                Assert.Equal((int)ErrorCode.Unauthenticated, m.Code);
                Assert.Equal("UNAUTHENTICATED", m.Name);
                Assert.False(m.Retryable);
                Assert.Empty(m.Details);
            }),
        Empty("request-ping", "REQUEST opcode Ping (0x0001) on stream 1 with an empty body (length 0): the request has no fields.",
            FrameType.Request, 1, Opcode.Ping),
        Empty("response-ping", "RESPONSE to Ping on stream 1: same stream id and opcode, empty body.",
            FrameType.Response, 1, Opcode.Ping),
        Message("error-unknown-opcode", "ERROR on stream 3 answering a REQUEST with opcode 0x7777: UNKNOWN_OPCODE with a details map. The connection stays open.",
            FrameType.Error, 3, (Opcode)0x7777,
            new ErrorBody
            {
                Code = 1004, Name = "UNKNOWN_OPCODE", Message = "The opcode is not known to this server.", Retryable = false, RetryAfterMs = 0,
                Details = new Dictionary<string, string> { ["opcode"] = "0x7777" },
            },
            m =>
            {
                Assert.Equal((int)ErrorCode.UnknownOpcode, m.Code);
                Assert.Equal("UNKNOWN_OPCODE", m.Name);
                Assert.Equal("The opcode is not known to this server.", m.Message);
                Assert.False(m.Retryable);
                Assert.Equal(0, m.RetryAfterMs);
                Assert.Equal("0x7777", Assert.Single(m.Details, kv => kv.Key == "opcode").Value);
            }),
        Message("error-too-many-in-flight", "ERROR on stream 9: TOO_MANY_IN_FLIGHT, retryable, with a retry hint of 50 ms.",
            FrameType.Error, 9, Opcode.Ping,
            new ErrorBody { Code = 1010, Name = "TOO_MANY_IN_FLIGHT", Message = "The connection has too many requests in flight.", Retryable = true, RetryAfterMs = 50, Details = [] },
            m =>
            {
                Assert.Equal((int)ErrorCode.TooManyInFlight, m.Code);
                Assert.True(m.Retryable);
                Assert.Equal(50, m.RetryAfterMs);
            }),
        Message("request-tick", "REQUEST opcode Tick (0x0002) on stream 5: a server stream of 3 items, 100 ms apart.",
            FrameType.Request, 5, Opcode.Tick,
            new TickRequest { Count = 3, IntervalMs = 100 },
            m =>
            {
                Assert.Equal(3, m.Count);
                Assert.Equal(100, m.IntervalMs);
            }),
        Message("stream-tick", "STREAM item for Tick on stream 5: sequence 0 at Unix time 1700000000000 ms. Consumes one credit.",
            FrameType.Stream, 5, Opcode.Tick,
            new TickItem { Sequence = 0, UnixTimeMs = 1700000000000 },
            m =>
            {
                Assert.Equal(0, m.Sequence);
                Assert.Equal(1700000000000, m.UnixTimeMs);
            }),
        Message("credit", "CREDIT on stream 5: the client grants 16 more STREAM frames. Opcode is 0.",
            FrameType.Credit, 5, Opcode.None,
            new CreditBody { Credits = 16 },
            m => Assert.Equal(16u, m.Credits)),
        Empty("end", "END of the Tick stream on stream 5: empty body; the stream id is free again.",
            FrameType.End, 5, Opcode.Tick),
        Empty("cancel", "CANCEL of the request in flight on stream 7: empty body, opcode 0.",
            FrameType.Cancel, 7, Opcode.None),
        Opaque("ping-frame", "PING frame (keep-alive) on stream 0 with an 8-byte opaque body.",
            FrameType.Ping, 0, Opcode.None, PingPayload),
        Opaque("pong-frame", "PONG frame answering the PING above: the same 8 bytes echoed.",
            FrameType.Pong, 0, Opcode.None, PingPayload),
        Message("goaway", "GOAWAY on stream 0: the server is shutting down; the highest stream id it saw was 41; code SHUTTING_DOWN (1014).",
            FrameType.GoAway, 0, Opcode.None,
            new GoAwayBody { LastStreamId = 41, Code = 1014, Message = "server shutting down" },
            m =>
            {
                Assert.Equal(41u, m.LastStreamId);
                Assert.Equal((int)ErrorCode.ShuttingDown, m.Code);
                Assert.Equal("server shutting down", m.Message);
            }),
        Message("request-keycreate", "REQUEST opcode KeyCreate (0x0103) on stream 7: a key named ci-bot for tenant acme with role developer.",
            FrameType.Request, 7, Opcode.KeyCreate,
            new KeyCreateRequest { TenantId = "acme", Name = "ci-bot", Roles = ["developer"] },
            m =>
            {
                Assert.Equal("acme", m.TenantId);
                Assert.Equal("ci-bot", m.Name);
                Assert.Equal(["developer"], m.Roles);
            }),
        Message("response-keycreate", "RESPONSE to KeyCreate on stream 7: the secret (shown once) and the key's metadata as a nested array.",
            FrameType.Response, 7, Opcode.KeyCreate,
            new KeyCreateResponse
            {
                Secret = "wk_k_abcdefghij0123456789_s3cr3t",
                Key = new ApiKeyInfoDto
                {
                    KeyId = "k_abcdefghij0123456789", TenantId = "acme", Name = "ci-bot", Roles = ["developer"],
                    CreatedAtMs = 1700000000000, Revoked = false, RevokedAtMs = 0,
                },
            },
            m =>
            {
                Assert.Equal("wk_k_abcdefghij0123456789_s3cr3t", m.Secret);
                Assert.Equal("k_abcdefghij0123456789", m.Key.KeyId);
                Assert.Equal("acme", m.Key.TenantId);
                Assert.Equal("ci-bot", m.Key.Name);
                Assert.Equal(["developer"], m.Key.Roles);
                Assert.Equal(1700000000000, m.Key.CreatedAtMs);
                Assert.False(m.Key.Revoked);
                Assert.Equal(0, m.Key.RevokedAtMs);
            }),
        Message("request-tenantcreate", "REQUEST opcode TenantCreate (0x0101) on stream 11.",
            FrameType.Request, 11, Opcode.TenantCreate,
            new TenantCreateRequest { TenantId = "acme", DisplayName = "Acme Corp" },
            m =>
            {
                Assert.Equal("acme", m.TenantId);
                Assert.Equal("Acme Corp", m.DisplayName);
            }),
        Message("request-run-submit", "REQUEST opcode RunSubmit (0x0210) on stream 13: run the latest version (0) of workflow order with a JSON input (a bin of UTF-8 JSON), an idempotency key and SLA tags: priority HIGH (3), no absolute deadline, a 2,000 ms latency budget, deadline-miss policy FAIL (2).",
            FrameType.Request, 13, Opcode.RunSubmit,
            new RunSubmitRequest { WorkflowId = "order", Version = 0, InputJson = "{\"orderId\":42}"u8.ToArray(), IdempotencyKey = "order-42", Priority = 3, LatencyBudgetMs = 2000, OnDeadlineMiss = 2 },
            m =>
            {
                Assert.Equal("order", m.WorkflowId);
                Assert.Equal(0, m.Version);
                Assert.Equal("{\"orderId\":42}"u8.ToArray(), m.InputJson);
                Assert.Equal("order-42", m.IdempotencyKey);
                Assert.Equal((3, 0L, 2000L, 2), (m.Priority, m.DeadlineAtMs, m.LatencyBudgetMs, m.OnDeadlineMiss));
            }),
        Message("stream-executor-task", "STREAM item of ExecutorRegister (0x0220) on stream 15: one task pushed to an executor. Consumes one credit; an empty bin is JSON null.",
            FrameType.Stream, 15, Opcode.ExecutorRegister,
            new TaskAssignmentDto
            {
                Token = "tok", TaskId = "run_1:charge:1", TenantId = "acme", RunId = "run_1", WorkflowId = "order", NodeId = "charge", Attempt = 1,
                ExecutorType = "payments", InputJson = "{\"orderId\":42}"u8.ToArray(), ConfigJson = [], UpstreamJson = "{}"u8.ToArray(),
                LeaseExpiresAtMs = 1700000030000, DeadlineAtMs = 1700003600000,
            },
            m =>
            {
                Assert.Equal("tok", m.Token);
                Assert.Equal("run_1:charge:1", m.TaskId);
                Assert.Equal("acme", m.TenantId);
                Assert.Equal("charge", m.NodeId);
                Assert.Equal(1, m.Attempt);
                Assert.Equal("payments", m.ExecutorType);
                Assert.Empty(m.ConfigJson);
                Assert.Equal(1700000030000, m.LeaseExpiresAtMs);
                Assert.Equal(1700003600000, m.DeadlineAtMs);
            }),
        Message("request-binding-grant", "REQUEST opcode BindingGrant (0x010A) on stream 17: bind role operator to key wyk_0123456789abcdef of the caller's tenant.",
            FrameType.Request, 17, Opcode.BindingGrant,
            new BindingRequest { KeyId = "wyk_0123456789abcdef", Role = "operator" },
            m => Assert.Equal(("wyk_0123456789abcdef", "operator"), (m.KeyId, m.Role))),
        Message("request-definition-create", "REQUEST opcode DefinitionCreate (0x0121) on stream 19: an agent definition (kind 2) as UTF-8 JSON; DefinitionMsgPack is an empty bin.",
            FrameType.Request, 19, Opcode.DefinitionCreate,
            new DefinitionRequest { Kind = 2, DefinitionJson = "{\"id\":\"helper\",\"model\":\"m\"}"u8.ToArray(), DefinitionMsgPack = [] },
            m =>
            {
                Assert.Equal(2, m.Kind);
                Assert.Equal("{\"id\":\"helper\",\"model\":\"m\"}"u8.ToArray(), m.DefinitionJson);
                Assert.Empty(m.DefinitionMsgPack);
            }),
        Message("request-secret-put", "REQUEST opcode SecretPut (0x0130) on stream 23: write the value \"s3cr3t\" at payments/stripe/api-key in the caller's tenant, only if the secret does not exist yet (Cas 0).",
            FrameType.Request, 23, Opcode.SecretPut,
            new SecretWriteRequest { TenantId = "", Path = "payments/stripe/api-key", Value = "s3cr3t"u8.ToArray(), Cas = 0 },
            m => Assert.Equal(("", "payments/stripe/api-key", "s3cr3t", 0L), (m.TenantId, m.Path, System.Text.Encoding.UTF8.GetString(m.Value), m.Cas))),
        Message("stream-secret-event", "STREAM frame of SecretWatch (0x0138) on stream 25: a ROTATED event (kind 1) for version 3 of payments/stripe/api-key in tenant acme, nothing dropped.",
            FrameType.Stream, 25, Opcode.SecretWatch,
            new SecretEventDto { Kind = 1, TenantId = "acme", Path = "payments/stripe/api-key", Version = 3, AtMs = 1700000040000, Detail = "", Dropped = 0 },
            m => Assert.Equal((1, "acme", "payments/stripe/api-key", 3, 1700000040000L, 0L), ((int)m.Kind, m.TenantId, m.Path, m.Version, m.AtMs, m.Dropped))),
        Message("response-audit-query", "RESPONSE to AuditQuery (0x0110) on stream 21: one DENIED record (outcome 2) of opcode RunSubmit, its 32-byte previous hash (zeros: the first record) and hash, and no next page (0).",
            FrameType.Response, 21, Opcode.AuditQuery,
            new AuditQueryResponse
            {
                Records =
                [
                    new AuditRecordDto
                    {
                        Sequence = 1, TimeMs = 1700000000000, TenantId = "acme", PrincipalId = "wyk_0123456789abcdef", PrincipalTenantId = "acme",
                        Opcode = 0x0210, Operation = "RunSubmit", Resource = "", Outcome = 2, Reason = "PERMISSION_DENIED", ConnectionId = 7,
                        Details = new() { ["remote"] = "127.0.0.1:50000" }, PreviousHash = new byte[32], Hash = [.. Enumerable.Range(0, 32).Select(i => (byte)i)],
                    },
                ],
                NextAfterSequence = 0,
            },
            m =>
            {
                var r = Assert.Single(m.Records);
                Assert.Equal((1L, (ushort)0x0210, (byte)2, "PERMISSION_DENIED"), (r.Sequence, r.Opcode, r.Outcome, r.Reason));
                Assert.Equal("127.0.0.1:50000", r.Details["remote"]);
                Assert.Equal(32, r.Hash.Length);
                Assert.Equal(0, m.NextAfterSequence);
            }),
    ];

    private static GoldenVector Message<T>(string name, string description, FrameType type, uint stream, Opcode opcode, T message, Action<T> check) =>
        new(name, description, type, stream, opcode, BodyKind.MessagePack, MessagePackSerializer.Serialize(message, WireOptions.Trusted),
            body => check(MessagePackSerializer.Deserialize<T>(body, WireOptions.Untrusted)));

    private static GoldenVector Empty(string name, string description, FrameType type, uint stream, Opcode opcode) =>
        new(name, description, type, stream, opcode, BodyKind.Empty, [], body => Assert.True(body.IsEmpty));

    private static GoldenVector Opaque(string name, string description, FrameType type, uint stream, Opcode opcode, byte[] body) =>
        new(name, description, type, stream, opcode, BodyKind.Opaque, body, b => Assert.Equal(body, b.ToArray()));

    public static string FrameTypeName(FrameType type) => type switch
    {
        FrameType.GoAway => "GOAWAY",
        _ => type.ToString().ToUpperInvariant(),
    };

    public static string BodyText(GoldenVector v) => v.Kind switch
    {
        BodyKind.Empty => "(empty)",
        BodyKind.Opaque => "(opaque) " + Convert.ToHexStringLower(v.Body),
        _ => MessagePackSerializer.ConvertToJson(v.Body, WireOptions.Untrusted),
    };

    // Renders the vector file. The header bytes are grouped by field so a reader can map them onto framing.md.
    public static string Render()
    {
        var sb = new StringBuilder();
        sb.Append("# Wayang.Fast protocol v1 golden frames. Format: protocol-spec/vectors/README.md.\n");
        sb.Append("# hex = the complete frame: 16-byte header (grouped by field) then the body. Whitespace is not significant.\n");
        foreach (var v in All)
        {
            var frame = v.EncodeFrame();
            sb.Append('\n');
            sb.Append("# ").Append(v.Description).Append('\n');
            sb.Append("name: ").Append(v.Name).Append('\n');
            sb.Append("type: ").Append(FrameTypeName(v.Type)).Append(" (").Append((int)v.Type).Append(")\n");
            sb.Append("stream: ").Append(v.StreamId.ToString(CultureInfo.InvariantCulture)).Append('\n');
            sb.Append("opcode: 0x").Append(((ushort)v.Opcode).ToString("x4", CultureInfo.InvariantCulture)).Append('\n');
            sb.Append("length: ").Append(v.Body.Length.ToString(CultureInfo.InvariantCulture)).Append('\n');
            sb.Append("body: ").Append(BodyText(v)).Append('\n');
            sb.Append("hex: ");
            var hex = Convert.ToHexStringLower(frame);
            // Header fields: length(4) version(1) type(1) flags(2) stream(4) opcode(2) reserved(2).
            sb.Append(hex[..8]).Append(' ').Append(hex[8..10]).Append(' ').Append(hex[10..12]).Append(' ')
              .Append(hex[12..16]).Append(' ').Append(hex[16..24]).Append(' ').Append(hex[24..28]).Append(' ').Append(hex[28..32]);
            if (hex.Length > 32)
                sb.Append(' ').Append(hex[32..]);
            sb.Append('\n');
        }
        return sb.ToString();
    }

    // Parser for the documented format: blocks start at "name:", "#" lines are comments, "key: value" lines are fields.
    public static IReadOnlyList<VectorEntry> Parse(string text)
    {
        var entries = new List<VectorEntry>();
        Dictionary<string, string>? current = null;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || line.StartsWith('#'))
                continue;
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
                throw new FormatException("Not a 'key: value' line: " + line);
            var key = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            if (key == "name")
            {
                Flush();
                current = new Dictionary<string, string>(StringComparer.Ordinal);
            }
            if (current is null)
                throw new FormatException("Field before the first 'name:' line: " + line);
            if (!current.TryAdd(key, value))
                throw new FormatException($"Duplicate field '{key}' in vector {current.GetValueOrDefault("name")}");
        }
        Flush();
        return entries;

        void Flush()
        {
            if (current is null)
                return;
            if (!current.TryGetValue("hex", out var hex))
                throw new FormatException("Vector without hex: " + current["name"]);
            var digits = string.Concat(hex.Where(c => !char.IsWhiteSpace(c)));
            entries.Add(new VectorEntry(current["name"], current, Convert.FromHexString(digits)));
        }
    }
}
