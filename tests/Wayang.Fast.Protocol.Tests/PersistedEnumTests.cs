using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Protocol.Tests;

// Wire enums are append-only. These lists are written out by hand on purpose: renumbering or removing a member fails
// here, and adding one fails until it is appended to the list (and to the spec), which is the review point.
public class PersistedEnumTests
{
    private static void AssertExactly<TEnum>(params (string Name, long Value)[] expected) where TEnum : struct, Enum
    {
        var actual = Enum.GetValues<TEnum>().Select(v => (Name: v.ToString(), Value: Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture))).ToArray();
        Assert.Equal(expected.OrderBy(e => e.Value), actual.OrderBy(e => e.Value));
    }

    [Fact]
    public void FrameType_values_are_frozen() => AssertExactly<FrameType>(
        ("Hello", 1), ("Welcome", 2), ("Request", 3), ("Response", 4), ("Error", 5), ("Stream", 6), ("End", 7),
        ("Credit", 8), ("Cancel", 9), ("Ping", 10), ("Pong", 11), ("GoAway", 12));

    [Fact]
    public void FrameType_is_one_byte_and_MaxDefined_is_the_last_member()
    {
        Assert.Equal(typeof(byte), Enum.GetUnderlyingType(typeof(FrameType)));
        Assert.Equal(FrameTypes.MaxDefined, (byte)Enum.GetValues<FrameType>().Max());
        for (int b = 0; b <= 255; b++)
            Assert.Equal(Enum.IsDefined((FrameType)b), FrameTypes.IsDefined((byte)b));
    }

    [Fact]
    public void FrameFlags_define_nothing_in_v1() => AssertExactly<FrameFlags>(("None", 0));

    [Fact]
    public void Opcode_values_are_frozen()
    {
        Assert.Equal(typeof(ushort), Enum.GetUnderlyingType(typeof(Opcode)));
        AssertExactly<Opcode>(
            ("None", 0x0000), ("Ping", 0x0001), ("Tick", 0x0002),
            ("TenantCreate", 0x0101), ("TenantList", 0x0102), ("KeyCreate", 0x0103), ("KeyList", 0x0104), ("KeyRevoke", 0x0105),
            ("RoleList", 0x0106), ("RolePut", 0x0107), ("RoleDelete", 0x0108), ("BindingList", 0x0109), ("BindingGrant", 0x010A), ("BindingRevoke", 0x010B),
            ("AuditQuery", 0x0110), ("AuditVerify", 0x0111), ("AuditHead", 0x0112),
            ("DefinitionValidate", 0x0120), ("DefinitionCreate", 0x0121), ("DefinitionTransition", 0x0122), ("DefinitionList", 0x0123), ("DefinitionGet", 0x0124),
            ("SecretPut", 0x0130), ("SecretGet", 0x0131), ("SecretList", 0x0132), ("SecretHistory", 0x0133), ("SecretRotate", 0x0134), ("SecretDisable", 0x0135),
            ("SecretDestroy", 0x0136), ("SecretPolicySet", 0x0137), ("SecretWatch", 0x0138), ("SecretRotationReport", 0x0139), ("MasterKeyRotate", 0x013A),
            ("PluginUpload", 0x0140), ("PluginList", 0x0141), ("PluginShow", 0x0142), ("PluginEnable", 0x0143), ("PluginDisable", 0x0144),
            ("PluginConfigure", 0x0145), ("TrustKeyAdd", 0x0146), ("TrustKeyList", 0x0147), ("TrustKeyRevoke", 0x0148), ("PluginPolicySet", 0x0149),
            ("WorkflowRegister", 0x0201), ("WorkflowGet", 0x0202), ("WorkflowList", 0x0203),
            ("RunSubmit", 0x0210), ("RunGet", 0x0211), ("RunList", 0x0212), ("RunCancel", 0x0213), ("RunSuspend", 0x0214),
            ("RunResume", 0x0215), ("RunSignal", 0x0216),
            ("ExecutorRegister", 0x0220), ("ExecutorSetSlots", 0x0221), ("ExecutorHeartbeat", 0x0222), ("TaskResult", 0x0223),
            ("QueueStats", 0x0230), ("DlqList", 0x0240), ("DlqShow", 0x0241), ("DlqReplay", 0x0242), ("DlqDiscard", 0x0243),
            ("TenantScheduleSet", 0x0250), ("TenantScheduleList", 0x0251),
            ("InferenceChat", 0x0301), ("InferenceChatStream", 0x0302), ("InferenceEmbed", 0x0303), ("InferenceModelList", 0x0304),
            ("InferenceProviderList", 0x0305), ("FallbackPolicySet", 0x0306), ("FallbackPolicyGet", 0x0307), ("FallbackPolicyDelete", 0x0308));
    }

    [Fact]
    public void ErrorCode_values_are_frozen() => AssertExactly<ErrorCode>(
        ("None", 0),
        ("Internal", 1), ("InvalidArgument", 2), ("Timeout", 3), ("Unavailable", 4), ("NotFound", 5),
        ("FrameTooLarge", 1001), ("FrameTruncated", 1002), ("UnknownFrameType", 1003), ("UnknownOpcode", 1004),
        ("BadBody", 1005), ("HandshakeRequired", 1006), ("UnsupportedVersion", 1007), ("BadHeader", 1008),
        ("DuplicateStream", 1009), ("TooManyInFlight", 1010), ("TooManyConnections", 1011), ("IdleTimeout", 1012),
        ("CreditOverflow", 1013), ("ShuttingDown", 1014), ("Cancelled", 1015), ("AlreadyAuthenticated", 1016),
        ("SlowConsumer", 1017),
        ("Unauthenticated", 2001), ("KeyRevoked", 2002), ("PermissionDenied", 2003), ("TenantNotFound", 2004),
        ("TenantExists", 2005), ("KeyNotFound", 2006),
        ("RoleNotFound", 2007), ("RoleBuiltIn", 2008), ("RoleInUse", 2009), ("AgentInvalid", 2010), ("AgentNotFound", 2011),
        ("DefinitionStateConflict", 2012), ("DefinitionInUse", 2013),
        ("SecretNotFound", 2014), ("SecretVersionConflict", 2015), ("SecretInvalid", 2016), ("SecretVersionUnavailable", 2017),
        ("SecretIntegrity", 2018), ("KmsUnavailable", 2019), ("PluginRejected", 2020), ("PluginNotFound", 2021),
        ("TrustKeyNotFound", 2022), ("PluginConfigInvalid", 2023),
        ("WorkflowInvalid", 3001), ("WorkflowNotFound", 3002), ("RunNotFound", 3003), ("RunStateConflict", 3004),
        ("QueueFull", 3005), ("IdempotencyKeyConflict", 3006), ("TaskTokenInvalid", 3007), ("TaskTokenExpired", 3008),
        ("AttemptSuperseded", 3009), ("ExecutorExists", 3010), ("ExecutorNotRegistered", 3011), ("AgentUnavailable", 3012),
        ("DeadLetterNotFound", 3013), ("RunInputInvalid", 3014), ("RunStuck", 3015), ("TaskTimeout", 3016), ("TaskFailed", 3017),
        ("DeadlineExceeded", 3018), ("TenantQueueLimit", 3019), ("TenantRateLimited", 3020),
        ("WorkflowNotPublished", 3021),
        ("InferenceRateLimited", 4001), ("ContextLengthExceeded", 4002), ("ContentFiltered", 4003), ("ProviderAuthFailed", 4004), ("ProviderPermissionDenied", 4005), ("ModelNotFound", 4006), ("InferenceTimeout", 4007), ("ProviderUnavailable", 4008), ("ProviderBadResponse", 4009), ("StreamBroken", 4010), ("AllFallbacksFailed", 4011), ("InferenceRequestInvalid", 4012), ("ProviderNotFound", 4013), ("FallbackPolicyInvalid", 4014),
        ("StorageFormatTooNew", 5001), ("StorageCorrupt", 5002), ("StorageIo", 5003), ("StorageLocked", 5004),
        ("ConnectionClosed", 6001), ("ClientTimeout", 6002), ("NotConnected", 6003));

    [Fact]
    public void Wire_constants_are_frozen()
    {
        Assert.Equal(16, FrameHeader.Size);
        Assert.Equal(1, FrameHeader.CurrentVersion);
        Assert.Equal(1, WireOptions.ProtocolVersion);
        Assert.Equal(1024 * 1024, WireOptions.DefaultMaxFrameBytes);
        Assert.Equal(7420, WireOptions.DefaultPort);
    }
}
