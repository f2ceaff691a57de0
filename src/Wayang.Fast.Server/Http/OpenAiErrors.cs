using Microsoft.AspNetCore.Http;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Server.Http;

// How a registry error reads to an OpenAI client: the HTTP status, OpenAI's error "type" and "code". One table, so the
// face answers one code one way wherever it is raised (protocol-spec/inference.md, "OpenAI-compatible HTTP").
internal readonly record struct OpenAiError(int Status, string Type, string? Code);

internal static class OpenAiErrors
{
    public const string InvalidRequest = "invalid_request_error";
    public const string ApiError = "api_error";

    public static OpenAiError Map(ErrorCode code) => code switch
    {
        ErrorCode.Unauthenticated or ErrorCode.KeyRevoked => new(StatusCodes.Status401Unauthorized, InvalidRequest, "invalid_api_key"),
        ErrorCode.PermissionDenied => new(StatusCodes.Status403Forbidden, InvalidRequest, "permission_denied"),
        ErrorCode.InvalidArgument or ErrorCode.BadBody or ErrorCode.InferenceRequestInvalid => new(StatusCodes.Status400BadRequest, InvalidRequest, null),
        // The request body over the face's cap: the protocol's "message too large", as HTTP says it.
        ErrorCode.FrameTooLarge => new(StatusCodes.Status413PayloadTooLarge, InvalidRequest, "request_too_large"),
        ErrorCode.NotFound => new(StatusCodes.Status404NotFound, InvalidRequest, "unknown_url"),
        ErrorCode.ContextLengthExceeded => new(StatusCodes.Status400BadRequest, InvalidRequest, "context_length_exceeded"),
        ErrorCode.ContentFiltered => new(StatusCodes.Status400BadRequest, InvalidRequest, "content_filter"),
        // The model (or the provider a registry entry names) does not exist here: the caller asked for something unknown.
        ErrorCode.ModelNotFound or ErrorCode.ProviderNotFound => new(StatusCodes.Status404NotFound, InvalidRequest, "model_not_found"),
        ErrorCode.InferenceRateLimited or ErrorCode.TenantRateLimited => new(StatusCodes.Status429TooManyRequests, "rate_limit_error", "rate_limit_exceeded"),
        // Our credentials for the upstream provider failed: a gateway fault, never a reason for the caller to change its key.
        ErrorCode.ProviderAuthFailed => new(StatusCodes.Status502BadGateway, ApiError, "provider_auth_failed"),
        ErrorCode.ProviderPermissionDenied => new(StatusCodes.Status502BadGateway, ApiError, "provider_permission_denied"),
        // The upstream answered, but not usably.
        ErrorCode.ProviderBadResponse => new(StatusCodes.Status502BadGateway, ApiError, "provider_bad_response"),
        ErrorCode.StreamBroken => new(StatusCodes.Status502BadGateway, ApiError, "stream_broken"),
        // Nothing could serve right now; retrying later may succeed (the registry marks these retryable).
        ErrorCode.ProviderUnavailable => new(StatusCodes.Status503ServiceUnavailable, ApiError, "provider_unavailable"),
        ErrorCode.AllFallbacksFailed => new(StatusCodes.Status503ServiceUnavailable, ApiError, "all_fallbacks_failed"),
        ErrorCode.Unavailable or ErrorCode.ShuttingDown => new(StatusCodes.Status503ServiceUnavailable, ApiError, "unavailable"),
        ErrorCode.InferenceTimeout => new(StatusCodes.Status504GatewayTimeout, ApiError, "timeout"),
        _ => new(StatusCodes.Status500InternalServerError, ApiError, "internal_error"),
    };

    // Seconds, rounded up, at least 1: a Retry-After of 0 would invite an immediate retry into the same limit.
    public static long RetryAfterSeconds(long retryAfterMs) => Math.Max(1, (retryAfterMs + 999) / 1000);
}
