using MessagePack;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Protocol.Tests;

// The append-only rules of messages.md, checked against the codec the reference implementation uses.
public class MessageCodecTests
{
    [Fact]
    public void Missing_trailing_fields_take_their_defaults()
    {
        // HelloRequest with only ProtocolVersion and ClientName: [1, "c"].
        byte[] body = [0x92, 0x01, 0xa1, (byte)'c'];
        var hello = MessagePackSerializer.Deserialize<HelloRequest>(body, WireOptions.Untrusted);
        Assert.Equal(1, hello.ProtocolVersion);
        Assert.Equal("c", hello.ClientName);
        Assert.Equal("", hello.ApiKey);
        Assert.Equal(0u, hello.InitialStreamCredit);
    }

    [Fact]
    public void Unknown_trailing_fields_are_skipped()
    {
        // CreditBody [16, {"future": [1, 2]}, "x"]: a newer peer's extra fields.
        var writer = new System.Buffers.ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(writer);
        w.WriteArrayHeader(3);
        w.Write(16);
        w.WriteMapHeader(1);
        w.Write("future");
        w.WriteArrayHeader(2);
        w.Write(1);
        w.Write(2);
        w.Write("x");
        w.Flush();
        var credit = MessagePackSerializer.Deserialize<CreditBody>(writer.WrittenMemory, WireOptions.Untrusted);
        Assert.Equal(16u, credit.Credits);
    }

    [Fact]
    public void Integers_in_wider_encodings_are_accepted()
    {
        // TickRequest [3, 100] with 3 as int64 and 100 as uint16.
        byte[] body = [0x92, 0xd3, 0, 0, 0, 0, 0, 0, 0, 3, 0xcd, 0x00, 0x64];
        var tick = MessagePackSerializer.Deserialize<TickRequest>(body, WireOptions.Untrusted);
        Assert.Equal(3, tick.Count);
        Assert.Equal(100, tick.IntervalMs);
    }

    [Fact]
    public void Empty_body_is_not_a_message_with_fields()
    {
        Assert.Throws<MessagePackSerializationException>(() =>
            MessagePackSerializer.Deserialize<KeyCreateRequest>(ReadOnlyMemory<byte>.Empty, WireOptions.Untrusted));
    }

    [Fact]
    public void Every_message_round_trips_with_default_values()
    {
        RoundTrip(new HelloRequest());
        RoundTrip(new WelcomeResponse());
        RoundTrip(new ErrorBody());
        RoundTrip(new CreditBody());
        RoundTrip(new GoAwayBody());
        RoundTrip(new TickRequest());
        RoundTrip(new TickItem());
        RoundTrip(new TenantCreateRequest());
        RoundTrip(new TenantInfoDto());
        RoundTrip(new TenantListResponse());
        RoundTrip(new KeyCreateRequest());
        RoundTrip(new ApiKeyInfoDto());
        RoundTrip(new KeyCreateResponse());
        RoundTrip(new KeyListRequest());
        RoundTrip(new KeyListResponse());
        RoundTrip(new KeyRevokeRequest());

        static void RoundTrip<T>(T value)
        {
            var bytes = MessagePackSerializer.Serialize(value, WireOptions.Trusted);
            Assert.Equal(0x90, bytes[0] & 0xf0); // a fixarray: bodies are arrays, never maps
            var back = MessagePackSerializer.Deserialize<T>(bytes, WireOptions.Untrusted);
            Assert.Equal(bytes, MessagePackSerializer.Serialize(back, WireOptions.Trusted));
        }
    }
}

// Characterization of the codec on nil: MessagePack-CSharp turns nil into null, even for properties declared non-null.
// The spec (messages.md) says receivers treat nil as the default and a nil body as BAD_BODY; code that reads socket
// input has to apply that rule itself, and these tests show why.
public class NilHandlingTests
{
    [Fact]
    public void Nil_fields_decode_as_null()
    {
        var hello = MessagePackSerializer.Deserialize<HelloRequest>(new byte[] { 0x94, 0x01, 0xc0, 0xc0, 0x00 }, WireOptions.Untrusted);
        Assert.Null(hello.ClientName);
        Assert.Null(hello.ApiKey);

        var key = MessagePackSerializer.Deserialize<KeyCreateRequest>(new byte[] { 0x93, 0xa1, 0x61, 0xa1, 0x62, 0xc0 }, WireOptions.Untrusted);
        Assert.Null(key.Roles);
    }

    [Fact]
    public void Nil_body_decodes_as_a_null_message()
    {
        Assert.Null(MessagePackSerializer.Deserialize<KeyCreateRequest>(new byte[] { 0xc0 }, WireOptions.Untrusted));
    }
}
