using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Protocol.Tests;

public sealed class ErrorBodyMappingTests
{
    [Fact]
    public void Every_field_survives_the_round_trip()
    {
        var error = new WayangError(ErrorCode.TooManyInFlight, "slow down", retryAfterMs: 250, details: new Dictionary<string, string> { ["limit"] = "1024" });
        var back = ErrorBodyMapping.ToError(ErrorBodyMapping.ToBody(error));

        Assert.Equal((error.Code, error.Name, error.Message, error.Retryable, error.RetryAfterMs), (back.Code, back.Name, back.Message, back.Retryable, back.RetryAfterMs));
        Assert.Equal("1024", back.Details["limit"]);
    }

    [Fact]
    public void An_unknown_code_keeps_the_senders_name_in_details()
    {
        var back = ErrorBodyMapping.ToError(new ErrorBody { Code = 4999, Name = "FUTURE_THING", Message = "from a newer server", Retryable = true });

        Assert.Equal((ErrorCode)4999, back.Code);
        Assert.Equal("FUTURE_THING", back.Details["name"]);
        Assert.True(back.Retryable);
        Assert.Equal("from a newer server", back.Message);
    }

    [Fact]
    public void An_empty_message_falls_back_to_the_registry_default()
    {
        var back = ErrorBodyMapping.ToError(new ErrorBody { Code = (int)ErrorCode.KeyNotFound, Name = "KEY_NOT_FOUND" });
        Assert.Equal(ErrorRegistry.Get(ErrorCode.KeyNotFound).DefaultMessage, back.Message);
        Assert.Empty(back.Details);
    }
}
