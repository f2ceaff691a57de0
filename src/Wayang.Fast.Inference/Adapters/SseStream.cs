using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Contracts;

namespace Wayang.Fast.Inference.Adapters;

// One provider's reading of its server-sent events.
internal interface ISseDecoder
{
    // The provider marked the end of the completion (OpenAI's [DONE], Anthropic's message_stop).
    bool Done { get; }
    // A finish reason arrived: a clean end of the body after it is a complete answer, not a broken one.
    bool Finished { get; }
    // Adds what the event carries to output; throws JsonException on a malformed event and returns an error the
    // provider reported in the stream.
    WayangException? Read(SseItem<string> item, List<ChatDelta> output);
    void Complete(List<ChatDelta> output);
}

internal static class SseStream
{
    // Sends, then reads the event stream into deltas, applying IInferenceProvider's failure rule. The response is
    // disposed when the enumeration ends in any way, so a caller that cancels or stops early aborts the request.
    public static async IAsyncEnumerable<ChatDelta> ReadAsync(string provider, Func<CancellationToken, Task<HttpResponseMessage>> send,
        ISseDecoder decoder, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var response = await send(cancellationToken).ConfigureAwait(false);
        Stream body;
        try
        {
            body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw AdapterSupport.StreamFailure(provider, ex, yielded: false);
        }
        await using var bodyScope = body.ConfigureAwait(false);
        var items = SseParser.Create(body).EnumerateAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);
        await using var itemsScope = items.ConfigureAwait(false);
        var batch = new List<ChatDelta>();
        bool yielded = false;
        while (!decoder.Done)
        {
            bool more;
            try
            {
                more = await items.MoveNextAsync().ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                cancellationToken.ThrowIfCancellationRequested();
                throw AdapterSupport.StreamFailure(provider, ex, yielded);
            }
            batch.Clear();
            if (!more)
            {
                if (!decoder.Finished)
                    throw AdapterSupport.StreamEndedEarly(provider, yielded);
                decoder.Complete(batch);
            }
            else
            {
                WayangException? reported;
                try
                {
                    reported = decoder.Read(items.Current, batch);
                }
                catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or FormatException)
                {
                    throw AdapterSupport.StreamFailure(provider, ex, yielded);
                }
                if (reported is not null)
                    throw reported;
            }
            foreach (var delta in batch)
            {
                // Events already buffered would otherwise still go out after the caller cancelled.
                cancellationToken.ThrowIfCancellationRequested();
                yielded = true;
                yield return delta;
            }
        }
    }
}
