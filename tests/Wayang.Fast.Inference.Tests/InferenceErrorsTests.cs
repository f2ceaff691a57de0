using System.Net;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Providers;

namespace Wayang.Fast.Inference.Tests;

public sealed class InferenceErrorsTests
{
    [Theory]
    [InlineData(429, "", ErrorCode.InferenceRateLimited)]
    [InlineData(401, "", ErrorCode.ProviderAuthFailed)]
    [InlineData(403, "", ErrorCode.ProviderPermissionDenied)]
    [InlineData(403, "blocked by the content_filter", ErrorCode.ContentFiltered)]
    [InlineData(404, "", ErrorCode.ModelNotFound)]
    [InlineData(408, "", ErrorCode.InferenceTimeout)]
    [InlineData(504, "", ErrorCode.InferenceTimeout)]
    [InlineData(400, "{\"error\":{\"code\":\"context_length_exceeded\"}}", ErrorCode.ContextLengthExceeded)]
    [InlineData(400, "prompt is too long: 9000 tokens > 8192 maximum", ErrorCode.ContextLengthExceeded)]
    [InlineData(400, "{\"error\":{\"code\":\"content_policy_violation\"}}", ErrorCode.ContentFiltered)]
    [InlineData(400, "unknown parameter 'foo'", ErrorCode.InferenceRequestInvalid)]
    [InlineData(500, "", ErrorCode.ProviderUnavailable)]
    [InlineData(503, "", ErrorCode.ProviderUnavailable)]
    [InlineData(529, "", ErrorCode.ProviderUnavailable)]
    public void Statuses_and_bodies_map_to_registry_codes(int status, string body, ErrorCode expected)
    {
        var ex = InferenceErrors.FromHttpStatus("p1", (HttpStatusCode)status, body);
        Assert.Equal(expected, ex.Code);
        Assert.Equal("p1", ex.Error.Details["provider"]);
        Assert.Equal(status.ToString(System.Globalization.CultureInfo.InvariantCulture), ex.Error.Details["status"]);
    }

    [Fact]
    public void A_code_the_adapter_recognised_wins_over_the_status()
    {
        var ex = InferenceErrors.FromHttpStatus("p1", HttpStatusCode.BadRequest, "{}", recognised: ErrorCode.ContentFiltered, providerMessage: "nope");
        Assert.Equal(ErrorCode.ContentFiltered, ex.Code);
        Assert.Contains("nope", ex.Error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Retry_after_is_read_as_seconds_as_a_date_and_as_retry_after_ms()
    {
        using var seconds = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        seconds.Headers.TryAddWithoutValidation("Retry-After", "7");
        Assert.Equal(7000, InferenceErrors.FromHttpStatus("p", seconds.StatusCode, "", seconds.Headers).Error.RetryAfterMs);

        using var ms = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        ms.Headers.TryAddWithoutValidation("retry-after-ms", "250");
        ms.Headers.TryAddWithoutValidation("Retry-After", "7");
        Assert.Equal(250, InferenceErrors.RetryAfterMs(ms.Headers));

        using var date = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        date.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(DateTimeOffset.UtcNow.AddSeconds(30));
        Assert.InRange(InferenceErrors.RetryAfterMs(date.Headers), 20_000, 31_000);

        using var none = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        Assert.Equal(0, InferenceErrors.RetryAfterMs(none.Headers));
    }

    [Fact]
    public void Timeouts_name_which_one_passed()
    {
        var ex = InferenceErrors.Timeout("p", "first_token", TimeSpan.FromMilliseconds(1500));
        Assert.Equal((ErrorCode.InferenceTimeout, "first_token"), (ex.Code, ex.Error.Details["timeout"]));
        Assert.True(ex.Retryable);
    }
}
