using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Protocol.Messages;

// The one mapping between the registry's WayangError and the ERROR frame body, used by the server to send
// and by the SDK to receive, so both sides agree on every field.
public static class ErrorBodyMapping
{
    public static ErrorBody ToBody(WayangError error) => new()
    {
        Code = (int)error.Code,
        Name = error.Name,
        Message = error.Message,
        Retryable = error.Retryable,
        RetryAfterMs = error.RetryAfterMs,
        Details = error.Details.Count == 0 ? [] : new Dictionary<string, string>(error.Details),
    };

    public static WayangError ToError(ErrorBody body)
    {
        var code = (ErrorCode)body.Code;
        IReadOnlyDictionary<string, string>? details = body.Details;
        if (ErrorRegistry.NameOf(code) != body.Name && !string.IsNullOrEmpty(body.Name))
        {
            // A code this side does not know yet: keep the sender's symbolic name.
            details = new Dictionary<string, string>(body.Details ?? []) { ["name"] = body.Name };
        }
        return new WayangError(code, string.IsNullOrEmpty(body.Message) ? null : body.Message, body.RetryAfterMs, details, body.Retryable);
    }
}
