namespace Wayang.Fast.Protocol.Framing;

// The opcode registry (protocol-spec/opcodes.md). u16 on the wire, grouped by plane in the high byte:
// 0x00xx system, 0x01xx control (Wayang), 0x02xx execution (Gamelan), 0x03xx inference (Gollek).
// Explicit and append-only; frozen by a golden test.
public enum Opcode : ushort
{
    None = 0x0000,

    // System
    Ping = 0x0001,
    Tick = 0x0002,

    // Control: tenants and API keys
    TenantCreate = 0x0101,
    TenantList = 0x0102,
    KeyCreate = 0x0103,
    KeyList = 0x0104,
    KeyRevoke = 0x0105,

    // Control: roles and role bindings
    RoleList = 0x0106,
    RolePut = 0x0107,
    RoleDelete = 0x0108,
    BindingList = 0x0109,
    BindingGrant = 0x010A,
    BindingRevoke = 0x010B,

    // Control: audit log
    AuditQuery = 0x0110,
    AuditVerify = 0x0111,
    AuditHead = 0x0112,

    // Control: definitions (workflows and agents) and their lifecycle
    DefinitionValidate = 0x0120,
    DefinitionCreate = 0x0121,
    DefinitionTransition = 0x0122,
    DefinitionList = 0x0123,
    DefinitionGet = 0x0124,

    // Execution: workflows
    WorkflowRegister = 0x0201,
    WorkflowGet = 0x0202,
    WorkflowList = 0x0203,

    // Execution: runs
    RunSubmit = 0x0210,
    RunGet = 0x0211,
    RunList = 0x0212,
    RunCancel = 0x0213,
    RunSuspend = 0x0214,
    RunResume = 0x0215,
    RunSignal = 0x0216,

    // Execution: executors and tasks
    ExecutorRegister = 0x0220,
    ExecutorSetSlots = 0x0221,
    ExecutorHeartbeat = 0x0222,
    TaskResult = 0x0223,

    // Execution: queues and dead letters
    QueueStats = 0x0230,
    DlqList = 0x0240,
    DlqShow = 0x0241,
    DlqReplay = 0x0242,
    DlqDiscard = 0x0243,

    // Execution: scheduling (platform admin)
    TenantScheduleSet = 0x0250,
    TenantScheduleList = 0x0251,
}
