using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Common.Tests;

public class WayangErrorTests
{
    [Fact]
    public void Defaults_come_from_the_registry()
    {
        var error = new WayangError(ErrorCode.TooManyInFlight);
        Assert.Equal(ErrorCode.TooManyInFlight, error.Code);
        Assert.Equal("TOO_MANY_IN_FLIGHT", error.Name);
        Assert.Equal(ErrorRegistry.Get(ErrorCode.TooManyInFlight).DefaultMessage, error.Message);
        Assert.True(error.Retryable);
        Assert.Equal(0, error.RetryAfterMs);
        Assert.Empty(error.Details);
    }

    [Fact]
    public void Explicit_values_override_the_defaults()
    {
        var details = new Dictionary<string, string> { ["field"] = "tenantId" };
        var error = new WayangError(ErrorCode.InvalidArgument, "tenant id too long", retryAfterMs: 250, details: details, retryable: true);
        Assert.Equal("tenant id too long", error.Message);
        Assert.Equal("INVALID_ARGUMENT", error.Name);
        Assert.True(error.Retryable);
        Assert.Equal(250, error.RetryAfterMs);
        Assert.Equal("tenantId", error.Details["field"]);
    }

    [Fact]
    public void Unknown_code_is_carried_with_a_synthetic_name()
    {
        // A newer server may send a code this build does not know: it must survive, not throw.
        var error = new WayangError((ErrorCode)7777, "from the future", retryable: true);
        Assert.Equal((ErrorCode)7777, error.Code);
        Assert.Equal("UNKNOWN_7777", error.Name);
        Assert.True(error.Retryable);
    }

    [Fact]
    public void ToString_shows_name_code_and_message()
    {
        Assert.Equal("KEY_NOT_FOUND (2006): no such key", new WayangError(ErrorCode.KeyNotFound, "no such key").ToString());
    }

    [Fact]
    public void Exception_exposes_the_error()
    {
        var ex = new WayangException(ErrorCode.ShuttingDown);
        Assert.Equal(ErrorCode.ShuttingDown, ex.Code);
        Assert.True(ex.Retryable);
        Assert.Null(ex.RetryAfter);
        Assert.Equal(ex.Error.ToString(), ex.Message);

        var withDelay = new WayangException(new WayangError(ErrorCode.TooManyInFlight, retryAfterMs: 1500));
        Assert.Equal(TimeSpan.FromMilliseconds(1500), withDelay.RetryAfter);
    }

    [Fact]
    public void Exception_keeps_the_inner_exception()
    {
        var inner = new IOException("disk");
        var ex = new WayangException(new WayangError(ErrorCode.StorageIo), inner);
        Assert.Same(inner, ex.InnerException);
        Assert.Equal(ErrorCode.StorageIo, ex.Code);
    }

    [Fact]
    public void Standard_exception_constructors_map_to_Internal()
    {
        Assert.Equal(ErrorCode.Internal, new WayangException().Code);
        var withMessage = new WayangException("boom");
        Assert.Equal(ErrorCode.Internal, withMessage.Code);
        Assert.Equal("boom", withMessage.Error.Message);
        var withInner = new WayangException("boom", new InvalidOperationException());
        Assert.IsType<InvalidOperationException>(withInner.InnerException);
    }

    [Fact]
    public void ThrowHelper_throws_the_coded_exception()
    {
        var ex = Assert.Throws<WayangException>(() => ThrowHelper.ThrowWayang(ErrorCode.TenantExists, "acme"));
        Assert.Equal(ErrorCode.TenantExists, ex.Code);
        Assert.Equal("acme", ex.Error.Message);
        Assert.Throws<WayangException>(() => ThrowHelper.ThrowWayang<int>(ErrorCode.Internal));
        Assert.Equal("p", Assert.Throws<ArgumentException>(() => ThrowHelper.ThrowArgument("p", "bad")).ParamName);
        Assert.Throws<InvalidOperationException>(() => ThrowHelper.ThrowInvalidOperation("no"));
    }

    [Fact]
    public void Errors_with_equal_fields_are_equal_records()
    {
        Assert.Equal(new WayangError(ErrorCode.Timeout, "t"), new WayangError(ErrorCode.Timeout, "t"));
        Assert.NotEqual(new WayangError(ErrorCode.Timeout, "t"), new WayangError(ErrorCode.Timeout, "u"));
    }
}
