using System.Runtime.CompilerServices;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Server.Metrics;

// Dense indexes for per-opcode metric arrays, so the hot path increments array slots instead of hashing.
// A new opcode adds a case and a name; unknown opcodes share the last slot.
internal static class OpcodeIndex
{
    public const int Other = 15;
    public const int Count = 16;

    public static readonly string[] Names =
    [
        "ping", "tick", "tenant_create", "tenant_list", "key_create", "key_list", "key_revoke",
        // Execution: the hot or durable operations get their own series; ExecutorRegister's "latency" is the stream's lifetime.
        "workflow_register", "run_submit", "run_get", "run_control", "task_result", "executor_register", "executor_control", "execution_other",
        "other",
    ];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Of(Opcode opcode) => opcode switch
    {
        Opcode.Ping => 0,
        Opcode.Tick => 1,
        Opcode.TenantCreate => 2,
        Opcode.TenantList => 3,
        Opcode.KeyCreate => 4,
        Opcode.KeyList => 5,
        Opcode.KeyRevoke => 6,
        Opcode.WorkflowRegister => 7,
        Opcode.RunSubmit => 8,
        Opcode.RunGet => 9,
        Opcode.RunCancel or Opcode.RunSuspend or Opcode.RunResume or Opcode.RunSignal => 10,
        Opcode.TaskResult => 11,
        Opcode.ExecutorRegister => 12,
        Opcode.ExecutorSetSlots or Opcode.ExecutorHeartbeat => 13,
        Opcode.WorkflowGet or Opcode.WorkflowList or Opcode.RunList or Opcode.QueueStats
            or Opcode.DlqList or Opcode.DlqShow or Opcode.DlqReplay or Opcode.DlqDiscard
            or Opcode.TenantScheduleSet or Opcode.TenantScheduleList => 14,
        _ => Other,
    };
}

internal static class FrameTypeNames
{
    // Indexed by the frame type byte (1..12); slot 0 unused.
    public const int Slots = 16;

    public static readonly string[] Names =
        ["none", "hello", "welcome", "request", "response", "error", "stream", "end", "credit", "cancel", "ping", "pong", "goaway", "t13", "t14", "t15"];
}
