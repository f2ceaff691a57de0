using System.Text;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Engine.Gguf;

namespace Wayang.Fast.Inference.Engine.Tokenization;

// The token types of tokenizer.ggml.token_type, numbered as llama.cpp numbers them.
public enum GgufTokenType
{
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

// The SentencePiece tokenizer of a llama-family GGUF, rebuilt from its tokenizer.ggml.* metadata so that it gives the
// ids llama.cpp gives. Microsoft.ML.Tokenizers' LlamaTokenizer needs the SentencePiece .model protobuf, which a GGUF
// does not carry, and synthesizing one would add a dependency only to re-encode what the metadata already says; the
// llm_tokenizer_spm algorithm is small, and llama.cpp is the reference the tests check against.
public sealed class GgufTokenizer
{
    public const string SpaceMarker = "\u2581";

    private readonly string[] _tokens;
    private readonly float[] _scores;
    private readonly GgufTokenType[] _types;
    private readonly Dictionary<string, int> _ids;
    private readonly int[] _byteTokens = new int[256];

    public GgufTokenizer(
        IReadOnlyList<string> tokens,
        IReadOnlyList<float> scores,
        IReadOnlyList<GgufTokenType> types,
        int bosId,
        int eosId,
        int unknownId,
        bool addBos = true,
        bool addEos = false,
        bool addSpacePrefix = true)
    {
        if (tokens.Count == 0 || scores.Count != tokens.Count || types.Count != tokens.Count)
            throw new WayangException(ErrorCode.InvalidArgument,
                $"tokenizer vocabulary is inconsistent: {tokens.Count} tokens, {scores.Count} scores, {types.Count} types");
        _tokens = [.. tokens];
        _scores = [.. scores];
        _types = [.. types];
        BosId = CheckId(bosId, "BOS");
        EosId = CheckId(eosId, "EOS");
        UnknownId = CheckId(unknownId, "unknown");
        AddBos = addBos;
        AddEos = addEos;
        AddSpacePrefix = addSpacePrefix;

        _ids = new Dictionary<string, int>(_tokens.Length, StringComparer.Ordinal);
        // A later duplicate of a piece wins, as in llama.cpp's token_to_id.
        for (int i = 0; i < _tokens.Length; i++)
            _ids[_tokens[i]] = i;
        Array.Fill(_byteTokens, -1);
        for (int b = 0; b < 256; b++)
        {
            if (_ids.TryGetValue($"<0x{b:X2}>", out int id) || (b < 0x80 && _ids.TryGetValue(((char)b).ToString(), out id)))
                _byteTokens[b] = id;
        }
    }

    public static GgufTokenizer FromGguf(GgufFile file)
    {
        string model = file.Has("tokenizer.ggml.model") ? file.GetString("tokenizer.ggml.model") : "(none)";
        if (model != "llama")
            throw new WayangException(ErrorCode.InvalidArgument,
                $"tokenizer model '{model}' in '{file.Path}' is not supported: only 'llama' (SentencePiece) vocabularies are");
        string[] tokens = file.GetStringArray("tokenizer.ggml.tokens");
        // Scores and types are optional in llama.cpp: without scores no merge is preferred, without types all are normal.
        float[] scores = file.Has("tokenizer.ggml.scores") ? file.GetSingleArray("tokenizer.ggml.scores") : new float[tokens.Length];
        GgufTokenType[] types = file.Has("tokenizer.ggml.token_type")
            ? [.. file.GetInt32Array("tokenizer.ggml.token_type").Select(t => (GgufTokenType)t)]
            : [.. Enumerable.Repeat(GgufTokenType.Normal, tokens.Length)];
        // The defaults are llama.cpp's for an SPM vocabulary.
        return new GgufTokenizer(
            tokens,
            scores,
            types,
            Id(file, "tokenizer.ggml.bos_token_id", 1),
            Id(file, "tokenizer.ggml.eos_token_id", 2),
            Id(file, "tokenizer.ggml.unknown_token_id", 0),
            Flag(file, "tokenizer.ggml.add_bos_token", true),
            Flag(file, "tokenizer.ggml.add_eos_token", false),
            Flag(file, "tokenizer.ggml.add_space_prefix", true));
    }

    public int VocabSize => _tokens.Length;
    public int BosId { get; }
    public int EosId { get; }
    public int UnknownId { get; }
    public bool AddBos { get; }
    public bool AddEos { get; }
    public bool AddSpacePrefix { get; }

    public string TokenText(int id) => _tokens[CheckId(id, "token")];
    public GgufTokenType TokenType(int id) => _types[CheckId(id, "token")];

    // Token ids for text, with BOS (and EOS) when addSpecial and the vocabulary asks for them, as llama_tokenize does
    // with add_special and parse_special = false.
    public int[] Encode(string text, bool addSpecial = true)
    {
        var output = new List<int>(text.Length + 2);
        if (addSpecial && AddBos)
            output.Add(BosId);
        // llama.cpp makes no fragment of empty text, so "" is only the special tokens, without a space.
        if (text.Length > 0)
        {
            string escaped = (AddSpacePrefix ? " " + text : text).Replace(" ", SpaceMarker, StringComparison.Ordinal);
            Tokenize(escaped, output);
        }
        if (addSpecial && AddEos)
            output.Add(EosId);
        return [.. output];
    }

