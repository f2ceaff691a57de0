namespace Wayang.Fast.Control.Rbac;

// What a principal may do right now: its bound roles and their union of permissions, as one immutable snapshot.
// Every connection of a key shares the key's PrincipalGrant, and a binding or role change swaps the snapshot, so
// a change applies to live connections at their next request without any lock on the request path.
public sealed class PrincipalGrant
{
    private volatile GrantSnapshot _current;

    public PrincipalGrant(GrantSnapshot initial) => _current = initial;

    public GrantSnapshot Current => _current;

    internal void Set(GrantSnapshot snapshot) => _current = snapshot;
}

public sealed class GrantSnapshot(IReadOnlyList<string> roles, PermissionSet permissions)
{
    public static GrantSnapshot None { get; } = new([], PermissionSet.Empty);

    public IReadOnlyList<string> Roles { get; } = roles;
    public PermissionSet Permissions { get; } = permissions;
}
