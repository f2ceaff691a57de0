using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Logging;
using Wayang.Fast.Common.Audit;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Tests;

// Secrets over real sockets: tenant scoping, permissions, the access audit, rotation events, and no plain text on disk
// or in the logs.
public sealed class SecretsServerTests
{
    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public async Task Versions_round_trip_and_every_read_write_and_denial_is_audited_with_principal_and_version_never_the_value()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await using var dev = await h.ConnectAsync("developer");
        var v1 = await dev.CallAsync<SecretWriteRequest, SecretVersionDto>(Opcode.SecretPut, new SecretWriteRequest { Path = "db/password", Value = Utf8("hunter2-v1"), Cas = 0 });
        Assert.Equal(1, v1.Version);
        await dev.ExpectErrorAsync(Opcode.SecretPut, new SecretWriteRequest { Path = "db/password", Value = Utf8("x"), Cas = 0 }, ErrorCode.SecretVersionConflict);
        var v2 = await dev.CallAsync<SecretWriteRequest, SecretVersionDto>(Opcode.SecretRotate, new SecretWriteRequest { Path = "db/password", Value = Utf8("hunter2-v2"), Cas = 1 });
        Assert.Equal(2, v2.Version);

        var latest = await dev.CallAsync<SecretPathRequest, SecretValueDto>(Opcode.SecretGet, new SecretPathRequest { Path = "db/password" });
        Assert.Equal((2, "hunter2-v2"), (latest.Version, Encoding.UTF8.GetString(latest.Value)));
        var first = await dev.CallAsync<SecretPathRequest, SecretValueDto>(Opcode.SecretGet, new SecretPathRequest { Path = "db/password", Version = 1 });
        Assert.Equal("hunter2-v1", Encoding.UTF8.GetString(first.Value));

        var history = await dev.CallAsync<SecretPathRequest, SecretMetadataDto>(Opcode.SecretHistory, new SecretPathRequest { Path = "db/password" });
        Assert.Equal([1, 2], history.Versions.Select(v => v.Version));
        Assert.All(history.Versions, v => Assert.Equal(h.KeyId("developer"), v.CreatedBy));
        Assert.All(history.Versions, v => Assert.Equal("local", v.Provider));

        await dev.CallAsync<SecretDisableRequest, SecretMetadataDto>(Opcode.SecretDisable, new SecretDisableRequest { Path = "db/password", Version = 1 });
        await dev.ExpectErrorAsync(Opcode.SecretGet, new SecretPathRequest { Path = "db/password", Version = 1 }, ErrorCode.SecretVersionUnavailable);

        // A viewer lists metadata but may not read values: denied, and the denial is on record.
        await using var viewer = await h.ConnectAsync("viewer");
        var listed = await viewer.CallAsync<SecretListRequest, SecretListResponse>(Opcode.SecretList, new SecretListRequest());
        Assert.Equal("db/password", Assert.Single(listed.Secrets).Path);
        await viewer.ExpectErrorAsync(Opcode.SecretGet, new SecretPathRequest { Path = "db/password" }, ErrorCode.PermissionDenied);

