using System.Text;

namespace Wayang.Fast.Inference.Adapters.LlamaCpp;

// Holds back generated text that could still become a stop string, so a stop string split across tokens is never
// streamed. Push returns the text safe to emit; Stopped says a stop string matched (its text and what follows are
// dropped, as OpenAI-compatible servers do).
internal sealed class StopMatcher(IReadOnlyList<string> stops)
{
    private readonly string[] _stops = [.. stops.Where(s => s.Length > 0)];
    private readonly StringBuilder _held = new();

    public bool Stopped { get; private set; }

    public string Push(string text)
    {
        if (Stopped || text.Length == 0)
            return "";
        if (_stops.Length == 0)
            return text;
        _held.Append(text);
        string held = _held.ToString();
        int first = -1;
        foreach (string s in _stops)
        {
            int at = held.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first))
                first = at;
        }
        if (first >= 0)
        {
            Stopped = true;
            _held.Clear();
            return held[..first];
        }
        int keep = 0;
        foreach (string s in _stops)
        {
            for (int n = Math.Min(s.Length - 1, held.Length); n > keep; n--)
            {
                if (held.AsSpan(held.Length - n).SequenceEqual(s.AsSpan(0, n)))
                {
                    keep = n;
                    break;
                }
            }
        }
        _held.Clear().Append(held, held.Length - keep, keep);
        return held[..^keep];
    }

    // The end of generation: what was held back is text after all.
    public string Flush()
    {
        string rest = Stopped ? "" : _held.ToString();
        _held.Clear();
        return rest;
    }
}
