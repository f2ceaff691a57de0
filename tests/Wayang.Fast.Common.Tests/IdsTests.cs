namespace Wayang.Fast.Common.Tests;

public class IdsTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("0")]
    [InlineData("acme")]
    [InlineData("acme-corp_2")]
    [InlineData("9lives")]
    [InlineData("a-")]
    [InlineData("a_")]
    public void Valid_names(string name) => Assert.True(Ids.IsValidName(name));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("-acme")]
    [InlineData("_acme")]
    [InlineData("Acme")]
    [InlineData("acmE")]
    [InlineData("ac me")]
    [InlineData("acme.corp")]
    [InlineData("acme/corp")]
    [InlineData("café")]
    [InlineData("ａcme")] // full-width a: letters outside ASCII are refused
    [InlineData("acme\n")]
    public void Invalid_names(string? name) => Assert.False(Ids.IsValidName(name));

    [Fact]
    public void Length_limit_is_64()
    {
        Assert.True(Ids.IsValidName(new string('a', 64)));
        Assert.False(Ids.IsValidName(new string('a', 65)));
    }

    [Fact]
    public void NewId_has_the_prefix_and_the_requested_random_part()
    {
        var id = Ids.NewId("k_");
        Assert.StartsWith("k_", id, StringComparison.Ordinal);
        Assert.Equal(22, id.Length);
        Assert.All(id[2..], c => Assert.True(char.IsAsciiDigit(c) || char.IsAsciiLetterLower(c)));
        Assert.Equal(2 + 8, Ids.NewId("s_", 8).Length);
    }

    [Fact]
    public void NewId_does_not_repeat()
    {
        var ids = Enumerable.Range(0, 10_000).Select(_ => Ids.NewId("x")).ToHashSet();
        Assert.Equal(10_000, ids.Count);
    }

    [Fact]
    public void NewId_is_a_valid_name_when_the_prefix_is()
    {
        Assert.True(Ids.IsValidName(Ids.NewId("t-")));
    }
}
