using System.Buffers.Binary;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Tests;

public sealed class FramingTests
{
    private static byte[] RawHeader(uint length, byte version, byte type, uint streamId = 0, ushort opcode = 0)
    {
        var h = new byte[FrameHeader.Size];
        BinaryPrimitives.WriteUInt32LittleEndian(h, length);
        h[4] = version;
        h[5] = type;
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(8), streamId);
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(12), opcode);
        return h;
    }

    [Fact]
    public async Task Oversize_frame_is_refused_from_the_header_and_other_connections_keep_working()
    {
        await using var server = await TestServer.StartAsync(o => o.MaxFrameBytes = 4096);
        await using var bystander = await server.ConnectAsync();
        await using var client = await server.ConnectAsync();
        // Only the header: the server must not wait for the 4097 body bytes.
        await client.SendAsync(RawHeader(4097, 1, (byte)FrameType.Request, 1, (ushort)Opcode.Ping));
        await client.ExpectFatalAsync(ErrorCode.FrameTooLarge);
        await bystander.PingAsync(1);
    }

    [Fact]
    public async Task Unknown_frame_type_is_fatal()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await server.ConnectAsync();
        await client.SendAsync(RawHeader(0, 1, 99, 1, 1));
        await client.ExpectFatalAsync(ErrorCode.UnknownFrameType);
        await using var other = await server.ConnectAsync();
        await other.PingAsync(1);
    }

    [Fact]
    public async Task Unknown_frame_version_is_fatal_even_before_hello()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await RawClient.ConnectAsync(server.EndPoint);
        await client.SendAsync(RawHeader(0, 7, (byte)FrameType.Hello));
        await client.ExpectFatalAsync(ErrorCode.UnsupportedVersion);
    }

    [Fact]
    public async Task Unknown_opcode_is_not_fatal()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await server.ConnectAsync();
        await client.SendAsync(FrameType.Request, (Opcode)0x7777, 5);
        await client.ExpectErrorAsync(ErrorCode.UnknownOpcode, 5);
        await client.PingAsync(7);
    }

    [Fact]
    public async Task Bad_messagepack_body_is_bad_body_on_that_stream()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await server.ConnectAsync();
        await client.SendAsync(FrameType.Request, Opcode.KeyCreate, 9, [0xc1, 0xff, 0x00]);
        await client.ExpectErrorAsync(ErrorCode.BadBody, 9);
        // A well-formed body of the wrong shape is BAD_BODY too.
        await client.SendAsync(FrameType.Request, Opcode.TenantCreate, 11, [0x93, 0x01, 0x02, 0x03]);
        await client.ExpectErrorAsync(ErrorCode.BadBody, 11);
        await client.PingAsync(13);
    }

    [Fact]
    public async Task Ping_frame_is_echoed_as_pong()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await server.ConnectAsync();
        byte[] payload = [1, 2, 3, 4, 5, 6, 7, 8];
        await client.SendAsync(FrameType.Ping, Opcode.None, 0, payload);
        var pong = await client.ExpectFrameAsync();
        Assert.Equal(FrameType.Pong, pong.Type);
        Assert.Equal(0u, pong.StreamId);
        Assert.Equal(payload, pong.Body);
    }

    [Fact]
    public async Task Pipelined_pings_are_all_answered_in_order()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await server.ConnectAsync();
        var batch = new List<byte>();
        for (uint i = 1; i <= 64; i++)
            batch.AddRange(RawClient.Frame(FrameType.Request, Opcode.Ping, i));
        await client.SendAsync([.. batch]);
        for (uint i = 1; i <= 64; i++)
        {
            var reply = await client.ExpectFrameAsync();
            Assert.Equal((FrameType.Response, i), (reply.Type, reply.StreamId));
        }
    }

    // A conversation whose replies are deterministic (all synchronous), sent with different fragmentations.
    private static byte[] Conversation(string key)
    {
        var bytes = new List<byte>();
        bytes.AddRange(RawClient.Hello(key));
        for (uint i = 1; i <= 10; i++)
            bytes.AddRange(RawClient.Frame(FrameType.Request, Opcode.Ping, i));
        bytes.AddRange(RawClient.Frame(FrameType.Request, (Opcode)0x4242, 20));
        bytes.AddRange(RawClient.Frame(FrameType.Ping, Opcode.None, 0, [9, 8, 7]));
        bytes.AddRange(RawClient.MessageFrame(FrameType.Request, Opcode.KeyList, 21, new KeyListRequest()));
        bytes.AddRange(RawClient.Frame(FrameType.Request, Opcode.KeyCreate, 22, [0xc1]));
        bytes.AddRange(RawClient.Frame(FrameType.Request, Opcode.TenantList, 23));
        return [.. bytes];
    }

    private static async Task<List<string>> Replies(TestServer server, byte[] conversation, Func<int, int> nextChunk)
    {
        await using var client = await RawClient.ConnectAsync(server.EndPoint);
        for (int offset = 0; offset < conversation.Length;)
        {
            int n = Math.Min(nextChunk(offset), conversation.Length - offset);
            await client.SendAsync(conversation[offset..(offset + n)]);
            offset += n;
        }
        var replies = new List<string>();
        for (int i = 0; i < 16; i++)
        {
            var frame = await client.ExpectFrameAsync();
            // WELCOME carries a fresh session id; everything else must match byte for byte.
            replies.Add(frame.Type == FrameType.Welcome ? "WELCOME" : frame + " " + Convert.ToHexString(frame.Body));
        }
        return replies;
    }

    [Fact]
    public async Task Fragmented_input_gives_the_same_replies_as_one_write()
    {
        await using var server = await TestServer.StartAsync();
        var conversation = Conversation(server.AdminKey);
        var whole = await Replies(server, conversation, _ => int.MaxValue);
        Assert.Equal("WELCOME", whole[0]);
        Assert.Contains(whole, r => r.StartsWith("ERROR UNKNOWN_OPCODE stream=20", StringComparison.Ordinal));

        var oneByte = await Replies(server, conversation, _ => 1);
        Assert.Equal(whole, oneByte);

        for (int seed = 1; seed <= 5; seed++)
        {
            var random = new Random(seed);
            var split = await Replies(server, conversation, _ => random.Next(1, 40));
            Assert.Equal(whole, split);
        }
    }
}
