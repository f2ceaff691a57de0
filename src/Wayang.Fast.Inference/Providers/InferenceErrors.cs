using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Inference.Providers;

// The one place where a provider's failure becomes a registry code. Adapters call FromHttpStatus with what their API
// returned (status, error body, headers) and may pass a code they recognised in the body first; FromException covers
// transport failures. Every error names its provider in Details ("provider", and "status" for HTTP answers).
public static class InferenceErrors
{
    public static WayangException Create(ErrorCode code, string provider, string message, long retryAfterMs = 0, int? status = null,
        IReadOnlyDictionary<string, string>? extra = null)
    {
        var details = new Dictionary<string, string>(StringComparer.Ordinal) { ["provider"] = provider };
        if (status is int s)
            details["status"] = s.ToString(CultureInfo.InvariantCulture);
        if (extra is not null)
        {
            foreach (var (k, v) in extra)
                details[k] = v;
        }
        return new WayangException(new WayangError(code, message, retryAfterMs, details));
    }

    // A timeout of the request; which: "connect", "first_token", "between_tokens" or "total" (Details.timeout).
    public static WayangException Timeout(string provider, string which, TimeSpan limit) =>
        Create(ErrorCode.InferenceTimeout, provider, $"Provider '{provider}': the {which.Replace('_', ' ')} timeout ({limit.TotalMilliseconds:0} ms) passed.",
            extra: new Dictionary<string, string> { ["timeout"] = which });

    // Maps an HTTP error answer. recognised: a code the adapter read from the provider's own error body (its error
    // type), which wins over the status; bodyText is searched for the common context-length and content-policy wording.
    public static WayangException FromHttpStatus(string provider, HttpStatusCode status, string? bodyText, System.Net.Http.Headers.HttpResponseHeaders? headers = null,
        ErrorCode recognised = ErrorCode.None, string? providerMessage = null)
    {
        int code = (int)status;
        string detail = Truncate(providerMessage ?? bodyText);
        string message = $"Provider '{provider}' answered HTTP {code}{(detail.Length > 0 ? ": " + detail : "")}";
        long retryAfter = headers is null ? 0 : RetryAfterMs(headers);
        var error = recognised != ErrorCode.None ? recognised : code switch
        {
            429 => ErrorCode.InferenceRateLimited,
            401 => ErrorCode.ProviderAuthFailed,
            403 => LooksLikeContentFilter(bodyText) ? ErrorCode.ContentFiltered : ErrorCode.ProviderPermissionDenied,
            404 => ErrorCode.ModelNotFound,
            408 or 504 => ErrorCode.InferenceTimeout,
            400 or 413 or 422 => LooksLikeContextLength(bodyText) ? ErrorCode.ContextLengthExceeded
                : LooksLikeContentFilter(bodyText) ? ErrorCode.ContentFiltered
                : ErrorCode.InferenceRequestInvalid,
            >= 500 => ErrorCode.ProviderUnavailable,
            _ => ErrorCode.ProviderBadResponse,
        };
        return Create(error, provider, message, retryAfter, code);
    }

    // A transport failure of an HTTP call that our own token did not cancel.
    public static WayangException FromException(string provider, Exception ex)
    {
        if (ex is WayangException w)
            return w;
        return ex switch
        {
            HttpRequestException { InnerException: SocketException or IOException } or HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError }
                => Create(ErrorCode.ProviderUnavailable, provider, $"Provider '{provider}' could not be reached: {ex.Message}"),
            HttpRequestException { HttpRequestError: HttpRequestError.ResponseEnded or HttpRequestError.InvalidResponse }
                => Create(ErrorCode.ProviderBadResponse, provider, $"Provider '{provider}' sent an invalid response: {ex.Message}"),
            HttpRequestException => Create(ErrorCode.ProviderUnavailable, provider, $"Provider '{provider}' failed: {ex.Message}"),
            System.Text.Json.JsonException => Create(ErrorCode.ProviderBadResponse, provider, $"Provider '{provider}' sent malformed JSON: {ex.Message}"),
            IOException => Create(ErrorCode.StreamBroken, provider, $"Provider '{provider}' closed the connection: {ex.Message}"),
            _ => Create(ErrorCode.ProviderUnavailable, provider, $"Provider '{provider}' failed: {ex.Message}"),
        };
    }

    // Retry-After (delta seconds or an HTTP date) or OpenAI's retry-after-ms; 0 when absent.
    public static long RetryAfterMs(System.Net.Http.Headers.HttpResponseHeaders headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        if (headers.TryGetValues("retry-after-ms", out var ms) && double.TryParse(ms.FirstOrDefault(), NumberStyles.Float, CultureInfo.InvariantCulture, out double m) && m > 0)
            return (long)Math.Ceiling(m);
        var retry = headers.RetryAfter;
        if (retry?.Delta is TimeSpan delta)
            return Math.Max(0, (long)delta.TotalMilliseconds);
        if (retry?.Date is DateTimeOffset date)
            return Math.Max(0, (long)(date - DateTimeOffset.UtcNow).TotalMilliseconds);
        return 0;
    }

    public static bool LooksLikeContextLength(string? text) =>
        text is not null && (Contains(text, "context_length_exceeded") || Contains(text, "context length") || Contains(text, "context window")
            || Contains(text, "prompt is too long") || Contains(text, "too many tokens") || Contains(text, "maximum context"));

    public static bool LooksLikeContentFilter(string? text) =>
        text is not null && (Contains(text, "content_filter") || Contains(text, "content_policy") || Contains(text, "content policy")
            || Contains(text, "content management policy") || Contains(text, "safety system"));

    private static bool Contains(string text, string what) => text.Contains(what, StringComparison.OrdinalIgnoreCase);

    private static string Truncate(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
            return "";
        text = text.Trim();
        return text.Length <= 300 ? text : string.Concat(text.AsSpan(0, 300), "...");
    }
}
