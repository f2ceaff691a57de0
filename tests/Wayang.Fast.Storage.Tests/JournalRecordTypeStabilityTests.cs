namespace Wayang.Fast.Storage.Tests;

// Journal record types are persisted: names and values are frozen. Add new members at the end with new values;
// never renumber, rename or remove one (old journals must still replay).
public sealed class JournalRecordTypeStabilityTests
{
    private static readonly (string Name, byte Value)[] Golden =
    [
        ("None", 0),
        ("Put", 1),
        ("Delete", 2),
        ("Checkpoint", 3),
        ("Audit", 4),
    ];

    [Fact]
    public void NamesAndValuesAreFrozen()
    {
        var actual = Enum.GetValues<JournalRecordType>().Select(v => (v.ToString(), (byte)v)).ToArray();
        Assert.Equal(Golden, actual);
    }

    [Fact]
    public void UnderlyingTypeIsOneByte() => Assert.Equal(typeof(byte), Enum.GetUnderlyingType(typeof(JournalRecordType)));

    [Fact]
    public void DurabilityModeValuesAreFrozen()
    {
        Assert.Equal(0, (int)DurabilityMode.Fsync);
        Assert.Equal(1, (int)DurabilityMode.Relaxed);
        Assert.Equal(2, Enum.GetValues<DurabilityMode>().Length);
    }
}
