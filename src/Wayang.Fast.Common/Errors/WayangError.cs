namespace Wayang.Fast.Common.Errors;

// The error as it travels: on the wire in an ERROR frame, in the SDK as WayangException, in plane results.
public sealed record WayangError
{
    public WayangError(ErrorCode code, string? message = null, long retryAfterMs = 0, IReadOnlyDictionary<string, string>? details = null, bool? retryable = null)
    {
        var info = ErrorRegistry.Get(code);
        Code = code;
        Name = info.Name;
        Message = message ?? info.DefaultMessage;
        Retryable = retryable ?? info.Retryable;
        RetryAfterMs = retryAfterMs;
        Details = details ?? EmptyDetails;
    }

    private static readonly IReadOnlyDictionary<string, string> EmptyDetails = new Dictionary<string, string>();

    public ErrorCode Code { get; }
    public string Name { get; }
    public string Message { get; }
    public bool Retryable { get; }
    public long RetryAfterMs { get; }
    public IReadOnlyDictionary<string, string> Details { get; }

    public override string ToString() => $"{Name} ({(int)Code}): {Message}";
}

// Ends a request or a session. Hot paths return status values instead; this is for the exceptional exit.
public class WayangException : Exception
{
    public WayangException(WayangError error) : base(error.ToString()) => Error = error;
    public WayangException(WayangError error, Exception inner) : base(error.ToString(), inner) => Error = error;
    public WayangException(ErrorCode code, string? message = null) : this(new WayangError(code, message)) { }

    public WayangException() : this(ErrorCode.Internal) { }
    public WayangException(string message) : this(ErrorCode.Internal, message) { }
    public WayangException(string message, Exception inner) : this(new WayangError(ErrorCode.Internal, message), inner) { }

    public WayangError Error { get; }
    public ErrorCode Code => Error.Code;
    public bool Retryable => Error.Retryable;
    public TimeSpan? RetryAfter => Error.RetryAfterMs > 0 ? TimeSpan.FromMilliseconds(Error.RetryAfterMs) : null;
}
