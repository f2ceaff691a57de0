using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Client.Execution;

// Wire DTOs -> SDK records. MessagePack nil arrives as null even where the DTO's type says otherwise, so every
// reference is defaulted here. JSON fields are UTF-8 bins: empty means "no value".
internal static class ExecutionMapping
{
    // Throws JsonException on a malformed document.
    public static JsonElement? Json(byte[]? utf8)
    {
        if (utf8 is null || utf8.Length == 0)
            return null;
        using var document = JsonDocument.Parse(utf8);
        return document.RootElement.Clone();
    }

    private static JsonElement? ServerJson(byte[]? utf8, string field)
    {
        try
        {
            return Json(utf8);
        }
        catch (JsonException e)
        {
            throw new WayangException(new WayangError(ErrorCode.BadBody, $"The server sent invalid JSON in {field}: {e.Message}"), e);
        }
    }

    public static byte[] Utf8(JsonElement? value) =>
        value is { ValueKind: not JsonValueKind.Undefined } e ? JsonSerializer.SerializeToUtf8Bytes(e) : [];

    public static byte[] Utf8(string? json) => string.IsNullOrEmpty(json) ? [] : System.Text.Encoding.UTF8.GetBytes(json);

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    private static DateTimeOffset Time(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    private static DateTimeOffset? OptionalTime(long ms) => ms > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;

    public static WorkflowInfo ToWorkflow(WorkflowInfoDto dto) =>
        new(dto.WorkflowId ?? "", dto.LatestVersion, dto.Versions ?? [], Time(dto.UpdatedAtMs));

    public static RunSummary ToSummary(RunSummaryDto dto) =>
        new(dto.RunId ?? "", dto.WorkflowId ?? "", dto.WorkflowVersion, (RunStatus)dto.Status, Time(dto.CreatedAtMs), Time(dto.UpdatedAtMs));

    public static AttemptInfo ToAttempt(AttemptDto dto) =>
        new(dto.Attempt, NullIfEmpty(dto.ExecutorId), OptionalTime(dto.StartedAtMs), OptionalTime(dto.EndedAtMs), dto.Succeeded,
            NullIfEmpty(dto.ErrorCode), NullIfEmpty(dto.ErrorMessage));

    public static NodeInfo ToNode(NodeStateDto dto) =>
        new(dto.NodeId ?? "", (NodeStatus)dto.Status, dto.Attempt, ServerJson(dto.OutputJson, "a node output"),
            NullIfEmpty(dto.ErrorCode), NullIfEmpty(dto.ErrorMessage), [.. (dto.Attempts ?? []).Where(a => a is not null).Select(ToAttempt)]);

    public static RunEvent ToEvent(RunEventDto dto) =>
        new(dto.Seq, Time(dto.AtMs), (RunEventType)dto.Type, NullIfEmpty(dto.NodeId), dto.Attempt, NullIfEmpty(dto.Detail));

    public static RunInfo ToRun(RunDto dto) =>
        new(dto.RunId ?? "", dto.TenantId ?? "", dto.WorkflowId ?? "", dto.WorkflowVersion, (RunStatus)dto.Status,
            ServerJson(dto.InputJson, "the run input"), ServerJson(dto.OutputJson, "the run output"),
            NullIfEmpty(dto.ErrorCode), NullIfEmpty(dto.ErrorMessage),
            Time(dto.CreatedAtMs), Time(dto.UpdatedAtMs), OptionalTime(dto.FinishedAtMs), NullIfEmpty(dto.IdempotencyKey),
            [.. (dto.Nodes ?? []).Where(n => n is not null).Select(ToNode)],
            [.. (dto.Events ?? []).Where(e => e is not null).Select(ToEvent)]);

    public static DeadLetterInfo ToDeadLetter(DeadLetterDto dto) =>
        new(dto.Id ?? "", dto.TenantId ?? "", dto.RunId ?? "", dto.WorkflowId ?? "", dto.WorkflowVersion, dto.NodeId ?? "",
            NullIfEmpty(dto.ExecutorType), ServerJson(dto.InputJson, "a dead letter's input"), ServerJson(dto.ConfigJson, "a dead letter's config"),
            [.. (dto.Attempts ?? []).Where(a => a is not null).Select(ToAttempt)],
            NullIfEmpty(dto.LastErrorCode), NullIfEmpty(dto.LastErrorMessage), NullIfEmpty(dto.ExecutorId), Time(dto.DeadLetteredAtMs));

    public static DeadLetterReplayOutcome ToOutcome(ReplayOutcomeDto dto) =>
        new(dto.DeadLetterId ?? "", NullIfEmpty(dto.RunId), dto.Replayed,
            dto.ErrorCode == 0 ? null : new WayangError((ErrorCode)dto.ErrorCode, NullIfEmpty(dto.ErrorMessage)));

    public static QueueStats ToStats(QueueStatsResponse dto) =>
        new([.. (dto.Queues ?? []).Where(q => q is not null).Select(q => new QueueInfo(q.TenantId ?? "", q.ExecutorType ?? "", q.Depth, q.MaxDepth, q.Leased))],
            [.. (dto.Executors ?? []).Where(e => e is not null).Select(e => new ExecutorInfo(e.ExecutorId ?? "", e.TenantId ?? "", e.Shared,
                e.ExecutorTypes ?? [], e.Slots, e.InFlight, e.Credit, OptionalTime(e.LastHeartbeatMs)))],
            dto.RunsActive);

    public static DlqFilterDto ToFilter(DeadLetterFilter? filter) => filter is null ? new DlqFilterDto() : new DlqFilterDto
    {
        WorkflowId = filter.WorkflowId ?? "",
        NodeId = filter.NodeId ?? "",
        ErrorCode = filter.ErrorCode ?? "",
        FromMs = filter.From?.ToUnixTimeMilliseconds() ?? 0,
        ToMs = filter.To?.ToUnixTimeMilliseconds() ?? 0,
        Limit = filter.Limit,
    };
}