        await using var admin = await h.ConnectAsync("tenant-admin");
        var records = (await admin.CallAsync<AuditQueryRequest, AuditQueryResponse>(Opcode.AuditQuery, new AuditQueryRequest { Limit = 1000 })).Records;
        Assert.Contains(records, r => r.Operation == "SecretPut" && r.Outcome == (byte)AuditOutcome.Allowed && r.Resource == "secret:acme/db/password@1" && r.PrincipalId == h.KeyId("developer"));
        Assert.Contains(records, r => r.Operation == "SecretPut" && r.Outcome == (byte)AuditOutcome.Failed && r.Reason == "SECRET_VERSION_CONFLICT");
        Assert.Contains(records, r => r.Operation == "SecretRotate" && r.Resource == "secret:acme/db/password@2");
        Assert.Contains(records, r => r.Operation == "SecretGet" && r.Outcome == (byte)AuditOutcome.Allowed && r.Resource == "secret:acme/db/password@2");
        Assert.Contains(records, r => r.Operation == "SecretGet" && r.Outcome == (byte)AuditOutcome.Allowed && r.Resource == "secret:acme/db/password@1");
        Assert.Contains(records, r => r.Operation == "SecretGet" && r.Outcome == (byte)AuditOutcome.Denied && r.PrincipalId == h.KeyId("viewer"));
        Assert.DoesNotContain(records, r => r.Resource.Contains("hunter2", StringComparison.Ordinal) || r.Details.Values.Any(v => v.Contains("hunter2", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Another_tenants_secret_answers_like_a_missing_one_and_naming_its_tenant_is_denied()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await using var dev = await h.ConnectAsync("developer");
        await dev.CallAsync<SecretWriteRequest, SecretVersionDto>(Opcode.SecretPut, new SecretWriteRequest { Path = "api/token", Value = Utf8("acme-only") });

        await using var otherAdmin = await h.ConnectWithKeyAsync(await h.CreateKeyAsync(ExecutionHarness.OtherTenant, "tenant-admin"));
        var missing = await otherAdmin.ExpectErrorAsync(Opcode.SecretGet, new SecretPathRequest { Path = "api/token" }, ErrorCode.SecretNotFound);
        var reallyMissing = await otherAdmin.ExpectErrorAsync(Opcode.SecretGet, new SecretPathRequest { Path = "api/nothing" }, ErrorCode.SecretNotFound);
        Assert.Equal(missing.Message.Replace("api/token", "X", StringComparison.Ordinal), reallyMissing.Message.Replace("api/nothing", "X", StringComparison.Ordinal));
        await otherAdmin.ExpectErrorAsync(Opcode.SecretGet, new SecretPathRequest { TenantId = ExecutionHarness.Tenant, Path = "api/token" }, ErrorCode.PermissionDenied);
        await otherAdmin.ExpectErrorAsync(Opcode.SecretPut, new SecretWriteRequest { Path = "../acme/api/token", Value = Utf8("x") }, ErrorCode.SecretInvalid);
    }

    [Fact]
    public async Task A_watcher_receives_the_write_and_rotation_events_under_its_prefix_without_values()
    {
        await using var h = await ExecutionHarness.StartAsync();
        await using var executor = await h.ConnectAsync("executor");
        uint stream = executor.NextStream();
        await executor.SendAsync(Opcode.SecretWatch, stream, new SecretWatchRequest { PathPrefix = "payments/" });
        await executor.CreditAsync(stream, 16);

        await using var dev = await h.ConnectAsync("developer");
        // The subscription is open once the server has processed the watch request: a barrier on the watcher's connection.
        await executor.BarrierAsync();
        await dev.CallAsync<SecretWriteRequest, SecretVersionDto>(Opcode.SecretPut, new SecretWriteRequest { Path = "other/x", Value = Utf8("ignored") });
        await dev.CallAsync<SecretWriteRequest, SecretVersionDto>(Opcode.SecretPut, new SecretWriteRequest { Path = "payments/stripe", Value = Utf8("sk_1") });
        await dev.CallAsync<SecretWriteRequest, SecretVersionDto>(Opcode.SecretRotate, new SecretWriteRequest { Path = "payments/stripe", Value = Utf8("sk_2") });

        var written = (await executor.NextAsync(stream, static f => f.Type == FrameType.Stream)).Decode<SecretEventDto>();
        Assert.Equal((0, "payments/stripe", 1), ((int)written.Kind, written.Path, written.Version));
        var rotated = (await executor.NextAsync(stream, static f => f.Type == FrameType.Stream)).Decode<SecretEventDto>();
        Assert.Equal((1, "payments/stripe", 2, ExecutionHarness.Tenant), ((int)rotated.Kind, rotated.Path, rotated.Version, rotated.TenantId));
        Assert.DoesNotContain("sk_", rotated.Detail, StringComparison.Ordinal);
        await executor.CancelAsync(stream);
    }

    [Fact]
    public async Task An_embedding_service_gets_rotations_as_in_process_callbacks()
    {
        await using var h = await ExecutionHarness.StartAsync();
        var rotated = new TaskCompletionSource<Control.Secrets.SecretEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscription = h.Server.Server.SecretEvents.Subscribe(e =>
        {
            if (e.Kind == Control.Secrets.SecretEventKind.Rotated)
                rotated.TrySetResult(e);
        });

        await using var dev = await h.ConnectAsync("developer");
        await dev.CallAsync<SecretWriteRequest, SecretVersionDto>(Opcode.SecretPut, new SecretWriteRequest { Path = "smtp/password", Value = Utf8("p1") });
        await dev.CallAsync<SecretWriteRequest, SecretVersionDto>(Opcode.SecretRotate, new SecretWriteRequest { Path = "smtp/password", Value = Utf8("p2") });

        var e = await rotated.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal((ExecutionHarness.Tenant, "smtp/password", 2), (e.Tenant, e.Path, e.Version));
    }

    [Fact]
    public async Task Known_secret_values_never_reach_the_data_directory_or_the_logs()
    {
        string[] values = ["PLAINTEXT-CANARY-one-7f3a9c", "PLAINTEXT-CANARY-two-b81e44", "PLAINTEXT-CANARY-rotated-0d2c61"];
        var dir = TestServer.NewDataDirectory();
        var logs = new CapturingLoggerProvider();
        try
        {
            using var factory = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(logs));
            var server = await WayangServer.StartAsync(TestServer.Options(dir), factory);
            await using (server)
            {
                var raw = await RawClient.ConnectAsync(server.ProtocolEndPoint);
                await using var admin = new ProtocolConnection(raw);
                await raw.HandshakeAsync(server.BootstrapAdminKey!, 0);
                await admin.CallAsync<SecretWriteRequest, SecretVersionDto>(Opcode.SecretPut, new SecretWriteRequest { Path = "a/one", Value = Utf8(values[0]) });
                await admin.CallAsync<SecretWriteRequest, SecretVersionDto>(Opcode.SecretPut, new SecretWriteRequest { Path = "a/two", Value = Utf8(values[1]) });
                await admin.CallAsync<SecretWriteRequest, SecretVersionDto>(Opcode.SecretRotate, new SecretWriteRequest { Path = "a/two", Value = Utf8(values[2]) });
                foreach (var path in new[] { "a/one", "a/two" })
                    await admin.CallAsync<SecretPathRequest, SecretValueDto>(Opcode.SecretGet, new SecretPathRequest { Path = path });
                // A failing call whose request carried a value: its error is logged nowhere with the value either.
                await admin.ExpectErrorAsync(Opcode.SecretPut, new SecretWriteRequest { Path = "a/one", Value = Utf8(values[0]), Cas = 7 }, ErrorCode.SecretVersionConflict);
                Assert.Equal(ErrorCode.None, (await admin.CallBytesAsync(Opcode.MasterKeyRotate, [])).ErrorCode);
            }

            var files = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).ToList();
            Assert.NotEmpty(files);
            foreach (var value in values)
            {
                byte[][] needles = [Encoding.UTF8.GetBytes(value), Encoding.Unicode.GetBytes(value), Encoding.ASCII.GetBytes(Convert.ToBase64String(Encoding.UTF8.GetBytes(value)))];
                foreach (var file in files)
                {
                    var bytes = File.ReadAllBytes(file);
                    foreach (var needle in needles)
                        Assert.True(bytes.AsSpan().IndexOf(needle) < 0, $"{value} found in {file}");
                }
                Assert.DoesNotContain(logs.Lines, line => line.Contains(value, StringComparison.Ordinal));
            }
            Assert.NotEmpty(logs.Lines);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // Every log line (message, state and exception) the server writes, at every level.
    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        private readonly ConcurrentQueue<string> _lines = new();

        public IReadOnlyCollection<string> Lines => _lines;

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(CapturingLoggerProvider owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner._lines.Enqueue($"{category} {logLevel} {formatter(state, exception)} {state} {exception}");
        }
    }
}

// The task-token signing key lives in the secret store, encrypted, out of every tenant's reach; a data directory that
// kept it in plain bytes (before the secrets plane) has it moved there.
public sealed class TokenKeySecretTests
{
    private static readonly byte[] LegacyKey = "exec/token-key"u8.ToArray();
    private static readonly byte[] SecretRecord = "secret/_server/execution/token-signing-key"u8.ToArray();

