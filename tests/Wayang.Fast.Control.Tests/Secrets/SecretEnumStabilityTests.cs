using Wayang.Fast.Control.Secrets;

namespace Wayang.Fast.Control.Tests.Secrets;

// Persisted and wire values: a change here breaks stored records and clients. Append, never renumber.
public sealed class SecretEnumStabilityTests
{
    [Fact]
    public void Version_states_are_frozen() => Assert.Equal(
        [("Active", 0), ("Disabled", 1), ("Destroyed", 2), ("Pruned", 3)],
        Enum.GetValues<SecretVersionState>().Select(v => (v.ToString(), (int)v)));

    [Fact]
    public void Event_kinds_are_frozen() => Assert.Equal(
        [("Written", 0), ("Rotated", 1), ("VersionDisabled", 2), ("VersionEnabled", 3), ("Destroyed", 4), ("RotationDue", 5), ("RotationFailed", 6), ("PolicyChanged", 7)],
        Enum.GetValues<SecretEventKind>().Select(v => (v.ToString(), (int)v)));
}
