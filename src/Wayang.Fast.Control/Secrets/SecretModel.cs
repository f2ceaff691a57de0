using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Control.Secrets;

// Persisted in every stored secret record: explicit values, append-only (a golden test freezes them).
public enum SecretVersionState : byte
{
    Active = 0,
    Disabled = 1,
    Destroyed = 2,
    Pruned = 3,
}

public sealed record SecretValue(int Version, byte[] Value, long CreatedAtMs);

public sealed record SecretVersionInfo(string Path, int Version, long CreatedAtMs);

// MaxVersions 1..100 (versions beyond it lose their ciphertext); RotateEveryDays 0 (off)..3650.
public sealed record SecretPolicy(int MaxVersions = 10, int RotateEveryDays = 0);

public sealed record SecretVersionMetadata(int Version, SecretVersionState State, long CreatedAtMs, string CreatedBy, string? Provider, string? KeyId);

// CurrentVersion: the highest version number (what CAS compares against). Never carries a value.
public sealed record SecretMetadata(
    string Tenant,
    string Path,
    int CurrentVersion,
    SecretPolicy Policy,
    IReadOnlyList<SecretVersionMetadata> Versions,
    long CreatedAtMs,
    long UpdatedAtMs,
    string? LastRotationFailure,
    long LastRotationFailureAtMs,
    long RotationAnnouncedAtMs);

public sealed class SecretStoreOptions
{
    public SecretPolicy DefaultPolicy { get; set; } = new();
    // Unwrapped data keys kept in memory so repeated reads skip the provider; 0 turns the cache off.
    public int DataKeyCacheEntries { get; set; } = 1024;
    public TimeSpan DataKeyCacheTtl { get; set; } = TimeSpan.FromMinutes(5);
}

public static class SecretPath
{
    public const int MaxLength = 256;
    public const int MaxValueBytes = 65536;

    public static bool IsValid(string? path)
    {
        if (string.IsNullOrEmpty(path) || path.Length > MaxLength)
            return false;
        foreach (var segment in path.Split('/'))
        {
            if (segment.Length == 0 || segment is "." or "..")
                return false;
            foreach (char c in segment)
            {
                if (!char.IsAsciiLetterOrDigit(c) && c is not ('.' or '_' or '-'))
                    return false;
            }
        }
        return true;
    }

    public static void Validate(string path)
    {
        if (!IsValid(path))
        {
            throw new WayangException(ErrorCode.SecretInvalid,
                $"'{path}' is not a valid secret path: 1-{MaxLength} characters, '/'-separated segments of [A-Za-z0-9._-], no empty, '.' or '..' segments.");
        }
    }
}
