using System.Buffers;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Protocol.Tests;

public class FrameReaderTests
{
    private const int Max = WireOptions.DefaultMaxFrameBytes;

    private sealed record ParsedFrame(FrameType Type, Opcode Opcode, uint StreamId, FrameFlags Flags, byte[] Body);

    private static byte[] FrameBytes(FrameType type, Opcode opcode, uint stream, byte[] body)
    {
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.Write(w, type, opcode, stream, body);
        return w.WrittenSpan.ToArray();
    }

    // A mixed pipeline: every vector, then frames with bodies of assorted sizes.
    private static byte[] ManyFrames(int seed)
    {
        var random = new Random(seed);
        var bytes = new List<byte>();
        foreach (var v in GoldenVectors.All)
            bytes.AddRange(v.EncodeFrame());
        for (int i = 0; i < 40; i++)
        {
            var body = new byte[random.Next(0, 300)];
            random.NextBytes(body);
            bytes.AddRange(FrameBytes((FrameType)random.Next(1, 13), (Opcode)random.Next(0, 0x400), (uint)random.Next(), body));
        }
        return [.. bytes];
    }

    // Reads frames the way a pipe loop does: slice while Complete, and on Incomplete "read more" by extending the
    // visible window; what was consumed stays consumed.
    private static List<ParsedFrame> ReadAll(ReadOnlySequence<byte> buffer)
    {
        var frames = new List<ParsedFrame>();
        while (true)
        {
            var status = FrameReader.TryReadFrame(ref buffer, Max, out var frame, out var error);
            if (status == FrameReadStatus.Incomplete)
                break;
            Assert.Equal(FrameReadStatus.Complete, status);
            Assert.Equal(ErrorCode.None, error);
            frames.Add(new ParsedFrame(frame.Header.Type, frame.Header.Opcode, frame.Header.StreamId, frame.Header.Flags, frame.Body.ToArray()));
        }
        Assert.True(buffer.IsEmpty, "leftover bytes after the last frame");
        return frames;
    }

