using Microsoft.Extensions.Time.Testing;
using Wayang.Fast.Common.Audit;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Audit;
using Wayang.Fast.Storage;
using static Wayang.Fast.Control.Tests.AuditTestSupport;

namespace Wayang.Fast.Control.Tests;

public sealed class AuditLogTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));

    [Fact]
    public async Task An_empty_log_has_the_genesis_head_and_verifies()
    {
        using var dir = new TempDirectory("audit-tests");
        await using var log = AuditLog.Open(dir.Path, Options(dir.Path), _time);

        Assert.Equal(0, log.Head.Sequence);
        Assert.Equal(new byte[32], log.Head.Hash.ToArray());
        Assert.Empty(log.Query(new AuditQuery()).Records);
        var result = await log.VerifyAsync();
        Assert.True(result.Ok);
        Assert.Equal(0, result.RecordsChecked);
        Assert.Equal(new string('0', 64), result.HeadHashHex);
    }

    [Fact]
    public async Task Appends_get_gap_free_sequences_clock_times_and_a_hash_chain()
    {
        using var dir = new TempDirectory("audit-tests");
        await using var log = AuditLog.Open(dir.Path, Options(dir.Path), _time);

        var appended = new List<AuditRecord>();
        for (int i = 0; i < 5; i++)
        {
            appended.Add(await log.AppendAsync(Event(resource: "wf" + i) with { Details = new Dictionary<string, string> { ["z"] = "last", ["a"] = "first" } }));
            _time.Advance(TimeSpan.FromMilliseconds(10));
        }

        Assert.Equal([1L, 2, 3, 4, 5], appended.Select(r => r.Sequence));
        Assert.Equal(Enumerable.Range(0, 5).Select(i => 1_700_000_000_000L + 10 * i), appended.Select(r => r.TimeMs));
        AssertChained(appended);
        Assert.Equal(["a", "z"], appended[0].Details.Keys);
        Assert.Equal((5L, appended[^1].HashHex), (log.Head.Sequence, log.Head.HashHex));

        var result = await log.VerifyAsync();
        Assert.True(result.Ok, result.Reason);
        Assert.Equal(5, result.RecordsChecked);
        Assert.Null(result.FirstBrokenSequence);
        Assert.Equal((5L, appended[^1].HashHex), (result.HeadSequence, result.HeadHashHex));
    }

    [Fact]
    public async Task Query_filters_by_each_field_and_pages_by_sequence()
    {
        using var dir = new TempDirectory("audit-tests");
        await using var log = AuditLog.Open(dir.Path, Options(dir.Path), _time);
        string[] tenants = ["acme", "globex", "initech"];
        ushort[] opcodes = [0x0201, 0x0301, 0x0302];
        var all = new List<AuditRecord>();
        for (int i = 0; i < 60; i++)
        {
            all.Add(await log.AppendAsync(Event(tenants[i % 3], "key" + (i % 4), opcodes[i % 5 % 3], (AuditOutcome)(1 + i % 3), "res" + i)));
            _time.Advance(TimeSpan.FromMilliseconds(1));
        }
        long t0 = all[0].TimeMs;

        AssertQuery(log, all, new AuditQuery(), _ => true);
        AssertQuery(log, all, new AuditQuery { TenantId = "globex" }, r => r.TenantId == "globex");
        AssertQuery(log, all, new AuditQuery { PrincipalId = "key3" }, r => r.PrincipalId == "key3");
        AssertQuery(log, all, new AuditQuery { Opcode = 0x0301 }, r => r.Opcode == 0x0301);
        AssertQuery(log, all, new AuditQuery { Outcome = AuditOutcome.Denied }, r => r.Outcome == AuditOutcome.Denied);
        AssertQuery(log, all, new AuditQuery { FromMs = t0 + 10, ToMs = t0 + 20 }, r => r.TimeMs >= t0 + 10 && r.TimeMs < t0 + 20);
        AssertQuery(log, all, new AuditQuery { TenantId = "acme", Outcome = AuditOutcome.Allowed, AfterSequence = 20 },
            r => r.TenantId == "acme" && r.Outcome == AuditOutcome.Allowed && r.Sequence > 20);
        Assert.Empty(log.Query(new AuditQuery { TenantId = "nobody" }).Records);
        Assert.Empty(log.Query(new AuditQuery { PrincipalId = "nobody" }).Records);

        // Pages of 7 follow each other without overlap, and the last one says there is no more.
        var page = log.Query(new AuditQuery { Limit = 7 });
        Assert.Equal([1L, 2, 3, 4, 5, 6, 7], page.Records.Select(r => r.Sequence));
        Assert.Equal(7, page.NextAfterSequence);
        page = log.Query(new AuditQuery { Limit = 7, AfterSequence = 56 });
        Assert.Equal([57L, 58, 59, 60], page.Records.Select(r => r.Sequence));
        Assert.Null(page.NextAfterSequence);
        // Exactly a full last page: no next cursor, because nothing further matches.
        page = log.Query(new AuditQuery { Limit = 4, AfterSequence = 56 });
        Assert.Equal(4, page.Records.Count);
        Assert.Null(page.NextAfterSequence);
        Assert.Empty(log.Query(new AuditQuery { AfterSequence = 60 }).Records);
    }

    private static void AssertQuery(AuditLog log, List<AuditRecord> all, AuditQuery query, Func<AuditRecord, bool> expected)
    {
        var want = all.Where(expected).ToList();
        Assert.NotEmpty(want);
        foreach (int limit in new[] { 3, 100 })
        {
            var got = QueryAll(log, query with { Limit = limit });
            Assert.Equal(want.Select(r => r.Sequence), got.Select(r => r.Sequence));
            Assert.Equal(want.Select(r => r.HashHex), got.Select(r => r.HashHex));
            Assert.Equal(want.Select(r => r.Resource), got.Select(r => r.Resource));
        }
    }

    [Fact]
    public async Task The_limit_defaults_to_100_and_is_capped_at_1000()
    {
        using var dir = new TempDirectory("audit-tests");
        await using var log = AuditLog.Open(dir.Path, Options(dir.Path, DurabilityMode.Relaxed), _time);
        for (int i = 0; i < 1100; i++)
            await log.AppendAsync(Event(resource: "r" + i));

        var page = log.Query(new AuditQuery { Limit = 0 });
        Assert.Equal(100, page.Records.Count);
        Assert.Equal(100, page.NextAfterSequence);
        page = log.Query(new AuditQuery { Limit = 5000 });
        Assert.Equal(1000, page.Records.Count);
        Assert.Equal(1000, page.NextAfterSequence);
        Assert.Equal(Enumerable.Range(1, 1000).Select(i => (long)i), page.Records.Select(r => r.Sequence));
    }

    [Fact]
    public async Task Sequences_and_hashes_survive_a_reopen_and_new_appends_continue_the_chain()
    {
        using var dir = new TempDirectory("audit-tests");
        var options = Options(dir.Path);
        var appended = new List<AuditRecord>();
        await using (var log = AuditLog.Open(dir.Path, options, _time))
        {
            for (int i = 0; i < 30; i++)
                appended.Add(await log.AppendAsync(Event(i % 2 == 0 ? "acme" : "globex", resource: "before" + i)));
        }

        await using (var log = AuditLog.Open(dir.Path, options, _time))
        {
            Assert.Equal((30L, appended[^1].HashHex), (log.Head.Sequence, log.Head.HashHex));
            // Bodies now come from the journal, not from memory.
            var reloaded = QueryAll(log, new AuditQuery { Limit = 8 });
            Assert.Equal(appended.Select(r => (r.Sequence, r.TimeMs, r.TenantId, r.Resource, r.HashHex, r.PreviousHashHex)),
                reloaded.Select(r => (r.Sequence, r.TimeMs, r.TenantId, r.Resource, r.HashHex, r.PreviousHashHex)));
            Assert.Equal(15, QueryAll(log, new AuditQuery { TenantId = "globex" }).Count);

            for (int i = 0; i < 10; i++)
                appended.Add(await log.AppendAsync(Event(resource: "after" + i)));
            Assert.Equal(31, appended[30].Sequence);
            Assert.Equal(appended[29].Hash.ToArray(), appended[30].PreviousHash.ToArray());
        }

        await using (var log = AuditLog.Open(dir.Path, options, _time))
        {
            var all = QueryAll(log, new AuditQuery());
            AssertChained(all);
            Assert.Equal(appended.Select(r => r.HashHex), all.Select(r => r.HashHex));
            var result = await log.VerifyAsync();
            Assert.True(result.Ok, result.Reason);
            Assert.Equal(40, result.RecordsChecked);
            Assert.Equal(appended[^1].HashHex, result.HeadHashHex);
        }
    }

    [Fact]
    public async Task Concurrent_appends_from_many_tasks_give_a_gap_free_valid_chain()
    {
        using var dir = new TempDirectory("audit-tests");
        await using var log = AuditLog.Open(dir.Path, Options(dir.Path), _time);
        const int Writers = 16;
        const int PerWriter = 40;
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            await start.Task;
            var mine = new List<long>();
            for (int i = 0; i < PerWriter; i++)
                mine.Add((await log.AppendAsync(Event("t" + w, resource: $"w{w}-{i}"))).Sequence);
            return mine;
        })).ToArray();
        start.SetResult();
        var sequences = await Task.WhenAll(writers);

        // Each writer's appends got ascending sequences; together they are exactly 1..N.
        Assert.All(sequences, s => Assert.Equal(s.Order(), s));
        Assert.Equal(Enumerable.Range(1, Writers * PerWriter).Select(i => (long)i), sequences.SelectMany(s => s).Order());
        var all = QueryAll(log, new AuditQuery { Limit = 1000 });
        Assert.Equal(Writers * PerWriter, all.Count);
        AssertChained(all);
        var result = await log.VerifyAsync();
        Assert.True(result.Ok, result.Reason);
        Assert.Equal(Writers * PerWriter, result.RecordsChecked);
        Assert.Equal(log.Head.HashHex, result.HeadHashHex);
    }

    [Fact]
    public async Task Relaxed_appends_are_queryable_before_their_commit_and_verify_commits_them()
    {
        using var dir = new TempDirectory("audit-tests");
        var options = Options(dir.Path, DurabilityMode.Relaxed);
        await using (var log = AuditLog.Open(dir.Path, options, _time))
        {
            for (int i = 0; i < 5; i++)
                await log.AppendAsync(Event(resource: "relaxed" + i));
            // The commit interval is an hour: these bodies are still only in memory.
            Assert.Equal(["relaxed0", "relaxed1", "relaxed2", "relaxed3", "relaxed4"], log.Query(new AuditQuery()).Records.Select(r => r.Resource));
            var result = await log.VerifyAsync();
            Assert.True(result.Ok, result.Reason);
            Assert.Equal(5, result.RecordsChecked);
            await log.AppendAsync(Event(resource: "relaxed5"));
            Assert.Equal(6, log.Query(new AuditQuery()).Records.Count);
        }
        // A clean dispose commits the rest.
        await using (var log = AuditLog.Open(dir.Path, options, _time))
            Assert.Equal(6, log.Head.Sequence);
    }

    [Fact]
    public async Task Details_and_every_field_round_trip_through_the_journal()
    {
        using var dir = new TempDirectory("audit-tests");
        var options = Options(dir.Path);
        var e = new AuditEvent
        {
            TenantId = "acme",
            PrincipalId = "exec-9",
            PrincipalTenantId = "system",
            Opcode = 0xFFFE,
            Operation = "ApproveRun",
            Resource = "run:r1/approval:a2 ünïcødé",
            Outcome = AuditOutcome.Failed,
            Reason = "RUN_NOT_FOUND",
            ConnectionId = long.MaxValue,
            Details = new Dictionary<string, string> { ["b"] = "2", ["a"] = "", ["é"] = "x" },
        };
        AuditRecord appended;
        await using (var log = AuditLog.Open(dir.Path, options, _time))
            appended = await log.AppendAsync(e);
        await using (var log = AuditLog.Open(dir.Path, options, _time))
        {
            var read = Assert.Single(log.Query(new AuditQuery()).Records);
            Assert.Equal(
                (e.TenantId, e.PrincipalId, e.PrincipalTenantId, e.Opcode, e.Operation, e.Resource, e.Outcome, e.Reason, e.ConnectionId),
                (read.TenantId, read.PrincipalId, read.PrincipalTenantId, read.Opcode, read.Operation, read.Resource, read.Outcome, read.Reason, read.ConnectionId));
            Assert.Equal(["a", "b", "é"], read.Details.Keys);
            Assert.Equal(["", "2", "x"], read.Details.Values);
            Assert.Equal(appended.Details, read.Details);
            Assert.Equal(appended.HashHex, read.HashHex);
        }
    }

    [Fact]
    public async Task A_record_larger_than_a_journal_page_is_refused_without_using_a_sequence()
    {
        using var dir = new TempDirectory("audit-tests");
        await using var log = AuditLog.Open(dir.Path, Options(dir.Path), _time);
        var ex = await Assert.ThrowsAsync<WayangException>(() => log.AppendAsync(Event(resource: new string('x', 70_000))).AsTask());
        Assert.Equal(ErrorCode.InvalidArgument, ex.Code);
        Assert.Equal(1, (await log.AppendAsync(Event())).Sequence);
    }
}
