using System.Text;
using MessagePack;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Tests;

// A server with tenant "acme" and one key per role, plus an executor key in tenant "other".
public sealed class ExecutionHarness : IAsyncDisposable
{
    public const string Tenant = "acme";
    public const string OtherTenant = "other";
    public const string OneTaskJson = """{"id":"one","nodes":[{"id":"start","type":"TASK","executorType":"worker"}]}""";

    private readonly Dictionary<string, string> _keys = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _keyIds = new(StringComparer.Ordinal);

    private ExecutionHarness(TestServer server) => Server = server;

    public TestServer Server { get; }
    public string OtherExecutorKey { get; private set; } = "";

    public static async Task<ExecutionHarness> StartAsync(Action<WayangServerOptions>? configure = null)
    {
        var server = await TestServer.StartAsync(configure);
        var harness = new ExecutionHarness(server);
        try
        {
            await using var admin = await harness.ConnectAdminAsync();
            await admin.CallAsync<TenantCreateRequest, TenantInfoDto>(Opcode.TenantCreate, new TenantCreateRequest { TenantId = Tenant, DisplayName = "Acme" });
            await admin.CallAsync<TenantCreateRequest, TenantInfoDto>(Opcode.TenantCreate, new TenantCreateRequest { TenantId = OtherTenant, DisplayName = "Other" });
            foreach (var role in new[] { "tenant-admin", "developer", "operator", "executor", "viewer", "auditor" })
            {
                var created = await admin.CallAsync<KeyCreateRequest, KeyCreateResponse>(Opcode.KeyCreate,
                    new KeyCreateRequest { TenantId = Tenant, Name = "k-" + role, Roles = [role] });
                harness._keys[role] = created.Secret;
                harness._keyIds[role] = created.Key.KeyId;
            }
            var other = await admin.CallAsync<KeyCreateRequest, KeyCreateResponse>(Opcode.KeyCreate,
                new KeyCreateRequest { TenantId = OtherTenant, Name = "k-executor", Roles = ["executor"] });
            harness.OtherExecutorKey = other.Secret;
            return harness;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public string Key(string role) => _keys[role];

    public string KeyId(string role) => _keyIds[role];

    // A new key of any tenant, made by the platform admin; returns its secret.
    public async Task<string> CreateKeyAsync(string tenantId, params string[] roles)
    {
        await using var admin = await ConnectAdminAsync();
        var created = await admin.CallAsync<KeyCreateRequest, KeyCreateResponse>(Opcode.KeyCreate,
            new KeyCreateRequest { TenantId = tenantId, Name = "k-" + Guid.NewGuid().ToString("N")[..12], Roles = roles });
        return created.Secret;
    }

    public async Task<ProtocolConnection> ConnectAsync(string role) => new(await Server.ConnectAsync(_keys[role]));

    public async Task<ProtocolConnection> ConnectWithKeyAsync(string key) => new(await Server.ConnectAsync(key));

    public async Task<ProtocolConnection> ConnectAdminAsync() => new(await Server.ConnectAsync());

    // Registers OneTaskJson as the developer.
    public async Task RegisterOneTaskAsync()
    {
        await using var dev = await ConnectAsync("developer");
        await dev.CallAsync<WorkflowRegisterRequest, WorkflowRegisterResponse>(Opcode.WorkflowRegister,
            new WorkflowRegisterRequest { DefinitionJson = Encoding.UTF8.GetBytes(OneTaskJson) });
    }

    public async Task<List<string>> SubmitAsync(int count, string workflowId = "one")
    {
        await using var dev = await ConnectAsync("developer");
        var runs = new List<string>();
        for (int i = 0; i < count; i++)
        {
            var reply = await dev.CallAsync<RunSubmitRequest, RunSubmitResponse>(Opcode.RunSubmit, new RunSubmitRequest { WorkflowId = workflowId });
            runs.Add(reply.RunId);
        }
        return runs;
    }

    public async Task<QueueStatsResponse> QueueStatsAsync()
    {
        await using var op = await ConnectAsync("operator");
        return await op.CallAsync<QueueStatsRequest, QueueStatsResponse>(Opcode.QueueStats, new QueueStatsRequest());
    }

    public async ValueTask DisposeAsync() => await Server.DisposeAsync();
}

// A protocol connection that keeps frames it was not waiting for: replies of other streams and task pushes arrive
// interleaved on an executor's connection.
public sealed class ProtocolConnection : IAsyncDisposable
{
    private readonly List<ReceivedFrame> _pending = [];
    private uint _nextStream = 1;

    public ProtocolConnection(RawClient raw) => Raw = raw;

    public RawClient Raw { get; }

    public uint NextStream()
    {
        uint id = _nextStream;
        _nextStream += 2;
        return id;
    }

    public Task SendAsync<T>(Opcode opcode, uint streamId, T message) => Raw.RequestAsync(opcode, streamId, message);

    public Task SendRawAsync(Opcode opcode, uint streamId, byte[] body) => Raw.SendAsync(FrameType.Request, opcode, streamId, body);

    public Task CreditAsync(uint streamId, uint credits) =>
        Raw.SendMessageAsync(FrameType.Credit, Opcode.None, streamId, new CreditBody { Credits = credits });

    public Task CancelAsync(uint streamId) => Raw.SendAsync(FrameType.Cancel, Opcode.None, streamId);

    // The next frame on streamId that matches (default: anything but STREAM); others are kept for later.
    public async Task<ReceivedFrame> NextAsync(uint streamId, Func<ReceivedFrame, bool>? match = null)
    {
        match ??= static f => f.Type != FrameType.Stream;
        for (int i = 0; i < _pending.Count; i++)
        {
            if (_pending[i].StreamId == streamId && match(_pending[i]))
            {
                var found = _pending[i];
                _pending.RemoveAt(i);
                return found;
            }
        }
        while (true)
        {
            var frame = await Raw.ReadFrameAsync() ?? throw new InvalidOperationException($"The server closed the connection while a frame on stream {streamId} was expected.");
            if (frame.StreamId == streamId && match(frame))
                return frame;
            _pending.Add(frame);
        }
    }

    public async Task<ReceivedFrame> CallRawAsync<TRequest>(Opcode opcode, TRequest request)
    {
        uint id = NextStream();
        await SendAsync(opcode, id, request);
        return await NextAsync(id);
    }

    public async Task<ReceivedFrame> CallBytesAsync(Opcode opcode, byte[] body)
    {
        uint id = NextStream();
        await SendRawAsync(opcode, id, body);
        return await NextAsync(id);
    }

    public async Task<TResponse> CallAsync<TRequest, TResponse>(Opcode opcode, TRequest request)
    {
        var frame = await CallRawAsync(opcode, request);
        Assert.True(frame.Type == FrameType.Response, $"expected RESPONSE to {opcode}, got {frame}");
        return frame.Decode<TResponse>();
    }

    public async Task<ErrorBody> ExpectErrorAsync<TRequest>(Opcode opcode, TRequest request, ErrorCode code)
    {
        var frame = await CallRawAsync(opcode, request);
        Assert.True(frame.Type == FrameType.Error && frame.ErrorCode == code, $"expected ERROR {ErrorRegistry.NameOf(code)} for {opcode}, got {frame}");
        return frame.Decode<ErrorBody>();
    }

    // Opens an executor task stream; returns its stream id.
    public async Task<uint> RegisterExecutorAsync(string executorId, int slots, params string[] types)
    {
        uint id = NextStream();
        await SendAsync(Opcode.ExecutorRegister, id, new ExecutorRegisterRequest
        {
            ExecutorId = executorId,
            ExecutorTypes = types.Length == 0 ? ["worker"] : types,
            Slots = slots,
        });
        // A Ping round trip: the registration (handled in frame order) is in place once its reply arrives.
        await BarrierAsync();
        return id;
    }

    public async Task<TaskAssignmentDto> NextTaskAsync(uint registerStream)
    {
        var frame = await NextAsync(registerStream, static f => f.Type == FrameType.Stream);
        Assert.Equal(Opcode.ExecutorRegister, frame.Opcode);
        return frame.Decode<TaskAssignmentDto>();
    }

    // Everything the server wrote before it answered a Ping sent now, on any stream (the pending frames included).
    public async Task<List<ReceivedFrame>> BarrierAsync()
    {
        uint id = NextStream();
        await Raw.SendAsync(FrameType.Request, Opcode.Ping, id);
        var before = new List<ReceivedFrame>();
        while (true)
        {
            var frame = await Raw.ReadFrameAsync() ?? throw new InvalidOperationException("The server closed the connection during a Ping barrier.");
            if (frame.StreamId == id)
            {
                Assert.Equal(FrameType.Response, frame.Type);
                break;
            }
            before.Add(frame);
        }
        _pending.AddRange(before);
        return [.. _pending];
    }

    // Task pushes received so far on registerStream and not yet taken, counted after a barrier.
    public async Task<int> PendingTasksAsync(uint registerStream)
    {
        var frames = await BarrierAsync();
        return frames.Count(f => f.StreamId == registerStream && f.Type == FrameType.Stream);
    }

    public Task<TaskResultResponse> CompleteAsync(TaskAssignmentDto task, string outputJson = "{\"ok\":true}") =>
        CallAsync<TaskResultRequest, TaskResultResponse>(Opcode.TaskResult, new TaskResultRequest
        {
            Token = task.Token,
            Success = true,
            OutputJson = Encoding.UTF8.GetBytes(outputJson),
        });

    public static byte[] Body<T>(T message) => MessagePackSerializer.Serialize(message, WireOptions.Trusted);

    public async ValueTask DisposeAsync() => await Raw.DisposeAsync();
}
