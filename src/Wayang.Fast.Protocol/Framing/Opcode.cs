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

    // Control: secrets
    SecretPut = 0x0130,
    SecretGet = 0x0131,
    SecretList = 0x0132,
    SecretHistory = 0x0133,
    SecretRotate = 0x0134,
    SecretDisable = 0x0135,
    SecretDestroy = 0x0136,
    SecretPolicySet = 0x0137,
    SecretWatch = 0x0138,
    SecretRotationReport = 0x0139,
    MasterKeyRotate = 0x013A,

    // Control: plugins and their trust stores
    PluginUpload = 0x0140,
    PluginList = 0x0141,
    PluginShow = 0x0142,
    PluginEnable = 0x0143,
    PluginDisable = 0x0144,
    PluginConfigure = 0x0145,
    TrustKeyAdd = 0x0146,
    TrustKeyList = 0x0147,
    TrustKeyRevoke = 0x0148,
    PluginPolicySet = 0x0149,

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

    // Inference (Gollek)
    InferenceChat = 0x0301,
    InferenceChatStream = 0x0302,
    InferenceEmbed = 0x0303,
    InferenceModelList = 0x0304,
    InferenceProviderList = 0x0305,
    FallbackPolicySet = 0x0306,
    FallbackPolicyGet = 0x0307,
    FallbackPolicyDelete = 0x0308,
}
