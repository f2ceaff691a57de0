using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Wayang.Fast.Control.Plugins;

// SemVer 2.0 without build metadata: major.minor.patch[-prerelease]. Without "+build" two versions are equal exactly
// when their texts are, so the text can be a storage key. Ordered by SemVer §11 (a prerelease sorts before its release;
// numeric identifiers numerically, below alphanumeric ones; a shorter identifier list first when all else is equal).
public sealed class SemanticVersion : IComparable<SemanticVersion>, IEquatable<SemanticVersion>
{
    private readonly string[] _prerelease;

    private SemanticVersion(string text, long major, long minor, long patch, string[] prerelease)
    {
        Text = text;
        Major = major;
        Minor = minor;
        Patch = patch;
        _prerelease = prerelease;
    }

    public string Text { get; }
    public long Major { get; }
    public long Minor { get; }
    public long Patch { get; }
    public bool IsPrerelease => _prerelease.Length > 0;

    public static bool TryParse(string? text, [NotNullWhen(true)] out SemanticVersion? version)
    {
        version = null;
        if (string.IsNullOrEmpty(text) || text.Length > 128)
            return false;
        int dash = text.IndexOf('-', StringComparison.Ordinal);
        var core = (dash < 0 ? text : text[..dash]).Split('.');
        if (core.Length != 3 || !TryNumber(core[0], out long major) || !TryNumber(core[1], out long minor) || !TryNumber(core[2], out long patch))
            return false;
        string[] prerelease = [];
        if (dash >= 0)
        {
            prerelease = text[(dash + 1)..].Split('.');
            foreach (var identifier in prerelease)
            {
                if (identifier.Length == 0 || !identifier.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
                    return false;
                // A numeric identifier with a leading zero is not SemVer ("01").
                if (identifier.All(char.IsAsciiDigit) && !TryNumber(identifier, out _))
                    return false;
            }
        }
        version = new SemanticVersion(text, major, minor, patch, prerelease);
        return true;
    }

    public static SemanticVersion Parse(string text) =>
        TryParse(text, out var version) ? version : throw new FormatException($"'{text}' is not a SemVer version (major.minor.patch[-prerelease]).");

    public int CompareTo(SemanticVersion? other)
    {
        if (other is null)
            return 1;
        int c = Major.CompareTo(other.Major);
        if (c == 0)
            c = Minor.CompareTo(other.Minor);
        if (c == 0)
            c = Patch.CompareTo(other.Patch);
        if (c != 0)
            return c;
        if (_prerelease.Length == 0 || other._prerelease.Length == 0)
            return (_prerelease.Length == 0 ? 1 : 0) - (other._prerelease.Length == 0 ? 1 : 0); // the release is greater
        for (int i = 0; i < Math.Min(_prerelease.Length, other._prerelease.Length); i++)
        {
            c = CompareIdentifiers(_prerelease[i], other._prerelease[i]);
            if (c != 0)
                return c;
        }
        return _prerelease.Length.CompareTo(other._prerelease.Length);
    }

    public bool Equals(SemanticVersion? other) => other is not null && string.Equals(Text, other.Text, StringComparison.Ordinal);

    public override bool Equals(object? obj) => Equals(obj as SemanticVersion);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(Text);

    public override string ToString() => Text;

    public static bool operator ==(SemanticVersion? left, SemanticVersion? right) => left is null ? right is null : left.Equals(right);
    public static bool operator !=(SemanticVersion? left, SemanticVersion? right) => !(left == right);
    public static bool operator <(SemanticVersion left, SemanticVersion right) => Compare(left, right) < 0;
    public static bool operator <=(SemanticVersion left, SemanticVersion right) => Compare(left, right) <= 0;
    public static bool operator >(SemanticVersion left, SemanticVersion right) => Compare(left, right) > 0;
    public static bool operator >=(SemanticVersion left, SemanticVersion right) => Compare(left, right) >= 0;

    private static int Compare(SemanticVersion left, SemanticVersion right)
    {
        ArgumentNullException.ThrowIfNull(left);
        return left.CompareTo(right);
    }

    private static int CompareIdentifiers(string a, string b)
    {
        bool aNumeric = long.TryParse(a, NumberStyles.None, CultureInfo.InvariantCulture, out long x);
        bool bNumeric = long.TryParse(b, NumberStyles.None, CultureInfo.InvariantCulture, out long y);
        if (aNumeric && bNumeric)
            return x.CompareTo(y);
        if (aNumeric != bNumeric)
            return aNumeric ? -1 : 1;
        return string.CompareOrdinal(a, b);
    }

    private static bool TryNumber(string text, out long value)
    {
        value = 0;
        return text.Length > 0 && (text.Length == 1 || text[0] != '0') && text.All(char.IsAsciiDigit)
            && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }
}

// "serverVersions": comparators (>=, >, <=, <, =, each glued to a SemVer) separated by spaces; all must hold.
public sealed class VersionRange
{
    private readonly (string Operator, SemanticVersion Version)[] _comparators;

    private VersionRange((string, SemanticVersion)[] comparators) => _comparators = comparators;

    public static bool TryParse(string? text, [NotNullWhen(true)] out VersionRange? range)
    {
        range = null;
        if (string.IsNullOrWhiteSpace(text))
            return false;
        var comparators = new List<(string, SemanticVersion)>();
        foreach (var part in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            // Two-character operators first, so ">=1.0.0" is not read as ">" and "=1.0.0".
            var op = part.StartsWith(">=", StringComparison.Ordinal) || part.StartsWith("<=", StringComparison.Ordinal) ? part[..2]
                : part.Length > 0 && part[0] is '>' or '<' or '=' ? part[..1] : "";
            if (op.Length == 0 || !SemanticVersion.TryParse(part[op.Length..], out var version))
                return false;
            comparators.Add((op, version));
        }
        range = new VersionRange([.. comparators]);
        return true;
    }

    public bool Contains(SemanticVersion version)
    {
        foreach (var (op, bound) in _comparators)
        {
            int c = version.CompareTo(bound);
            bool holds = op switch { ">=" => c >= 0, ">" => c > 0, "<=" => c <= 0, "<" => c < 0, _ => c == 0 };
            if (!holds)
                return false;
        }
        return true;
    }
}