    private static void AssertSameFrames(List<ParsedFrame> expected, List<ParsedFrame> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Type, actual[i].Type);
            Assert.Equal(expected[i].Opcode, actual[i].Opcode);
            Assert.Equal(expected[i].StreamId, actual[i].StreamId);
            Assert.Equal(expected[i].Flags, actual[i].Flags);
            Assert.Equal(expected[i].Body, actual[i].Body);
        }
    }

    [Fact]
    public void One_byte_per_segment_parses_like_one_segment()
    {
        var data = ManyFrames(1);
        var whole = ReadAll(new ReadOnlySequence<byte>(data));
        Assert.Equal(GoldenVectors.All.Count + 40, whole.Count);

        AssertSameFrames(whole, ReadAll(TestSequences.OneBytePerSegment(data)));
    }

    [Fact]
    public void Random_splits_parse_like_one_segment()
    {
        var random = new Random(12345);
        for (int round = 0; round < 200; round++)
        {
            var data = ManyFrames(round);
            var whole = ReadAll(new ReadOnlySequence<byte>(data));
            AssertSameFrames(whole, ReadAll(TestSequences.RandomSplit(data, random, maxCuts: 64)));
        }
    }

    // Bytes arriving a few at a time: every prefix is either some complete frames plus Incomplete, never an error,
    // and Incomplete never moves the buffer.
    [Fact]
    public void Growing_prefixes_yield_frames_incrementally()
    {
        var data = ManyFrames(7);
        var expected = ReadAll(new ReadOnlySequence<byte>(data));
        var got = new List<ParsedFrame>();
        long consumed = 0;
        var random = new Random(7);
        long available = 0;
        while (consumed < data.Length)
        {
            available = Math.Min(data.Length, available + random.Next(1, 40));
            var window = TestSequences.RandomSplit(data[(int)consumed..(int)available], random, 4);
            while (true)
            {
                var before = window;
                var status = FrameReader.TryReadFrame(ref window, Max, out var frame, out _);
                if (status == FrameReadStatus.Incomplete)
                {
                    Assert.Equal(before.Length, window.Length);
                    Assert.Equal(before.Start, window.Start);
                    break;
                }
                Assert.Equal(FrameReadStatus.Complete, status);
                got.Add(new ParsedFrame(frame.Header.Type, frame.Header.Opcode, frame.Header.StreamId, frame.Header.Flags, frame.Body.ToArray()));
                consumed += frame.Header.TotalLength;
            }
        }
        AssertSameFrames(expected, got);
    }

    [Fact]
    public void Empty_body_frame_is_complete_with_just_the_header()
    {
        var data = FrameBytes(FrameType.Request, Opcode.Ping, 1, []);
        Assert.Equal(16, data.Length);
        var buffer = new ReadOnlySequence<byte>(data);
        Assert.Equal(FrameReadStatus.Complete, FrameReader.TryReadFrame(ref buffer, Max, out var frame, out _));
        Assert.True(frame.Body.IsEmpty);
        Assert.True(buffer.IsEmpty);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(15)]
    public void Incomplete_header_leaves_the_buffer_untouched(int length)
    {
        var data = FrameBytes(FrameType.Request, Opcode.Ping, 1, [1, 2, 3])[..length];
        var buffer = new ReadOnlySequence<byte>(data);
        var before = buffer;
        Assert.Equal(FrameReadStatus.Incomplete, FrameReader.TryReadFrame(ref buffer, Max, out _, out var error));
        Assert.Equal(ErrorCode.None, error);
        Assert.Equal(before.Start, buffer.Start);
        Assert.Equal(before.End, buffer.End);
    }

    [Theory]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(115)]
    public void Incomplete_body_leaves_the_buffer_untouched(int length)
    {
        var data = FrameBytes(FrameType.Request, Opcode.KeyCreate, 9, new byte[100])[..length];
        foreach (var buffer0 in new[] { new ReadOnlySequence<byte>(data), TestSequences.OneBytePerSegment(data) })
        {
            var buffer = buffer0;
            Assert.Equal(FrameReadStatus.Incomplete, FrameReader.TryReadFrame(ref buffer, Max, out _, out var error));
            Assert.Equal(ErrorCode.None, error);
            Assert.Equal(buffer0.Start, buffer.Start);
            Assert.Equal(buffer0.End, buffer.End);
        }
    }

    [Fact]
    public void Oversize_length_is_refused_from_the_header_alone()
    {
        // Only the 16 header bytes exist: the reader must not wait for the (huge) body to decide.
        var header = new byte[16];
        new FrameHeader(FrameType.Request, Opcode.Ping, 1, Max + 1).Write(header);
        foreach (var buffer0 in new[] { new ReadOnlySequence<byte>(header), TestSequences.OneBytePerSegment(header) })
        {
            var buffer = buffer0;
            Assert.Equal(FrameReadStatus.Error, FrameReader.TryReadFrame(ref buffer, Max, out _, out var error));
            Assert.Equal(ErrorCode.FrameTooLarge, error);
            Assert.Equal(buffer0.Start, buffer.Start);
        }
    }

    [Fact]
    public void Length_at_the_limit_is_accepted_and_u32_max_is_refused()
    {
        var header = new byte[16];
        new FrameHeader(FrameType.Request, Opcode.Ping, 1, 100).Write(header);
        var buffer = new ReadOnlySequence<byte>(header);
        Assert.Equal(FrameReadStatus.Incomplete, FrameReader.TryReadFrame(ref buffer, 100, out _, out _));

        header.AsSpan(0, 4).Fill(0xff);
        buffer = new ReadOnlySequence<byte>(header);
        Assert.Equal(FrameReadStatus.Error, FrameReader.TryReadFrame(ref buffer, int.MaxValue, out _, out var error));
        Assert.Equal(ErrorCode.FrameTooLarge, error);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(13)]
    [InlineData(200)]
    [InlineData(255)]
    public void Unknown_frame_type_is_an_error(byte type)
    {
        var data = FrameBytes(FrameType.Request, Opcode.Ping, 1, []);
        data[5] = type;
        var buffer = new ReadOnlySequence<byte>(data);
        Assert.Equal(FrameReadStatus.Error, FrameReader.TryReadFrame(ref buffer, Max, out _, out var error));
        Assert.Equal(ErrorCode.UnknownFrameType, error);
        Assert.Equal(16, buffer.Length);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(255)]
    public void Bad_frame_version_is_an_error(byte version)
    {
        var data = FrameBytes(FrameType.Request, Opcode.Ping, 1, []);
        data[4] = version;
        var buffer = new ReadOnlySequence<byte>(data);
        Assert.Equal(FrameReadStatus.Error, FrameReader.TryReadFrame(ref buffer, Max, out _, out var error));
        Assert.Equal(ErrorCode.UnsupportedVersion, error);
        Assert.Equal(16, buffer.Length);
    }

    [Fact]
    public void Checks_run_in_the_documented_order_version_type_length()
    {
        var data = new byte[16];
        data.AsSpan(0, 4).Fill(0xff);
        data[4] = 9;
        data[5] = 99;
        var buffer = new ReadOnlySequence<byte>(data);
        FrameReader.TryReadFrame(ref buffer, Max, out _, out var error);
        Assert.Equal(ErrorCode.UnsupportedVersion, error);

        data[4] = 1;
        buffer = new ReadOnlySequence<byte>(data);
        FrameReader.TryReadFrame(ref buffer, Max, out _, out error);
        Assert.Equal(ErrorCode.UnknownFrameType, error);
    }

    [Fact]
    public void Unknown_flags_and_reserved_bits_are_ignored()
    {
        var data = FrameBytes(FrameType.Request, Opcode.Ping, 1, []);
        data[6] = 0xff;
        data[7] = 0xff;
        data[14] = 0xab;
        data[15] = 0xcd;
        var buffer = new ReadOnlySequence<byte>(data);
        Assert.Equal(FrameReadStatus.Complete, FrameReader.TryReadFrame(ref buffer, Max, out var frame, out _));
        Assert.Equal((FrameFlags)0xffff, frame.Header.Flags);
        Assert.Equal(Opcode.Ping, frame.Header.Opcode);
    }

    [Fact]
    public void Multi_segment_body_is_written_like_a_contiguous_one()
    {
        var body = Enumerable.Range(0, 500).Select(i => (byte)i).ToArray();
        var contiguous = FrameBytes(FrameType.Stream, Opcode.Tick, 3, body);
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.Write(w, FrameType.Stream, Opcode.Tick, 3, TestSequences.Split(body, [1, 100, 100, 499]));
        Assert.Equal(contiguous, w.WrittenSpan.ToArray());
    }

    [Fact]
    public void WriteMessage_frames_the_serialized_body()
    {
        var vector = GoldenVectors.All.Single(v => v.Name == "request-keycreate");
        var w = new ArrayBufferWriter<byte>();
        var scratch = new ArrayBufferWriter<byte>();
        scratch.Write(new byte[50]); // leftovers from a previous message must not leak into this one
        FrameWriter.WriteMessage(w, scratch, FrameType.Request, Opcode.KeyCreate, 7,
            new Messages.KeyCreateRequest { TenantId = "acme", Name = "ci-bot", Roles = ["developer"] }, WireOptions.Trusted);
        Assert.Equal(vector.EncodeFrame(), w.WrittenSpan.ToArray());
    }
}
