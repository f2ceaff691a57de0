using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Dispatch;

namespace Wayang.Fast.Execution.Engine;

// Per-tenant scheduling settings: the fair-share weight and the limits. Stored under "sched/<tenant>" (one record per
// tenant, read back at start), applied to the dispatcher (weight, concurrency) and checked on submission (queued
// tasks, submission rate).
public sealed partial class ExecutionEngine
{
    private const string SchedulePrefix = "sched/";
    // Deadline misses per (tenant, priority), the one count: /metrics reads it, and it is kept under
    // "misses/<tenant>/<priority byte>" (8 bytes, little endian) so it goes on across a restart. Written after each
    // miss without waiting: a crash can lose the last group commit's.
    private const string MissPrefix = "misses/";
    private readonly ConcurrentDictionary<(string TenantId, SlaPriority Priority), long> _missCounts = new();
    private readonly ConcurrentDictionary<string, TenantLimiter> _limiters = new(StringComparer.Ordinal);

    public IReadOnlyList<TenantSchedule> GetTenantSchedules(string? tenantId = null) =>
        [.. _limiters.Values.Select(l => l.Schedule).Where(s => tenantId is null || s.TenantId == tenantId).OrderBy(s => s.TenantId, StringComparer.Ordinal)];

    // Durable before it returns; applies to the next decisions (queued tasks are not reordered retroactively).
    public async ValueTask<TenantSchedule> SetTenantScheduleAsync(TenantSchedule schedule, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(schedule);
        Validate(schedule);
        var bytes = JsonSerializer.SerializeToUtf8Bytes(schedule, ExecutionJsonContext.Default.TenantSchedule);
        await _store.PutAsync(Encoding.UTF8.GetBytes(SchedulePrefix + schedule.TenantId), bytes, cancellationToken).ConfigureAwait(false);
        Apply(schedule);
        return schedule;
    }

    private void LoadTenantSchedules()
    {
        foreach (var (_, value) in _store.ScanPrefix(Encoding.UTF8.GetBytes(SchedulePrefix)))
        {
            var schedule = JsonSerializer.Deserialize(value, ExecutionJsonContext.Default.TenantSchedule);
            if (schedule is not null)
                Apply(schedule);
        }
    }

    // Called under the dispatcher's lock: count, and write off it.
    private void OnDeadlineMissCounted(string tenantId, SlaPriority priority)
    {
        _missCounts.AddOrUpdate((tenantId, priority), 1, static (_, count) => count + 1);
        ThreadPool.UnsafeQueueUserWorkItem(static s => _ = s.Engine.WriteMissesAsync(s.Key), (Engine: this, Key: (tenantId, priority)), preferLocal: false);
    }

    private IReadOnlyList<(string TenantId, SlaPriority Priority, long Misses)> DeadlineMisses() =>
        [.. _missCounts.Select(static kv => (kv.Key.TenantId, kv.Key.Priority, kv.Value))];

    private async Task WriteMissesAsync((string TenantId, SlaPriority Priority) key)
    {
        // The latest count, whichever write runs last: the stored value never goes back.
        var value = new byte[sizeof(long)];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(value, _missCounts.GetValueOrDefault(key));
        try
        {
            await _store.PutAsync(Encoding.UTF8.GetBytes($"{MissPrefix}{key.TenantId}/{(byte)key.Priority}"), value).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ObjectDisposedException or WayangException)
        {
            // Shutting down, or the store failed (the engine reports that elsewhere): the count is best effort.
        }
    }

    private void LoadDeadlineMisses()
    {
        foreach (var (key, value) in _store.ScanPrefix(Encoding.UTF8.GetBytes(MissPrefix)))
        {
            var text = Encoding.UTF8.GetString(key.AsSpan(MissPrefix.Length));
            int slash = text.LastIndexOf('/');
            if (slash <= 0 || value.Length != sizeof(long) || !byte.TryParse(text.AsSpan(slash + 1), out var priority))
                continue;
            var tenant = text[..slash];
            long count = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(value);
            _missCounts[(tenant, (SlaPriority)priority)] = count;
        }
    }

