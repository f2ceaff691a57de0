using System.Security.Cryptography;
using System.Text;

namespace Wayang.Fast.Client.Execution;

public sealed class ExecutorOptions
{
    public const int MaxSlots = 10_000;

    // Unique among the executors connected to the server (1..64 of a-z 0-9 - _). Null: machine name + random suffix.
    public string? ExecutorId { get; set; }

    // The executor types this process serves (a TASK node's executorType).
    public IReadOnlyList<string> Types { get; set; } = [];

    // Tasks run at once: the server never pushes more than this, and the host never runs more.
    public int Slots { get; set; } = 1;

    // Matched against a TASK node's labels (all of the node's labels must be present with equal values).
    public IReadOnlyDictionary<string, string> Labels { get; set; } = new Dictionary<string, string>();

    // Renews the leases of the tasks this executor holds; keep it well below the server's lease (30 s by default).
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(10);

    internal static string DefaultExecutorId()
    {
        // Machine names may hold upper case, dots and other characters that ids do not allow.
        var name = new StringBuilder();
        foreach (char c in Environment.MachineName.ToLowerInvariant())
        {
            if (name.Length >= 48)
                break;
            name.Append(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '_' ? c : '-');
        }
        string prefix = name.ToString().Trim('-', '_');
        return (prefix.Length == 0 ? "executor" : prefix) + "-" + RandomNumberGenerator.GetString("0123456789abcdefghijklmnopqrstuvwxyz", 8);
    }

    internal void Validate()
    {
        if (Types is null || Types.Count == 0)
            throw new ArgumentException("At least one executor type is required.", nameof(Types));
        if (Slots is < 1 or > MaxSlots)
            throw new ArgumentException($"Slots must be 1..{MaxSlots}.", nameof(Slots));
        if (HeartbeatInterval <= TimeSpan.Zero)
            throw new ArgumentException("HeartbeatInterval must be positive.", nameof(HeartbeatInterval));
    }
}
