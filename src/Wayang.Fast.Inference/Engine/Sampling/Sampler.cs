using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Inference.Engine.Sampling;

// Picks the next token from a row of logits: greedy, or top-k, then top-p, then temperature, then a seeded draw, the
// order of llama.cpp's default sampler chain (so top-p measures the untempered distribution, as there). Sample
// allocates nothing: the candidate ids and their weights live in buffers sized once for the vocabulary.
public sealed class Sampler
{
    private readonly SamplerOptions _options;
    private readonly int[] _ids;
    private readonly float[] _weights;
    // Made once: Span.Sort with an IComparer wraps it in a new delegate on every call, with a Comparison it does not.
    private readonly Comparison<int> _order;
    private Xoshiro256 _rng;

    public Sampler(int vocabSize, SamplerOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabSize);
        if (options.TopK < 0 || options.TopP is <= 0f or > 1f || float.IsNaN(options.Temperature))
            throw new WayangException(ErrorCode.InvalidArgument,
                $"sampling options out of range: temperature {options.Temperature}, top_k {options.TopK}, top_p {options.TopP}");
        _options = options;
        _ids = new int[vocabSize];
        _weights = new float[vocabSize];
        _order = new ByLogitDescending(_weights).Compare;
        _rng = new Xoshiro256(options.Seed ?? (ulong)Random.Shared.NextInt64());
    }

    public bool IsGreedy => _options.Temperature <= 0f || _options.TopK == 1;

    // Argmax; on ties the lowest id, as llama.cpp's greedy sampler (a strict > scan) picks.
    public static int Greedy(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
                best = i;
        }
        return best;
    }

    // The logits may be changed (they are used as the working copy); their length is the vocabulary size.
    public int Sample(Span<float> logits)
    {
        if (logits.Length != _ids.Length)
            throw new WayangException(ErrorCode.InvalidArgument, $"{logits.Length} logits for a vocabulary of {_ids.Length}");
        if (IsGreedy)
            return Greedy(logits);

        int count = logits.Length;
        var ids = _ids.AsSpan(0, count);
        for (int i = 0; i < count; i++)
            ids[i] = i;
        bool truncate = (_options.TopK > 0 && _options.TopK < count) || _options.TopP < 1f;
        if (truncate)
        {
            // Best first, ties to the lower id, so truncation is deterministic.
            logits.CopyTo(_weights);
            ids.Sort(_order);
            if (_options.TopK > 0)
                count = Math.Min(count, _options.TopK);
            if (_options.TopP < 1f)
                count = NucleusSize(_weights, _ids.AsSpan(0, count), _options.TopP);
            for (int i = 0; i < count; i++)
                logits[i] = _weights[_ids[i]];
        }

        // Softmax over what is left at the temperature, then one draw against the running sum.
        var kept = logits[..count];
        float max = float.NegativeInfinity;
        foreach (float l in kept)
            max = Math.Max(max, l);
        float invT = 1f / _options.Temperature;
        double sum = 0;
        for (int i = 0; i < count; i++)
        {
            float w = MathF.Exp((kept[i] - max) * invT);
            _weights[i] = w;
            sum += w;
        }
        double target = _rng.NextDouble() * sum;
        double running = 0;
        for (int i = 0; i < count; i++)
        {
            running += _weights[i];
            if (target < running)
                return _ids[i];
        }
        // Rounding left the target at the very top of the sum: the last candidate with any weight.
        for (int i = count - 1; i > 0; i--)
        {
            if (_weights[i] > 0)
                return _ids[i];
        }
        return _ids[0];
    }

    // The fewest best candidates whose probability (at temperature 1) reaches p, at least one, as llama.cpp's top-p.
    private static int NucleusSize(float[] logits, ReadOnlySpan<int> sortedIds, float p)
    {
        float max = logits[sortedIds[0]];
        double total = 0;
        foreach (int id in sortedIds)
            total += Math.Exp(logits[id] - max);
        double cumulative = 0;
        for (int i = 0; i < sortedIds.Length; i++)
        {
            cumulative += Math.Exp(logits[sortedIds[i]] - max) / total;
            if (cumulative >= p)
                return i + 1;
        }
        return sortedIds.Length;
    }

    private sealed class ByLogitDescending(float[] logits)
    {
        public int Compare(int x, int y)
        {
            int byLogit = logits[y].CompareTo(logits[x]);
            return byLogit != 0 ? byLogit : x.CompareTo(y);
        }
    }
}
