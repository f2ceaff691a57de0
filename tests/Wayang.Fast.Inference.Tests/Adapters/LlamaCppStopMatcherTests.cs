using Wayang.Fast.Inference.Adapters.LlamaCpp;

namespace Wayang.Fast.Inference.Tests.Adapters;

public sealed class LlamaCppStopMatcherTests
{
    [Fact]
    public void A_stop_string_split_across_pieces_is_never_emitted()
    {
        var m = new StopMatcher(["END"]);
        Assert.Equal("abc", m.Push("abc"));
        Assert.Equal("x", m.Push("xE"));
        Assert.Equal("", m.Push("N"));
        Assert.Equal("", m.Push("Dtail"));
        Assert.True(m.Stopped);
        Assert.Equal("", m.Flush());
    }

    [Fact]
    public void Held_text_that_did_not_become_a_stop_is_released()
    {
        var m = new StopMatcher(["END", "##"]);
        Assert.Equal("a", m.Push("aEN"));
        Assert.Equal("ENx", m.Push("x#"));
        Assert.Equal("#y", m.Push("y"));
        Assert.Equal("", m.Push("E"));
        Assert.Equal("E", m.Flush());
        Assert.False(m.Stopped);
    }

    [Fact]
    public void The_earliest_stop_wins_and_no_stops_pass_everything()
    {
        var m = new StopMatcher(["cd", "b"]);
        Assert.Equal("a", m.Push("abcd"));
        Assert.True(m.Stopped);
        var none = new StopMatcher([]);
        Assert.Equal("END", none.Push("END"));
        Assert.Equal("", none.Flush());
    }
}
