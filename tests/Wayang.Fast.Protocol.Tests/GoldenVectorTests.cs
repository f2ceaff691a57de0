using System.Buffers;
using System.Globalization;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Protocol.Tests;

public class GoldenVectorTests
{
    private static readonly Lazy<IReadOnlyList<VectorEntry>> FileEntries =
        new(() => GoldenVectors.Parse(SpecFiles.ReadAllText("vectors", GoldenVectors.FileName)));

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var v in GoldenVectors.All)
            data.Add(v.Name);
        return data;
    }

    private static (GoldenVector Vector, VectorEntry Entry) Get(string name) =>
        (GoldenVectors.All.Single(v => v.Name == name), FileEntries.Value.Single(e => e.Name == name));

    [Fact]
    public void File_and_definitions_name_the_same_vectors()
    {
        Assert.Equal(GoldenVectors.All.Select(v => v.Name), FileEntries.Value.Select(e => e.Name));
    }

    [Fact]
    public void Covers_every_frame_type()
    {
        var types = FileEntries.Value.Select(e => (FrameType)e.Bytes[5]).ToHashSet();
        Assert.All(Enum.GetValues<FrameType>(), t => Assert.Contains(t, types));
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Decodes_the_committed_bytes(string name)
    {
        var (vector, entry) = Get(name);
        var buffer = new ReadOnlySequence<byte>(entry.Bytes);

        var status = FrameReader.TryReadFrame(ref buffer, WireOptions.DefaultMaxFrameBytes, out var frame, out var error);

        Assert.Equal(FrameReadStatus.Complete, status);
        Assert.Equal(ErrorCode.None, error);
        Assert.True(buffer.IsEmpty);
        Assert.Equal(vector.Type, frame.Header.Type);
        Assert.Equal(vector.StreamId, frame.Header.StreamId);
        Assert.Equal(vector.Opcode, frame.Header.Opcode);
        Assert.Equal(FrameFlags.None, frame.Header.Flags);
        Assert.Equal(entry.Bytes.Length - FrameHeader.Size, frame.Header.BodyLength);
        vector.CheckBody(frame.Body);

        // The informative fields of the block agree with the bytes.
        Assert.Equal($"{GoldenVectors.FrameTypeName(vector.Type)} ({(int)vector.Type})", entry.Fields["type"]);
        Assert.Equal(vector.StreamId.ToString(CultureInfo.InvariantCulture), entry.Fields["stream"]);
        Assert.Equal("0x" + ((ushort)vector.Opcode).ToString("x4", CultureInfo.InvariantCulture), entry.Fields["opcode"]);
        Assert.Equal(frame.Header.BodyLength.ToString(CultureInfo.InvariantCulture), entry.Fields["length"]);
        Assert.Equal(GoldenVectors.BodyText(vector), entry.Fields["body"]);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Encoding_the_objects_reproduces_the_committed_bytes(string name)
    {
        var (vector, entry) = Get(name);
        Assert.Equal(Convert.ToHexStringLower(entry.Bytes), Convert.ToHexStringLower(vector.EncodeFrame()));
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Header_bytes_follow_the_documented_layout(string name)
    {
        var (vector, entry) = Get(name);
        var b = entry.Bytes;
        Assert.Equal((uint)(b.Length - 16), BitConverter.ToUInt32(b, 0));
        Assert.Equal(1, b[4]);
        Assert.Equal((byte)vector.Type, b[5]);
        Assert.Equal(0, BitConverter.ToUInt16(b, 6));
        Assert.Equal(vector.StreamId, BitConverter.ToUInt32(b, 8));
        Assert.Equal((ushort)vector.Opcode, BitConverter.ToUInt16(b, 12));
        Assert.Equal(0, BitConverter.ToUInt16(b, 14));
    }

    [Fact]
    public void All_vectors_concatenated_parse_in_order()
    {
        var all = FileEntries.Value.SelectMany(e => e.Bytes).ToArray();
        var buffer = new ReadOnlySequence<byte>(all);
        foreach (var entry in FileEntries.Value)
        {
            Assert.Equal(FrameReadStatus.Complete, FrameReader.TryReadFrame(ref buffer, WireOptions.DefaultMaxFrameBytes, out var frame, out _));
            Assert.Equal(entry.Bytes.Length, frame.Header.TotalLength);
        }
        Assert.True(buffer.IsEmpty);
    }

    // Regenerates the committed file from the C# definitions. Opt-in only: the committed hex is the truth, and
    // a change to it is a protocol change that must be reviewed as such.
    [Fact]
    public void Regenerate_when_asked()
    {
        if (Environment.GetEnvironmentVariable("WAYANG_REGEN_VECTORS") != "1")
            return;
        File.WriteAllText(SpecFiles.SourcePath("vectors", GoldenVectors.FileName), GoldenVectors.Render());
    }
}
