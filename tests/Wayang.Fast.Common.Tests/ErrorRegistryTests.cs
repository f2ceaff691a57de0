using System.Text.RegularExpressions;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Common.Tests;

public partial class ErrorRegistryTests
{
    [GeneratedRegex("^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")]
    private static partial Regex UpperSnake();

    private static IEnumerable<ErrorCode> Codes => Enum.GetValues<ErrorCode>().Where(c => c != ErrorCode.None);

    [Fact]
    public void Every_code_has_exactly_one_entry()
    {
        Assert.Equal(Codes.Order(), ErrorRegistry.All.Select(e => e.Code).Order());
        Assert.DoesNotContain(ErrorRegistry.All, e => e.Code == ErrorCode.None);
    }

    [Fact]
    public void Names_are_unique_upper_snake_and_match_the_member_name()
    {
        Assert.Equal(ErrorRegistry.All.Count, ErrorRegistry.All.Select(e => e.Name).Distinct(StringComparer.Ordinal).Count());
        foreach (var e in ErrorRegistry.All)
        {
            Assert.Matches(UpperSnake(), e.Name);
            // FrameTooLarge -> FRAME_TOO_LARGE: the name is derivable from the member, so the two never drift apart.
            var expected = Regex.Replace(e.Code.ToString(), "(?<=[a-z0-9])([A-Z])", "_$1").ToUpperInvariant();
            Assert.Equal(expected, e.Name);
        }
    }

    [Fact]
    public void Every_entry_has_a_default_message()
    {
        Assert.All(ErrorRegistry.All, e => Assert.False(string.IsNullOrWhiteSpace(e.DefaultMessage)));
    }

    [Fact]
    public void Codes_sit_in_their_documented_ranges()
    {
        foreach (var code in Codes)
            Assert.Contains((int)code / 1000, new[] { 0, 1, 2, 3, 4, 5, 6 });
    }

    [Fact]
    public void Lookup_by_code_and_by_name_agree()
    {
        foreach (var e in ErrorRegistry.All)
        {
            Assert.Same(e, ErrorRegistry.Get(e.Code));
            Assert.True(ErrorRegistry.TryGetByName(e.Name, out var byName));
            Assert.Same(e, byName);
            Assert.Equal(e.Name, ErrorRegistry.NameOf(e.Code));
        }
        Assert.False(ErrorRegistry.TryGetByName("frame_too_large", out _)); // names are case-sensitive
        Assert.False(ErrorRegistry.TryGetByName("NO_SUCH_ERROR", out _));
    }

    [Fact]
    public void Unknown_code_gets_a_synthetic_non_retryable_entry()
    {
        var info = ErrorRegistry.Get((ErrorCode)4242);
        Assert.Equal((ErrorCode)4242, info.Code);
        Assert.Equal("UNKNOWN_4242", info.Name);
        Assert.False(info.Retryable);
    }

    [Theory]
    [InlineData(ErrorCode.Timeout, true)]
    [InlineData(ErrorCode.Unavailable, true)]
    [InlineData(ErrorCode.TooManyInFlight, true)]
    [InlineData(ErrorCode.ShuttingDown, true)]
    [InlineData(ErrorCode.ConnectionClosed, true)]
    [InlineData(ErrorCode.InvalidArgument, false)]
    [InlineData(ErrorCode.PermissionDenied, false)]
    [InlineData(ErrorCode.FrameTooLarge, false)]
    [InlineData(ErrorCode.Cancelled, false)]
    public void Retryable_flags_of_key_codes(ErrorCode code, bool retryable) =>
        Assert.Equal(retryable, ErrorRegistry.Get(code).Retryable);
}
