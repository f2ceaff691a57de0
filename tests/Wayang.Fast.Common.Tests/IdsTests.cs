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

    // Rejection sampling keeps the 36 characters equally likely (a plain byte % 36 would make 0-3 about 14% likelier):
    // over a million characters each count stays within 4% of the mean (the bias would be 24 standard deviations).
    [Fact]
    public void NewId_characters_are_uniform_over_the_alphabet()
    {
        var counts = new int[128];
        for (int i = 0; i < 50_000; i++)
        {
            foreach (char c in Ids.NewId("", 20))
                counts[c]++;
        }
        const double mean = 50_000 * 20 / 36.0;
        foreach (char c in "0123456789abcdefghijklmnopqrstuvwxyz")
            Assert.InRange(counts[c], mean * 0.96, mean * 1.04);
        Assert.Equal(1_000_000, counts.Sum());
    }

    [Fact]
    public void NewId_refuses_an_empty_or_oversized_random_part()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Ids.NewId("x", 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Ids.NewId("x", 257));
    }

    [Fact]
    public void NewId_is_a_valid_name_when_the_prefix_is()
    {
        Assert.True(Ids.IsValidName(Ids.NewId("t-")));
    }
}
