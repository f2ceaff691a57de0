using MessagePack;

namespace Wayang.Fast.Protocol.Messages;

[MessagePackObject]
public sealed class TenantCreateRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string DisplayName { get; set; } = "";
}

[MessagePackObject]
public sealed class TenantInfoDto
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string DisplayName { get; set; } = "";
    [Key(2)] public long CreatedAtMs { get; set; }
}

[MessagePackObject]
public sealed class TenantListResponse
{
    [Key(0)] public TenantInfoDto[] Tenants { get; set; } = [];
}

[MessagePackObject]
public sealed class KeyCreateRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string Name { get; set; } = "";
    [Key(2)] public string[] Roles { get; set; } = [];
}

[MessagePackObject]
public sealed class ApiKeyInfoDto
{
    [Key(0)] public string KeyId { get; set; } = "";
    [Key(1)] public string TenantId { get; set; } = "";
    [Key(2)] public string Name { get; set; } = "";
    [Key(3)] public string[] Roles { get; set; } = [];
    [Key(4)] public long CreatedAtMs { get; set; }
    [Key(5)] public bool Revoked { get; set; }
    [Key(6)] public long RevokedAtMs { get; set; }
}

[MessagePackObject]
public sealed class KeyCreateResponse
{
    // The full key (shown once; the server keeps only its hash).
    [Key(0)] public string Secret { get; set; } = "";
    [Key(1)] public ApiKeyInfoDto Key { get; set; } = new();
}

[MessagePackObject]
public sealed class KeyListRequest
{
    // Empty: the caller's own tenant.
    [Key(0)] public string TenantId { get; set; } = "";
}

[MessagePackObject]
public sealed class KeyListResponse
{
    [Key(0)] public ApiKeyInfoDto[] Keys { get; set; } = [];
}

[MessagePackObject]
public sealed class KeyRevokeRequest
{
    [Key(0)] public string KeyId { get; set; } = "";
}

[MessagePackObject]
public sealed class RoleListRequest
{
    // Empty: the caller's own tenant.
    [Key(0)] public string TenantId { get; set; } = "";
}

[MessagePackObject]
public sealed class RoleDto
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string Name { get; set; } = "";
    [Key(2)] public bool BuiltIn { get; set; }
    // Permission names (protocol-spec/permissions.md).
    [Key(3)] public string[] Permissions { get; set; } = [];
    [Key(4)] public long UpdatedAtMs { get; set; }
}

[MessagePackObject]
public sealed class RoleListResponse
{
    [Key(0)] public RoleDto[] Roles { get; set; } = [];
}

[MessagePackObject]
public sealed class RolePutRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string Name { get; set; } = "";
    [Key(2)] public string[] Permissions { get; set; } = [];
}

[MessagePackObject]
public sealed class RoleDeleteRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
    [Key(1)] public string Name { get; set; } = "";
}

[MessagePackObject]
public sealed class BindingListRequest
{
    [Key(0)] public string TenantId { get; set; } = "";
}

[MessagePackObject]
public sealed class BindingDto
{
    [Key(0)] public string KeyId { get; set; } = "";
    [Key(1)] public string KeyName { get; set; } = "";
    [Key(2)] public string[] Roles { get; set; } = [];
    [Key(3)] public bool Revoked { get; set; }
}

[MessagePackObject]
public sealed class BindingListResponse
{
    [Key(0)] public BindingDto[] Bindings { get; set; } = [];
}

// BindingGrant / BindingRevoke: one role of one key (a principal of the caller's tenant).
[MessagePackObject]
public sealed class BindingRequest
{
    [Key(0)] public string KeyId { get; set; } = "";
    [Key(1)] public string Role { get; set; } = "";
}
