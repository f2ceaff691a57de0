using System.Buffers;
using System.Threading.Channels;
using MessagePack;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol;

namespace Wayang.Fast.Client.Internal;

// A server stream: items are decoded in the read loop and queued. The queue is bounded in practice by the
// credit the client grants: the server may not send more than it holds.
internal sealed class StreamCall<TItem> : PendingOperation
{
    private readonly Channel<TItem> _items = Channel.CreateUnbounded<TItem>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    public ChannelReader<TItem> Reader => _items.Reader;

    public override bool IsStream => true;

    public override void OnStreamItem(in ReadOnlySequence<byte> body)
    {
        TItem item;
        try
        {
            item = MessagePackSerializer.Deserialize<TItem>(body, WireOptions.Untrusted);
        }
        catch (MessagePackSerializationException e)
        {
            _items.Writer.TryComplete(new WayangException(new WayangError(ErrorCode.BadBody, "A stream item could not be decoded: " + e.Message), e));
            return;
        }
        _items.Writer.TryWrite(item);
    }

    public override void OnResponse(in ReadOnlySequence<byte> body) =>
        OnError(new WayangError(ErrorCode.BadBody, "Unexpected RESPONSE frame for a streaming call."));

    public override void OnEnd() => _items.Writer.TryComplete();

    public override void OnError(WayangError error) => _items.Writer.TryComplete(new WayangException(error));
}
