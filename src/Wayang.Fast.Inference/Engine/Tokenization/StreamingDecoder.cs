using System.Runtime.InteropServices;
using System.Text;

namespace Wayang.Fast.Inference.Engine.Tokenization;

// Turns generated tokens into text as they come without ever splitting a UTF-8 character: byte tokens are gathered
// as bytes, and the UTF-8 decoder keeps an incomplete sequence until the token that completes it arrives.
public sealed class StreamingDecoder
{
    private readonly GgufTokenizer _tokenizer;
    private readonly Decoder _utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
    private readonly List<byte> _bytes = new(16);
    private char[] _chars = new char[16];

    internal StreamingDecoder(GgufTokenizer tokenizer) => _tokenizer = tokenizer;

    // The text that this token completes; "" while a character is still incomplete.
    public string Push(int token)
    {
        _bytes.Clear();
        if (_tokenizer.AppendBytes(token, _bytes) == 0)
            return "";
        return Convert(flush: false);
    }

    // The end of the stream: an incomplete character left over becomes U+FFFD rather than vanishing.
    public string Flush()
    {
        _bytes.Clear();
        return Convert(flush: true);
    }

    private string Convert(bool flush)
    {
        var bytes = CollectionsMarshal.AsSpan(_bytes);
        // Each byte makes at most one char, and the up to three bytes held from before at most two more.
        int needed = bytes.Length + 4;
        if (_chars.Length < needed)
            _chars = new char[Math.Max(needed, _chars.Length * 2)];
        int count = _utf8.GetChars(bytes, _chars, flush);
        return count == 0 ? "" : new string(_chars, 0, count);
    }
}
