using System.Text;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Secrets;
using Wayang.Fast.Storage;
using Wayang.Fast.Storage.Tests;

namespace Wayang.Fast.Control.Tests.Secrets;

public sealed class SecretStoreTests
{
    [Fact]
    public async Task Versions_round_trip_and_keep_their_history()
    {
        using var h = new SecretHarness();
        var v1 = await h.PutAsync("db/orders/password", "one");
        h.Time.Advance(TimeSpan.FromSeconds(1));
        var v2 = await h.PutAsync("db/orders/password", "two");

        Assert.Equal((1, 2), (v1.Version, v2.Version));
        Assert.Equal("two", await h.ReadAsync("db/orders/password"));
        Assert.Equal("one", await h.ReadAsync("db/orders/password", 1));
        var meta = h.Secrets.GetMetadata(SecretHarness.Tenant, "db/orders/password");
        Assert.Equal(2, meta.CurrentVersion);
        Assert.Equal([SecretVersionState.Active, SecretVersionState.Active], meta.Versions.Select(v => v.State));
        Assert.Equal(v2.CreatedAtMs, meta.Versions[1].CreatedAtMs);
        Assert.All(meta.Versions, v => Assert.Equal(("alice", "local", "local-1"), (v.CreatedBy, v.Provider, v.KeyId)));

        // Metadata survives a restart and the values still decrypt.
        h.Reopen();
        Assert.Equal("one", await h.ReadAsync("db/orders/password", 1));
        Assert.Equal(meta, h.Secrets.GetMetadata(SecretHarness.Tenant, "db/orders/password"), new MetadataComparer());
    }