    // The bytes a token stands for: control and unknown tokens stand for none, byte tokens for their byte, normal
    // ones for their text with the space marker turned back into a space (llama_token_to_piece with special = false).
    public int AppendBytes(int id, List<byte> destination)
    {
        switch (_types[CheckId(id, "token")])
        {
            case GgufTokenType.Control or GgufTokenType.Unknown or GgufTokenType.Unused:
                return 0;
            case GgufTokenType.Byte:
                destination.Add(ByteOf(id));
                return 1;
            default:
                byte[] bytes = Encoding.UTF8.GetBytes(_tokens[id].Replace(SpaceMarker, " ", StringComparison.Ordinal));
                destination.AddRange(bytes);
                return bytes.Length;
        }
    }

    // The text of a token sequence. stripPrefixSpace drops the one space that Encode's add_space_prefix put in front,
    // so Decode(Encode(s)) == s; the streaming decoder keeps it, as generated text continues a prompt.
    public string Decode(IEnumerable<int> ids, bool stripPrefixSpace = true)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
            AppendBytes(id, bytes);
        string text = Encoding.UTF8.GetString([.. bytes]);
        return stripPrefixSpace && AddSpacePrefix && text.StartsWith(' ') ? text[1..] : text;
    }

    public StreamingDecoder CreateStreamingDecoder() => new(this);

    internal byte ByteOf(int id)
    {
        string text = _tokens[id];
        // "<0xNN>" in SentencePiece vocabularies; a bare one-character piece in the rare vocabulary without them.
        return text.Length == 6 && text.StartsWith("<0x", StringComparison.Ordinal)
            ? Convert.ToByte(text.Substring(3, 2), 16)
            : (byte)text[0];
    }

    // llm_tokenizer_spm: start from one symbol per character, repeatedly merge the adjacent pair whose concatenation
    // is the best-scoring piece (ties to the leftmost pair), then emit each symbol as its piece or as byte tokens.
    private void Tokenize(string text, List<int> output)
    {
        var symbols = new List<Symbol>(text.Length);
        for (int i = 0; i < text.Length;)
        {
            // A surrogate pair is one character, as llama.cpp's utf8_len makes a 4-byte sequence one symbol.
            int length = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            symbols.Add(new Symbol(i, length, symbols.Count - 1, i + length < text.Length ? symbols.Count + 1 : -1));
            i += length;
        }

        var queue = new PriorityQueue<Bigram, Bigram>(BigramOrder.Instance);
        for (int i = 1; i < symbols.Count; i++)
            TryAddBigram(text, symbols, queue, i - 1, i);

        while (queue.TryDequeue(out var bigram, out _))
        {
            var left = symbols[bigram.Left];
            var right = symbols[bigram.Right];
            // A stale entry: one side was merged away, or grew, since the pair was queued.
            if (left.Length == 0 || right.Length == 0 || left.Length + right.Length != bigram.Length)
                continue;
            left.Length += right.Length;
            left.Next = right.Next;
            right.Length = 0;
            symbols[bigram.Left] = left;
            symbols[bigram.Right] = right;
            if (right.Next >= 0)
                symbols[right.Next] = symbols[right.Next] with { Prev = bigram.Left };
            TryAddBigram(text, symbols, queue, left.Prev, bigram.Left);
            TryAddBigram(text, symbols, queue, bigram.Left, left.Next);
        }

        // A merged symbol is always a piece (only pairs that form one are queued), so llama.cpp's rev_merge
        // re-segmentation never finds anything to split here: a symbol is its piece, or a lone character without one.
        for (int i = symbols.Count > 0 ? 0 : -1; i >= 0; i = symbols[i].Next)
        {
            var s = symbols[i];
            string piece = text.Substring(s.Start, s.Length);
            if (_ids.TryGetValue(piece, out int id))
            {
                output.Add(id);
                continue;
            }
            foreach (byte b in Encoding.UTF8.GetBytes(piece))
                output.Add(_byteTokens[b] >= 0 ? _byteTokens[b] : UnknownId);
        }
    }

    private void TryAddBigram(string text, List<Symbol> symbols, PriorityQueue<Bigram, Bigram> queue, int left, int right)
    {
        if (left < 0 || right < 0)
            return;
        int start = symbols[left].Start;
        int length = symbols[left].Length + symbols[right].Length;
        if (!_ids.TryGetValue(text.Substring(start, length), out int id))
            return;
        var bigram = new Bigram(left, right, _scores[id], length);
        queue.Enqueue(bigram, bigram);
    }

    private int CheckId(int id, string what) => (uint)id < (uint)_tokens.Length
        ? id
        : throw new WayangException(ErrorCode.InvalidArgument, $"{what} id {id} is outside the vocabulary of {_tokens.Length}");

    private static int Id(GgufFile file, string key, int fallback) => file.Has(key) ? file.GetInt32(key) : fallback;
    private static bool Flag(GgufFile file, string key, bool fallback) => file.Has(key) ? file.GetBool(key) : fallback;

    private record struct Symbol(int Start, int Length, int Prev, int Next);

    private readonly record struct Bigram(int Left, int Right, float Score, int Length);

    // Best score first; on equal scores the leftmost pair, as llm_bigram_spm::comparator orders llama.cpp's queue.
    private sealed class BigramOrder : IComparer<Bigram>
    {
        public static readonly BigramOrder Instance = new();

        public int Compare(Bigram x, Bigram y)
        {
            int byScore = y.Score.CompareTo(x.Score);
            return byScore != 0 ? byScore : x.Left.CompareTo(y.Left);
        }
    }
}
