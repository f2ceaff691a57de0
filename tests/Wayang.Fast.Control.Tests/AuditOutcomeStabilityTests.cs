using Wayang.Fast.Common.Audit;
using Wayang.Fast.Control.Audit;

namespace Wayang.Fast.Control.Tests;

// Outcomes are persisted in every record: names and values are frozen. Add new members at the end.
public sealed class AuditOutcomeStabilityTests
{
    [Fact]
    public void NamesAndValuesAreFrozen()
    {
        (string, byte)[] golden = [("Unspecified", 0), ("Allowed", 1), ("Denied", 2), ("Failed", 3)];
        Assert.Equal(golden, Enum.GetValues<AuditOutcome>().Select(v => (v.ToString(), (byte)v)));
    }

    [Fact]
    public void UnderlyingTypeIsOneByte() => Assert.Equal(typeof(byte), Enum.GetUnderlyingType(typeof(AuditOutcome)));
}
