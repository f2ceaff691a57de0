using System.Globalization;
using System.Text.RegularExpressions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Rbac;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;
using Wayang.Fast.Server.Sessions;

namespace Wayang.Fast.Server.Tests;

// The documented RBAC tables (protocol-spec/permissions.md, opcodes.md) are the contract: the code must match them, and
// every opcode called as every role over a real socket must be allowed or denied exactly as they say.
public sealed partial class PermissionMatrixTests
{
    private static readonly string[] AllRoles = [.. Roles.All];

    [Fact]
    public void Built_in_roles_grant_exactly_the_documented_permissions()
    {
        var documented = DocumentedRoles();
        Assert.Equal(AllRoles.Order(StringComparer.Ordinal), documented.Keys.Order(StringComparer.Ordinal));
        foreach (var (role, permissions) in documented)
        {
            Assert.True(BuiltInRoles.TryGet(role, out var set));
            Assert.Equal(permissions.Order(StringComparer.Ordinal), set.Names().Order(StringComparer.Ordinal));
        }
    }

    [Fact]
    public void Every_opcode_needs_the_documented_permission()
    {
        var documented = DocumentedOpcodePermissions();
        foreach (var opcode in Enum.GetValues<Opcode>())
        {
            if (opcode == Opcode.None)
            {
                Assert.False(Authorization.IsKnown(opcode));
                continue;
            }
            Assert.True(documented.TryGetValue(opcode, out var name), $"{opcode} has no permission in opcodes.md");
            Assert.Equal(name, Permissions.NameOf(Authorization.Required(opcode)));
        }
    }

    [Fact]
    public void Permission_values_are_frozen()
    {
        Assert.Equal(
            [("Session", 0), ("TenantsManage", 1), ("SchedulesManage", 2), ("KeysManage", 3), ("RolesRead", 4), ("RolesManage", 5),
             ("DefinitionsRead", 6), ("DefinitionsWrite", 7), ("DefinitionsPublish", 8), ("RunsRead", 9), ("RunsSubmit", 10), ("RunsControl", 11),
             ("ExecutorRun", 12), ("QueuesRead", 13), ("DlqRead", 14), ("DlqManage", 15), ("AuditRead", 16), ("CrossTenant", 17),
             ("SecretsList", 18), ("SecretsRead", 19), ("SecretsWrite", 20), ("SecretsDestroy", 21), ("PluginsRead", 22), ("PluginsManage", 23),
             ("TrustManage", 24), ("MasterKeyRotate", 25), ("InferenceInvoke", 26), ("InferenceRead", 27), ("InferenceManage", 28)],
            Enum.GetValues<Permission>().Select(p => (p.ToString(), (int)p)));
    }

    [Fact]
    public async Task Every_opcode_as_every_role_is_allowed_or_denied_as_documented()
    {
        await using var h = await ExecutionHarness.StartAsync();
        var roles = DocumentedRoles();
        var required = DocumentedOpcodePermissions();
        foreach (var role in AllRoles)
        {
            await using var c = role == Roles.PlatformAdmin ? await h.ConnectAdminAsync() : await h.ConnectAsync(role);
            foreach (var opcode in Enum.GetValues<Opcode>())
            {
                if (opcode == Opcode.None)
                    continue;
                // 0xc1 is never valid MessagePack: an allowed call ends at decoding (BAD_BODY) or ignores the body,
                // so nothing in the server changes; a denied one never reaches the decoder.
                var frame = await c.CallBytesAsync(opcode, [0xc1]);
                bool allowed = roles[role].Contains(required[opcode]);
                if (allowed)
                    Assert.True(frame.ErrorCode != ErrorCode.PermissionDenied, $"{role} calling {opcode}: expected it allowed, got {frame}");
                else
                    Assert.True(frame.ErrorCode == ErrorCode.PermissionDenied, $"{role} calling {opcode}: expected PERMISSION_DENIED, got {frame}");
            }
        }
    }

    private static Dictionary<string, string[]> DocumentedRoles()
    {
        var text = File.ReadAllText(SpecPath("permissions.md"));
        var section = text[text.IndexOf("## Built-in roles", StringComparison.Ordinal)..];
        section = section[..section.IndexOf("\n## ", 3, StringComparison.Ordinal)];
        var result = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (Match m in RoleRow().Matches(section))
        {
            if (m.Groups[1].Value != "role")
                result[m.Groups[1].Value] = [.. m.Groups[2].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)];
        }
        return result;
    }

    private static Dictionary<Opcode, string> DocumentedOpcodePermissions()
    {
        var result = new Dictionary<Opcode, string>();
        foreach (Match m in OpcodeRow().Matches(File.ReadAllText(SpecPath("opcodes.md"))))
        {
            var opcode = (Opcode)ushort.Parse(m.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (opcode != Opcode.None)
                result[opcode] = m.Groups[2].Value.Trim();
        }
        return result;
    }

    private static string SpecPath(string file)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "protocol-spec", file);
            if (File.Exists(candidate))
                return candidate;
        }
        throw new FileNotFoundException(file);
    }

    [GeneratedRegex(@"^\| ([a-z][a-z-]*) \| ([a-z][a-z., -]*) \|$", RegexOptions.Multiline)]
    private static partial Regex RoleRow();

    // | 0x0101 | TenantCreate | control | unary | request | reply | permission |
    [GeneratedRegex(@"^\| 0x([0-9a-fA-F]{4}) \|(?:[^|\n]*\|){5} ([a-z.-]+) \|$", RegexOptions.Multiline)]
    private static partial Regex OpcodeRow();
}