    private void Apply(TenantSchedule schedule)
    {
        _dispatcher.SetTenantSchedule(schedule.TenantId, schedule.Weight, schedule.MaxConcurrent);
        _limiters.AddOrUpdate(schedule.TenantId, static (_, s) => new TenantLimiter(s), static (_, old, s) => old.With(s), schedule);
    }

    private static void Validate(TenantSchedule s)
    {
        if (string.IsNullOrEmpty(s.TenantId))
            throw new WayangException(ErrorCode.InvalidArgument, "A schedule needs a tenant id.");
        if (s.Weight is < 1 or > TaskDispatcher.MaxWeight)
            throw new WayangException(ErrorCode.InvalidArgument, $"Weight must be 1..{TaskDispatcher.MaxWeight}.");
        if (s.MaxConcurrent < 0 || s.MaxQueued < 0 || s.MaxSubmitsPerSecond < 0)
            throw new WayangException(ErrorCode.InvalidArgument, "Limits are 0 (none) or positive.");
    }

    // The submission checks of the tenant's limits (nothing to do for a tenant without a schedule).
    private void CheckTenantLimits(string tenantId)
    {
        if (!_limiters.TryGetValue(tenantId, out var limiter))
            return;
        var schedule = limiter.Schedule;
        if (schedule.MaxQueued > 0 && _dispatcher.TenantQueued(tenantId) >= schedule.MaxQueued)
        {
            throw new WayangException(new WayangError(ErrorCode.TenantQueueLimit,
                $"Tenant '{tenantId}' has {schedule.MaxQueued} tasks queued, its limit.", retryAfterMs: _options.QueueFullRetryAfterMs));
        }
        if (schedule.MaxSubmitsPerSecond > 0 && !limiter.TryTake(NowMs, out var waitMs))
        {
            throw new WayangException(new WayangError(ErrorCode.TenantRateLimited,
                $"Tenant '{tenantId}' is limited to {schedule.MaxSubmitsPerSecond} submissions per second.", retryAfterMs: (int)Math.Max(1, waitMs)));
        }
    }

    // A token bucket per tenant: capacity one second's worth, refilled continuously.
    private sealed class TenantLimiter(TenantSchedule schedule)
    {
        private readonly Lock _gate = new();
        private double _tokens = schedule.MaxSubmitsPerSecond;
        private long _lastMs = -1;

        public TenantSchedule Schedule { get; private set; } = schedule;

        public TenantLimiter With(TenantSchedule schedule)
        {
            lock (_gate)
            {
                // A newly set limit starts with a full bucket; a changed one keeps what is left, capped.
                _tokens = Schedule.MaxSubmitsPerSecond == 0 ? schedule.MaxSubmitsPerSecond : Math.Min(_tokens, schedule.MaxSubmitsPerSecond);
                Schedule = schedule;
            }
            return this;
        }

        public bool TryTake(long nowMs, out long waitMs)
        {
            lock (_gate)
            {
                double rate = Schedule.MaxSubmitsPerSecond;
                if (_lastMs >= 0 && nowMs > _lastMs)
                    _tokens = Math.Min(rate, _tokens + ((nowMs - _lastMs) * rate / 1000.0));
                if (_lastMs < 0 || nowMs > _lastMs)
                    _lastMs = nowMs;
                if (_tokens >= 1)
                {
                    _tokens -= 1;
                    waitMs = 0;
                    return true;
                }
                waitMs = (long)Math.Ceiling((1 - _tokens) * 1000.0 / rate);
                return false;
            }
        }
    }
}

// A tenant's scheduling settings (0 = no limit): fair-share weight (1-1000), tasks leased at once, tasks queued
// (beyond it submissions get TENANT_QUEUE_LIMIT), submissions per second (beyond it TENANT_RATE_LIMITED).
public sealed record TenantSchedule(string TenantId, int Weight = 1, int MaxConcurrent = 0, int MaxQueued = 0, int MaxSubmitsPerSecond = 0);
