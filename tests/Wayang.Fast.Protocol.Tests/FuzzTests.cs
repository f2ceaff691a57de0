using System.Buffers;
using CsCheck;
using MessagePack;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Protocol.Tests;

// Input from a socket is adversarial: nothing in it may crash the reader or escape the body codec as anything
// other than the one exception type a session catches and turns into BAD_BODY.
public class FuzzTests
{
    private static readonly Gen<byte[]> Bytes = Gen.Byte.Array[0, 512];

    // Random bytes with a plausible header in front, so the reader gets past the header checks often.
    private static readonly Gen<byte[]> PlausibleFrames =
        Gen.Select(Gen.Byte[1, 12], Gen.UShort, Gen.UInt, Gen.Byte.Array[0, 300], Gen.Int[0, 8],
            (type, opcode, stream, body, lengthSkew) =>
            {
                var data = new byte[16 + body.Length];
                new FrameHeader((FrameType)type, (Opcode)opcode, stream, Math.Max(0, body.Length - 4 + lengthSkew)).Write(data);
                body.CopyTo(data, 16);
                return data;
            });

    private static readonly Gen<(byte[] Data, int[] Cuts, int Max)> Streams =
        Gen.OneOf(Bytes, PlausibleFrames, Gen.Select(PlausibleFrames, PlausibleFrames, Bytes, (a, b, c) => (byte[])[.. a, .. b, .. c]))
            .SelectMany(data => Gen.Select(Gen.Int[0, data.Length].Array[0, 20], Gen.OneOf(Gen.Const(0), Gen.Int[0, 400], Gen.Const(int.MaxValue)),
                (cuts, max) => (data, cuts, max)));

    [Fact]
    public void Reader_never_throws_on_arbitrary_bytes_in_arbitrary_splits()
    {
        Streams.Sample((data, cuts, max) =>
        {
            var buffer = TestSequences.Split(data, cuts);
            long before = buffer.Length;
            while (true)
            {
                var status = FrameReader.TryReadFrame(ref buffer, max, out var frame, out var error);
                switch (status)
                {
                    case FrameReadStatus.Complete:
                        Assert.Equal(ErrorCode.None, error);
                        Assert.InRange(frame.Header.BodyLength, 0, max);
                        Assert.Equal(before - frame.Header.TotalLength, buffer.Length);
                        before = buffer.Length;
                        continue;
                    case FrameReadStatus.Incomplete:
                        Assert.Equal(ErrorCode.None, error);
                        Assert.Equal(before, buffer.Length);
                        return;
                    case FrameReadStatus.Error:
                        Assert.Contains(error, new[] { ErrorCode.UnsupportedVersion, ErrorCode.UnknownFrameType, ErrorCode.FrameTooLarge });
                        Assert.Equal(before, buffer.Length);
                        return;
                    default:
                        Assert.Fail("status " + status);
                        return;
                }
            }
        }, iter: 3000);
    }

    private static void OnlyMessagePackExceptions<T>(byte[] body)
    {
        try
        {
            MessagePackSerializer.Deserialize<T>(new ReadOnlySequence<byte>(body), WireOptions.Untrusted);
        }
        catch (MessagePackSerializationException)
        {
            // The one documented failure: a session maps it to BAD_BODY.
        }
    }

    // Random bytes, and mutations of real bodies (which get much deeper into the formatters than noise does).
    private static readonly Gen<byte[]> Bodies =
        Gen.OneOf(
            Bytes,
            Gen.Int[0, GoldenVectors.All.Count - 1].SelectMany(i =>
            {
                var body = GoldenVectors.All[i].Body;
                if (body.Length == 0)
                    return Gen.Const(body);
                return Gen.Select(Gen.Int[0, body.Length - 1].Array[1, 4], Gen.Byte.Array[4], Gen.Int[0, body.Length],
                    (positions, values, truncate) =>
                    {
                        var copy = (byte[])body.Clone();
                        for (int k = 0; k < positions.Length; k++)
                            copy[positions[k]] = values[k];
                        return copy[..truncate];
                    });
            }));

    [Fact]
    public void Body_codec_only_throws_MessagePackSerializationException()
    {
        Bodies.Sample(body =>
        {
            OnlyMessagePackExceptions<HelloRequest>(body);
            OnlyMessagePackExceptions<WelcomeResponse>(body);
            OnlyMessagePackExceptions<ErrorBody>(body);
            OnlyMessagePackExceptions<CreditBody>(body);
            OnlyMessagePackExceptions<GoAwayBody>(body);
            OnlyMessagePackExceptions<TickRequest>(body);
            OnlyMessagePackExceptions<TickItem>(body);
            OnlyMessagePackExceptions<TenantCreateRequest>(body);
            OnlyMessagePackExceptions<TenantInfoDto>(body);
            OnlyMessagePackExceptions<TenantListResponse>(body);
            OnlyMessagePackExceptions<KeyCreateRequest>(body);
            OnlyMessagePackExceptions<KeyCreateResponse>(body);
            OnlyMessagePackExceptions<KeyListRequest>(body);
            OnlyMessagePackExceptions<KeyListResponse>(body);
            OnlyMessagePackExceptions<KeyRevokeRequest>(body);
            OnlyMessagePackExceptions<ApiKeyInfoDto>(body);
        }, iter: 3000);
    }

    [Fact]
    public void Deeply_nested_body_is_refused_by_the_untrusted_options()
    {
        // 10,000 nested one-element arrays: without a depth limit this would overflow the stack.
        var body = Enumerable.Repeat((byte)0x91, 10_000).Append((byte)0x00).ToArray();
        Assert.Throws<MessagePackSerializationException>(() =>
            MessagePackSerializer.Deserialize<object>(body, WireOptions.Untrusted));
    }
}
