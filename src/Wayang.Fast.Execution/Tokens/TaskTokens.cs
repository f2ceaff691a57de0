using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Execution.Tokens;

public readonly record struct TaskTokenClaims(string RunId, string NodeId, int Attempt, long ExpiresAtMs)
{
    public string TaskId => string.Concat(RunId, ":", NodeId, ":", Attempt.ToString(System.Globalization.CultureInfo.InvariantCulture));
}

// Signed task tokens (STUB: implemented by the token work item).
public sealed class TaskTokens
{
    public TaskTokens(byte[] key) => throw new NotImplementedException();

    public string Issue(string runId, string nodeId, int attempt, long expiresAtMs) => throw new NotImplementedException();

    // error: TaskTokenInvalid (malformed, bad signature) or TaskTokenExpired (nowMs past expiry).
    public bool TryVerify(string token, long nowMs, out TaskTokenClaims claims, out ErrorCode error) => throw new NotImplementedException();
}