    [Fact]
    public async Task Check_and_set_guards_writes()
    {
        using var h = new SecretHarness();
        await h.PutAsync("api/key", "a", cas: 0);
        var conflict = await TestData.ThrowsWayangAsync(ErrorCode.SecretVersionConflict, () => h.PutAsync("api/key", "b", cas: 0));
        Assert.Equal("1", conflict.Error.Details["current"]);
        await h.PutAsync("api/key", "b", cas: 1);
        conflict = await TestData.ThrowsWayangAsync(ErrorCode.SecretVersionConflict, () => h.PutAsync("api/key", "c", cas: 1));
        Assert.Equal("2", conflict.Error.Details["current"]);
        await h.PutAsync("api/key", "c");
        Assert.Equal("c", await h.ReadAsync("api/key"));
        await TestData.ThrowsWayangAsync(ErrorCode.SecretVersionConflict, () => h.PutAsync("other", "x", cas: 3));
        await TestData.ThrowsWayangAsync(ErrorCode.SecretNotFound, () => h.Secrets.RotateAsync("acme", "other", new byte[] { 1 }, null, "bob"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("/a")]
    [InlineData("a/")]
    [InlineData("a//b")]
    [InlineData("a/./b")]
    [InlineData("a/../b")]
    [InlineData("a b")]
    [InlineData("a/b*")]
    public async Task Invalid_paths_are_refused(string path)
    {
        using var h = new SecretHarness();
        Assert.False(SecretPath.IsValid(path));
        await TestData.ThrowsWayangAsync(ErrorCode.SecretInvalid, () => h.PutAsync(path, "v"));
    }

    [Fact]
    public async Task Path_and_value_limits()
    {
        using var h = new SecretHarness();
        Assert.True(SecretPath.IsValid(new string('a', 256)));
        Assert.False(SecretPath.IsValid(new string('a', 257)));
        Assert.True(SecretPath.IsValid("A-z_0.9/..x/x.."));
        await TestData.ThrowsWayangAsync(ErrorCode.SecretInvalid, () => h.Secrets.PutAsync("acme", "p", Array.Empty<byte>(), null, "alice"));
        await TestData.ThrowsWayangAsync(ErrorCode.SecretInvalid, () => h.Secrets.PutAsync("acme", "p", new byte[65537], null, "alice"));
        await h.Secrets.PutAsync("acme", "p", new byte[65536], null, "alice");
        Assert.Equal(65536, (await h.Secrets.GetAsync("acme", "p", 0)).Value.Length);
    }

    [Fact]
    public async Task The_largest_values_at_the_highest_version_limit_fit_a_real_store()
    {
        using var dir = new TempDirectory("secrets");
        var options = TestData.SmallOptions(dir.Path);
        // Raised from SmallOptions' 8 KiB to hold one sealed 64 KiB value (base64 in JSON); the pages must fit one
        // entry. The metadata of 100 versions is far below this too.
        options.MaxValueBytes = 128 * 1024;
        options.JournalPageBits = options.StorePageBits = 18;
        options.JournalMemoryBits = options.JournalSegmentBits = 20;
        options.StoreMemoryBits = 22;
        var provider = new LocalKeyProvider(dir.Path);
        var policy = new SecretPolicy(MaxVersions: 100);
        byte[] ValueOf(int version) => Enumerable.Range(0, SecretPath.MaxValueBytes).Select(i => (byte)(i * 7 + version)).ToArray();

        await using (var store = await FasterStateStore.OpenAsync(options, logger: null))
        {
            var secrets = new SecretStore(store, provider, new SecretStoreOptions { DefaultPolicy = policy });
            for (int version = 1; version <= 100; version++)
                Assert.Equal(version, (await secrets.PutAsync("acme", "big", ValueOf(version), null, "alice")).Version);
            for (int version = 1; version <= 100; version++)
                Assert.Equal(ValueOf(version), (await secrets.GetAsync("acme", "big", version)).Value);
        }

        // And after a restart (recovered store, cold cache).
        await using (var store = await FasterStateStore.OpenAsync(options, logger: null))
        {
            var secrets = new SecretStore(store, provider);
            Assert.All(secrets.GetMetadata("acme", "big").Versions, v => Assert.Equal(SecretVersionState.Active, v.State));
            for (int version = 1; version <= 100; version += 33)
                Assert.Equal(ValueOf(version), (await secrets.GetAsync("acme", "big", version)).Value);
        }
    }

    [Fact]
    public async Task Versions_beyond_the_policy_are_pruned()
    {
        using var h = new SecretHarness();
        for (int i = 1; i <= 12; i++)
            await h.PutAsync("k", "v" + i);
        var meta = h.Secrets.GetMetadata("acme", "k");
        Assert.Equal(10, h.State.ScanPrefix("secret-v/acme/k/"u8).Count);
        Assert.Equal(12, meta.Versions.Count);
        Assert.Equal([SecretVersionState.Pruned, SecretVersionState.Pruned], meta.Versions.Take(2).Select(v => v.State));
        Assert.All(meta.Versions.Skip(2), v => Assert.Equal(SecretVersionState.Active, v.State));
        await TestData.ThrowsWayangAsync(ErrorCode.SecretVersionUnavailable, () => h.ReadAsync("k", 2));
        Assert.Equal("v3", await h.ReadAsync("k", 3));

        // A tighter policy prunes at once; the pruned versions' sealed records are deleted.
        await h.Secrets.SetPolicyAsync("acme", "k", new SecretPolicy(MaxVersions: 1), "admin");
        Assert.Equal(11, h.Secrets.GetMetadata("acme", "k").Versions.Count(v => v.State == SecretVersionState.Pruned));
        Assert.Equal([SecretHarness.SealedKey("k", 12)], h.State.ScanPrefix("secret-v/"u8).Select(r => Encoding.UTF8.GetString(r.Key)));
        Assert.Single(h.Secrets.KeyIdsInUse());
        Assert.Equal("v12", await h.ReadAsync("k"));
        await TestData.ThrowsWayangAsync(ErrorCode.SecretInvalid, () => h.Secrets.SetPolicyAsync("acme", "k", new SecretPolicy(MaxVersions: 101), "admin"));
        await TestData.ThrowsWayangAsync(ErrorCode.SecretInvalid, () => h.Secrets.SetPolicyAsync("acme", "k", new SecretPolicy(RotateEveryDays: 3651), "admin"));
    }

    [Fact]
    public async Task Disable_enable_and_destroy()
    {
        using var h = new SecretHarness();
        await h.PutAsync("k", "one");
        await h.PutAsync("k", "two");

        await h.Secrets.DisableVersionAsync("acme", "k", 2, disabled: true, "admin");
        await TestData.ThrowsWayangAsync(ErrorCode.SecretVersionUnavailable, () => h.ReadAsync("k", 2));
        Assert.Equal("one", await h.ReadAsync("k"));
        await h.Secrets.DisableVersionAsync("acme", "k", 2, disabled: false, "admin");
        Assert.Equal("two", await h.ReadAsync("k"));

        await h.Secrets.DestroyAsync("acme", "k", 1, "admin");
        Assert.Equal(SecretVersionState.Destroyed, h.Secrets.GetMetadata("acme", "k").Versions[0].State);
        Assert.False(h.State.TryGet(Encoding.UTF8.GetBytes(SecretHarness.SealedKey("k", 1)), out _));
        await TestData.ThrowsWayangAsync(ErrorCode.SecretVersionUnavailable, () => h.ReadAsync("k", 1));
        await TestData.ThrowsWayangAsync(ErrorCode.SecretVersionUnavailable, () => h.Secrets.DisableVersionAsync("acme", "k", 1, true, "admin"));
        await TestData.ThrowsWayangAsync(ErrorCode.SecretNotFound, () => h.ReadAsync("k", 3));

        await h.Secrets.DestroyAsync("acme", "k", 0, "admin");
        await TestData.ThrowsWayangAsync(ErrorCode.SecretNotFound, () => h.ReadAsync("k"));
        Assert.Empty(h.State.ScanPrefix("secret/"u8));
        Assert.Empty(h.State.ScanPrefix("secret-v/"u8));
        Assert.Equal(1, (await h.PutAsync("k", "fresh", cas: 0)).Version);
    }

    [Fact]
    public async Task Tampered_ciphertext_fails_integrity()
    {
        using var h = new SecretHarness();
        await h.PutAsync("k", "value");
        var key = Encoding.UTF8.GetBytes(SecretHarness.SealedKey("k", 1));
        Assert.True(h.State.TryGet(key, out var record));
        // Flip one bit inside the stored ciphertext (base64 in JSON): decode, flip, re-encode.
        var json = System.Text.Json.Nodes.JsonNode.Parse(record)!;
        var sealedValue = Convert.FromBase64String(json["ciphertext"]!.GetValue<string>());
        sealedValue[0] ^= 1;
        json["ciphertext"] = Convert.ToBase64String(sealedValue);
        await h.State.PutAsync(key, Encoding.UTF8.GetBytes(json.ToJsonString()));

        h.Reopen();
        await TestData.ThrowsWayangAsync(ErrorCode.SecretIntegrity, () => h.ReadAsync("k"));
    }

    // withMetadata: the whole secret is copied to a new place; without: only the version record, over the one of a
    // secret that lives there.
    [Theory]
    [InlineData("acme", "moved", true)]
    [InlineData("globex", "k", true)]
    [InlineData("acme", "moved", false)]
    [InlineData("globex", "k", false)]
    public async Task Records_copied_to_another_path_or_tenant_fail_integrity(string tenant, string path, bool withMetadata)
    {
        using var h = new SecretHarness();
        await h.PutAsync("k", "value");
        if (withMetadata)
            await h.CopyRecordAsync("secret/acme/k", $"secret/{tenant}/{path}");
        else
            await h.PutAsync(path, "theirs", tenant: tenant);
        await h.CopyRecordAsync(SecretHarness.SealedKey("k", 1), SecretHarness.SealedKey(path, 1, tenant));

        h.Reopen();
        // Through the provider (the wrapped key's context) and through a warm cache (the value's associated data).
        await TestData.ThrowsWayangAsync(ErrorCode.SecretIntegrity, () => h.ReadAsync(path, tenant: tenant));
        Assert.Equal("value", await h.ReadAsync("k"));
        await TestData.ThrowsWayangAsync(ErrorCode.SecretIntegrity, () => h.ReadAsync(path, tenant: tenant));
    }

    [Fact]
    public async Task A_version_record_copied_to_another_version_fails_integrity()
    {
        using var h = new SecretHarness();
        await h.PutAsync("k", "one");
        await h.PutAsync("k", "two");
        await h.CopyRecordAsync(SecretHarness.SealedKey("k", 1), SecretHarness.SealedKey("k", 2));

        h.Reopen();
        Assert.Equal("one", await h.ReadAsync("k", 1));
        // Same context, cached data key: only the associated data's version tells them apart.
        await TestData.ThrowsWayangAsync(ErrorCode.SecretIntegrity, () => h.ReadAsync("k", 2));
    }

    [Fact]
    public async Task Loading_deletes_orphaned_version_records()
    {
        using var h = new SecretHarness();
        await h.PutAsync("k", "one");
        await h.PutAsync("k", "two");
        await h.PutAsync("k", "three");
        await h.Secrets.DisableVersionAsync("acme", "k", 3, disabled: true, "admin");
        await h.PutAsync("gone", "x");
        // What crashes between the two steps leave: a destroyed version's record (destroy committed, delete not yet),
        // a version the metadata never heard of (record put, metadata not yet), a record whose secret is gone.
        await h.CopyRecordAsync(SecretHarness.SealedKey("k", 1), "keep-v1");
        await h.Secrets.DestroyAsync("acme", "k", 1, "admin");
        await h.CopyRecordAsync("keep-v1", SecretHarness.SealedKey("k", 1));
        await h.CopyRecordAsync(SecretHarness.SealedKey("k", 2), SecretHarness.SealedKey("k", 4));
        await h.CopyRecordAsync(SecretHarness.SealedKey("gone", 1), "keep-gone");
        await h.Secrets.DestroyAsync("acme", "gone", 0, "admin");
        await h.CopyRecordAsync("keep-gone", SecretHarness.SealedKey("gone", 1));
        await h.CopyRecordAsync(SecretHarness.SealedKey("k", 2), SecretHarness.SealedKey("k", 2, "globex"));
        Assert.Equal(6, h.State.ScanPrefix("secret-v/"u8).Count);

        h.Reopen();
        // Active and Disabled versions keep theirs.
        Assert.Equal([SecretHarness.SealedKey("k", 2), SecretHarness.SealedKey("k", 3)],
            h.State.ScanPrefix("secret-v/"u8).Select(r => Encoding.UTF8.GetString(r.Key)).Order());
        Assert.Equal("two", await h.ReadAsync("k"));
        await h.Secrets.DisableVersionAsync("acme", "k", 3, disabled: false, "admin");
        Assert.Equal("three", await h.ReadAsync("k"));
        Assert.Equal(4, (await h.PutAsync("k", "four")).Version);
        Assert.Equal("four", await h.ReadAsync("k", 4));
    }

    [Fact]
    public async Task A_record_in_the_old_single_record_layout_is_refused()
    {
        using var h = new SecretHarness();
        await h.State.PutAsync("secret/acme/old"u8.ToArray(), """
            {"policy":{"maxVersions":10,"rotateEveryDays":0},"createdAtMs":1,"updatedAtMs":1,"rotationAnnouncedAtMs":0,"lastRotationFailureAtMs":0,
             "versions":[{"version":1,"state":0,"createdAtMs":1,"createdBy":"alice","provider":"local","keyId":"local-1",
                          "wrappedKey":"AAAA","nonce":"AAAAAAAAAAAAAAAA","ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}]}
            """u8.ToArray());
        var ex = TestData.ThrowsWayang(ErrorCode.StorageCorrupt, () => h.Reopen());
        Assert.Contains("secret/acme/old", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Another_tenant_sees_nothing()
    {
        using var h = new SecretHarness();
        await h.PutAsync("k", "value");
        await TestData.ThrowsWayangAsync(ErrorCode.SecretNotFound, () => h.ReadAsync("k", tenant: "globex"));
        Assert.Empty(h.Secrets.List("globex", ""));
        Assert.Throws<WayangException>(() => h.Secrets.GetMetadata("globex", "k"));
    }

    [Fact]
    public async Task List_filters_by_prefix()
    {
        using var h = new SecretHarness();
        await h.PutAsync("db/b", "1");
        await h.PutAsync("db/a", "1");
        await h.PutAsync("api/x", "1");
        Assert.Equal(["db/a", "db/b"], h.Secrets.List("acme", "db/").Select(m => m.Path));
        Assert.Equal(3, h.Secrets.List("acme", "").Count);
    }

    [Fact]
    public async Task Cached_data_keys_skip_the_provider()
    {
        using var h = new SecretHarness();
        await h.PutAsync("k", "value");
        h.Reopen();
        for (int i = 0; i < 5; i++)
            Assert.Equal("value", await h.ReadAsync("k"));
        Assert.Equal(1, h.Provider.Decrypts);

        // The TTL ends the cache's answer.
        h.Time.Advance(TimeSpan.FromMinutes(6));
        await h.ReadAsync("k");
        Assert.Equal(2, h.Provider.Decrypts);
    }

    [Fact]
    public async Task Without_the_cache_every_read_unwraps()
    {
        using var h = new SecretHarness(new SecretStoreOptions { DataKeyCacheEntries = 0 });
        await h.PutAsync("k", "value");
        for (int i = 0; i < 3; i++)
            await h.ReadAsync("k");
        Assert.Equal(3, h.Provider.Decrypts);
        Assert.Equal(0, h.Secrets.CachedDataKeys);
    }

    [Fact]
    public async Task The_cache_is_bounded()
    {
        using var h = new SecretHarness(new SecretStoreOptions { DataKeyCacheEntries = 2 });
        for (int i = 0; i < 5; i++)
            await h.PutAsync("k" + i, "v");
        Assert.Equal(2, h.Secrets.CachedDataKeys);
        // The two most recent stay: reading them costs nothing, the oldest needs the provider.
        await h.ReadAsync("k4");
        await h.ReadAsync("k3");
        Assert.Equal(0, h.Provider.Decrypts);
        await h.ReadAsync("k0");
        Assert.Equal(1, h.Provider.Decrypts);
    }

    [Fact]
    public async Task Events_reach_callbacks_and_channels_without_values()
    {
        using var h = new SecretHarness();
        var seen = new List<SecretEvent>();
        using var subscription = h.Secrets.Events.Subscribe(seen.Add);
        using var acme = h.Secrets.Events.Open("acme", 16);
        using var globex = h.Secrets.Events.Open("globex", 16);

        await h.PutAsync("k", "hunter2");
        await h.Secrets.RotateAsync("acme", "k", "hunter3"u8.ToArray(), 1, "bot");
        await h.Secrets.DisableVersionAsync("acme", "k", 1, true, "admin");
        await h.Secrets.DisableVersionAsync("acme", "k", 1, false, "admin");
        await h.Secrets.SetPolicyAsync("acme", "k", new SecretPolicy(5, 30), "admin");
        await h.Secrets.ReportRotationFailureAsync("acme", "k", "upstream refused", "bot");
        await h.Secrets.DestroyAsync("acme", "k", 0, "admin");

        SecretEventKind[] expected = [SecretEventKind.Written, SecretEventKind.Rotated, SecretEventKind.VersionDisabled, SecretEventKind.VersionEnabled,
            SecretEventKind.PolicyChanged, SecretEventKind.RotationFailed, SecretEventKind.Destroyed];
        Assert.Equal(expected, seen.Select(e => e.Kind));
        Assert.Equal([1, 2, 1, 1, 0, 2, 0], seen.Select(e => e.Version));
        Assert.Equal("upstream refused", seen[5].Detail);
        Assert.DoesNotContain(seen, e => e.Detail?.Contains("hunter", StringComparison.Ordinal) == true);

        var fromChannel = new List<SecretEvent>();
        while (acme.Reader.TryRead(out var e))
            fromChannel.Add(e);
        Assert.Equal(seen, fromChannel);
        Assert.False(globex.Reader.TryRead(out _));
    }

    [Fact]
    public async Task A_full_channel_drops_the_oldest_and_counts()
    {
        using var h = new SecretHarness();
        using var events = h.Secrets.Events.Open(null, 2);
        for (int i = 1; i <= 5; i++)
            await h.PutAsync("k", "v" + i);
        Assert.Equal(3, events.Dropped);
        Assert.True(events.Reader.TryRead(out var first));
        Assert.Equal(4, first.Version);

        events.Dispose();
        await h.PutAsync("k", "v6");
        Assert.True(events.Reader.TryRead(out _));
        Assert.False(events.Reader.TryRead(out _));
        Assert.True(events.Reader.Completion.IsCompleted);
    }

    [Fact]
    public async Task Rotation_due_is_announced_once_per_period()
    {
        using var h = new SecretHarness();
        var due = new List<SecretEvent>();
        using var _ = h.Secrets.Events.Subscribe(e =>
        {
            if (e.Kind == SecretEventKind.RotationDue)
                due.Add(e);
        });
        await h.PutAsync("k", "v");
        await h.PutAsync("never", "v");
        await h.Secrets.SetPolicyAsync("acme", "k", new SecretPolicy(RotateEveryDays: 30), "admin");

        h.Time.Advance(TimeSpan.FromDays(29));
        Assert.Empty(await h.Secrets.CheckRotationDueAsync());
        h.Time.Advance(TimeSpan.FromDays(1));
        Assert.Equal(["k"], (await h.Secrets.CheckRotationDueAsync()).Select(m => m.Path));
        Assert.Empty(await h.Secrets.CheckRotationDueAsync());

        // A restart remembers the announcement.
        h.Reopen();
        using var __ = h.Secrets.Events.Subscribe(e => due.Add(e));
        h.Time.Advance(TimeSpan.FromDays(1));
        Assert.Empty(await h.Secrets.CheckRotationDueAsync());
        Assert.Single(due);

        // Still not rotated a period later: announced again. Rotated: the period restarts.
        h.Time.Advance(TimeSpan.FromDays(29));
        Assert.Single(await h.Secrets.CheckRotationDueAsync());
        await h.Secrets.RotateAsync("acme", "k", "new"u8.ToArray(), null, "bot");
        h.Time.Advance(TimeSpan.FromDays(29));
        Assert.Empty(await h.Secrets.CheckRotationDueAsync());
    }

    [Fact]
    public async Task Rotation_failures_are_kept_in_metadata()
    {
        using var h = new SecretHarness();
        await h.PutAsync("k", "v");
        await h.Secrets.ReportRotationFailureAsync("acme", "k", "token endpoint 503", "bot");
        var meta = h.Secrets.GetMetadata("acme", "k");
        Assert.Equal("token endpoint 503", meta.LastRotationFailure);
        Assert.Equal(h.Time.GetUtcNow().ToUnixTimeMilliseconds(), meta.LastRotationFailureAtMs);
        await TestData.ThrowsWayangAsync(ErrorCode.SecretNotFound, () => h.Secrets.ReportRotationFailureAsync("acme", "nope", "x", "bot"));
    }

    [Fact]
    public async Task References_resolve_and_errors_name_the_reference()
    {
        using var h = new SecretHarness();
        await h.PutAsync("db/password", "s3cret");
        Assert.True(SecretStore.TryParseReference("secret://db/password", out var path));
        Assert.Equal("db/password", path);
        Assert.False(SecretStore.TryParseReference("secret://", out _));
        Assert.False(SecretStore.TryParseReference("vault://db/password", out _));
        Assert.False(SecretStore.TryParseReference("secret://a/../b", out _));

        Assert.Equal("s3cret"u8.ToArray(), (await h.Secrets.ResolveAsync("acme", "secret://db/password")).Value);
        var missing = await TestData.ThrowsWayangAsync(ErrorCode.SecretNotFound, () => h.Secrets.ResolveAsync("acme", "secret://db/other"));
        Assert.Contains("secret://db/other", missing.Message, StringComparison.Ordinal);
        var invalid = await TestData.ThrowsWayangAsync(ErrorCode.SecretInvalid, () => h.Secrets.ResolveAsync("acme", "db/password"));
        Assert.Contains("db/password", invalid.Message, StringComparison.Ordinal);
        await TestData.ThrowsWayangAsync(ErrorCode.SecretNotFound, () => h.Secrets.ResolveAsync("globex", "secret://db/password"));
    }

    private sealed class MetadataComparer : IEqualityComparer<SecretMetadata>
    {
        public bool Equals(SecretMetadata? x, SecretMetadata? y) =>
            x is not null && y is not null && x with { Versions = [] } == y with { Versions = [] } && x.Versions.SequenceEqual(y.Versions);

        public int GetHashCode(SecretMetadata obj) => obj.Path.GetHashCode(StringComparison.Ordinal);
    }
}