    private static async Task<Storage.FasterStateStore> OpenStoreAsync(string dir)
    {
        var options = new Storage.StorageOptions { DataDirectory = dir };
        TestServer.SmallStorage(options);
        return await Storage.FasterStateStore.OpenAsync(options);
    }

    [Fact]
    public async Task A_new_server_keeps_the_token_key_encrypted_in_the_secret_store_and_never_in_plain_bytes()
    {
        var dir = TestServer.NewDataDirectory();
        try
        {
            await using (var server = await TestServer.StartAsync(dataDirectory: dir))
            {
                // No tenant can name the server's namespace.
                await using var admin = new ProtocolConnection(await server.ConnectAsync());
                await admin.ExpectErrorAsync(Opcode.SecretGet, new SecretPathRequest { TenantId = "_server", Path = "execution/token-signing-key" }, ErrorCode.TenantNotFound);
            }
            await using var store = await OpenStoreAsync(dir);
            Assert.False(store.TryGet(LegacyKey, out _));
            Assert.True(store.TryGet(SecretRecord, out _));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_plain_token_key_from_an_older_data_directory_moves_into_the_secret_store_unchanged()
    {
        var dir = TestServer.NewDataDirectory();
        var old = Enumerable.Range(1, 32).Select(i => (byte)(i * 7)).ToArray();
        try
        {
            await using (var store = await OpenStoreAsync(dir))
                await store.PutAsync(LegacyKey, old);

            await using (var server = await TestServer.StartAsync(dataDirectory: dir, adminKey: "unused"))
            {
            }

            await using var reopened = await OpenStoreAsync(dir);
            Assert.False(reopened.TryGet(LegacyKey, out _));
            var secrets = new Control.Secrets.SecretStore(reopened, new Control.Secrets.LocalKeyProvider(Path.Combine(dir, "secrets")));
            var moved = await secrets.GetAsync("_server", "execution/token-signing-key", 0);
            Assert.Equal(old, moved.Value);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
