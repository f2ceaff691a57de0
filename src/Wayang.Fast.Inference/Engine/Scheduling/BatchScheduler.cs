using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Engine.KvCache;
using Wayang.Fast.Inference.Engine.Model;
using Wayang.Fast.Inference.Engine.Sampling;

namespace Wayang.Fast.Inference.Engine.Scheduling;

// Iteration-level (continuous) batching, issue 8. Each Step:
//   1. drops cancelled sequences, freeing their KV blocks then and there;
//   2. decodes one token for every running sequence in one batch (decode first, so admitting new work never stalls
//      sequences already streaming); a sequence that cannot get a block makes the lowest-priority, latest-arrived
//      running sequence give way by recompute: its blocks are freed and it is requeued with its generated tokens
//      appended to its prompt, to be prefilled again later;
//   3. admits waiting sequences by priority, then requeued-before-new, then arrival, while MaxSequences, the token
//      budget left after the decodes (MaxBatchedTokens) and the cache's free blocks allow, prefilling each whole
//      prompt (no chunked prefill yet) and sampling its first token.
// Admission stops at the first waiting sequence that does not fit rather than skipping it, so a lower-priority
// request never overtakes a higher one, and nothing is admitted in a step that preempted (the blocks just freed are
// what the running sequences are short of).
//
// Submit may be called from any thread; Step (or RunAsync, which calls it) from one thread at a time.
public sealed class BatchScheduler
{
    private readonly LlamaForward _forward;
    private readonly PagedKvCache _cache;
    private readonly SchedulerOptions _options;
    private readonly ConcurrentQueue<Sequence> _incoming = new();
    private readonly List<Sequence> _waiting = [];
    private readonly List<Sequence> _running = [];
    private readonly SemaphoreSlim _signal = new(0);
    private readonly float[] _logits;
    private readonly int[] _prefillSlots;
    private readonly long[] _decodeIds;
    private readonly int[] _decodeTokens;
    private readonly int[] _decodeSlots;
    private long _nextId;
    private long _preemptions;
    private long _steps;
    private long _tokensGenerated;
    private int _runningCount;
    private int _waitingCount;

    public BatchScheduler(LlamaForward forward, PagedKvCache cache, SchedulerOptions options)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MaxBatchedTokens);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MaxSequences);
        _forward = forward;
        _cache = cache;
        _options = options;
        _logits = new float[(long)options.MaxSequences * forward.VocabSize];
        _prefillSlots = new int[options.MaxBatchedTokens];
        _decodeIds = new long[options.MaxSequences];
        _decodeTokens = new int[options.MaxSequences];
        _decodeSlots = new int[options.MaxSequences];
    }

    // True while anything is running, waiting or just submitted.
    public bool HasWork => !_incoming.IsEmpty || Volatile.Read(ref _runningCount) + Volatile.Read(ref _waitingCount) > 0;

    // Streams the sampled token ids; completes after the last (max tokens or EOS), or with an
    // OperationCanceledException when the request's token is cancelled.
    public ChannelReader<int> Submit(GenerationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.PromptTokens);
        ArgumentNullException.ThrowIfNull(request.Sampler);
        if (request.PromptTokens.Count == 0)
            throw new WayangException(ErrorCode.InvalidArgument, "the prompt is empty");
        if (request.MaxTokens <= 0)
            throw new WayangException(ErrorCode.InvalidArgument, $"max tokens {request.MaxTokens} is not positive");
        // A recompute prefills prompt plus generated tokens whole, so the budget must hold the longest such prefill.
        if (request.PromptTokens.Count + request.MaxTokens - 1 > _options.MaxBatchedTokens)
            throw new WayangException(ErrorCode.InvalidArgument,
                $"prompt of {request.PromptTokens.Count} plus {request.MaxTokens} tokens exceeds the batch budget of {_options.MaxBatchedTokens}");
        var channel = Channel.CreateUnbounded<int>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var sequence = new Sequence(Interlocked.Increment(ref _nextId), request, new Sampler(_forward.VocabSize, request.Sampler), channel.Writer);
        _incoming.Enqueue(sequence);
        _signal.Release();
        return channel.Reader;
    }

    public SchedulerMetrics GetMetrics() => new()
    {
        Running = Volatile.Read(ref _runningCount),
        Waiting = Volatile.Read(ref _waitingCount) + _incoming.Count,
        Preemptions = Interlocked.Read(ref _preemptions),
        Steps = Interlocked.Read(ref _steps),
        TokensGenerated = Interlocked.Read(ref _tokensGenerated),
    };

    // Steps while there is work and waits for Submit when there is none, until cancelled.
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            if (!HasWork)
            {
                await _signal.WaitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }
            var result = Step();
            // Waiting work that cannot be admitted while nothing runs never will be; without this the loop would spin.
            if (!result.DidWork && _runningCount == 0)
                await _signal.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public StepResult Step()
    {
        Interlocked.Increment(ref _steps);
        while (_incoming.TryDequeue(out var arrived))
            _waiting.Add(arrived);
        var cancelled = DropCancelled(_running) + DropCancelled(_waiting);
        var (decoded, preempted, finished) = DecodeRunning();
        var admitted = preempted == 0 ? AdmitWaiting(_options.MaxBatchedTokens - decoded, ref finished) : 0;
        Publish();
        return new StepResult(decoded, admitted, preempted, finished, cancelled);
    }

    private int DropCancelled(List<Sequence> sequences)
    {
        var dropped = 0;
        for (var i = sequences.Count - 1; i >= 0; i--)
        {
            var sequence = sequences[i];
            if (!sequence.Request.CancellationToken.IsCancellationRequested)
                continue;
            _cache.Free(sequence.Id);
            sequence.Writer.TryComplete(new OperationCanceledException(sequence.Request.CancellationToken));
            sequences.RemoveAt(i);
            dropped++;
        }
        return dropped;
    }

    private (int Decoded, int Preempted, int Finished) DecodeRunning()
    {
        // Most important first, so the victims (taken from the end) are always sequences not yet given a slot.
        _running.Sort(Sequence.Compare);
        var preempted = 0;
        var count = 0;
        var i = 0;
        while (i < _running.Count)
        {
            var sequence = _running[i];
            if (!_cache.CanAppend(sequence.Id, 1))
            {
                Preempt(_running.Count - 1);
                preempted++;
                continue;
            }
            _decodeIds[count] = sequence.Id;
            _decodeTokens[count] = sequence.Tokens[^1];
            if (!_cache.TryAppend(sequence.Id, _decodeTokens.AsSpan(count, 1), _decodeSlots.AsSpan(count, 1)))
                throw new InvalidOperationException("The KV cache refused an append it said it could take.");
            count++;
            i++;
        }
        if (count == 0)
            return (0, preempted, 0);
        var vocab = _forward.VocabSize;
        _forward.Decode(_cache, _decodeIds.AsSpan(0, count), _decodeTokens.AsSpan(0, count), _decodeSlots.AsSpan(0, count), _logits.AsSpan(0, count * vocab));
        var finished = 0;
        // Back to front so removing a finished sequence leaves the rows still to visit where they were.
        for (var row = count - 1; row >= 0; row--)
        {
            if (Emit(_running[row], _logits.AsSpan(row * vocab, vocab)))
            {
                _running.RemoveAt(row);
                finished++;
            }
        }
        return (count, preempted, finished);
    }

    // Recompute preemption: the K/V is dropped and rebuilt by prefilling prompt plus generated tokens on readmission.
    private void Preempt(int index)
    {
        var victim = _running[index];
        _running.RemoveAt(index);
        _cache.Free(victim.Id);
        victim.Requeued = true;
        _waiting.Add(victim);
        Interlocked.Increment(ref _preemptions);
    }

    private int AdmitWaiting(int budget, ref int finished)
    {
        _waiting.Sort(Sequence.Compare);
        var admitted = 0;
        var vocab = _forward.VocabSize;
        while (_waiting.Count > 0 && _running.Count < _options.MaxSequences)
        {
            var sequence = _waiting[0];
            var tokens = CollectionsMarshal.AsSpan(sequence.Tokens);
            if (tokens.Length > budget || !_cache.CanAllocate(tokens))
                break;
            if (!_cache.TryAddSequence(sequence.Id, tokens, _prefillSlots, out var cached))
                throw new InvalidOperationException("The KV cache refused a sequence it said it could take.");
            _waiting.RemoveAt(0);
            // Reused prefix blocks cost no compute, but the budget counts whole prompts so it bounds the worst step.
            budget -= tokens.Length;
            admitted++;
            var logits = _logits.AsSpan(0, vocab);
            if (cached == tokens.Length)
            {
                // Every token's K/V was reused, yet the last one's logits are needed: readmit all but the last token
                // (its final block is now partial, so not a prefix hit), prefill what that leaves, decode the last.
                _cache.Free(sequence.Id);
                var head = tokens[..^1];
                if (!_cache.TryAddSequence(sequence.Id, head, _prefillSlots, out cached))
                    throw new InvalidOperationException("The KV cache refused blocks it had just released.");
                if (cached < head.Length)
                    _forward.Prefill(_cache, sequence.Id, head[cached..], _prefillSlots.AsSpan(0, head.Length - cached), cached, logits);
                if (!_cache.TryAppend(sequence.Id, tokens[^1..], _prefillSlots.AsSpan(0, 1)))
                    throw new InvalidOperationException("The KV cache refused blocks it had just released.");
                _forward.Decode(_cache, [sequence.Id], tokens[^1..], _prefillSlots.AsSpan(0, 1), logits);
            }
            else
            {
                _forward.Prefill(_cache, sequence.Id, tokens[cached..], _prefillSlots.AsSpan(0, tokens.Length - cached), cached, logits);
            }
            if (Emit(sequence, logits))
                finished++;
            else
                _running.Add(sequence);
        }
        return admitted;
    }

    // Samples, streams and records one token; true (blocks freed, stream completed) when the sequence is done.
    private bool Emit(Sequence sequence, Span<float> logits)
    {
        var token = sequence.Sampler.Sample(logits);
        sequence.Tokens.Add(token);
        sequence.Generated++;
        Interlocked.Increment(ref _tokensGenerated);
        sequence.Writer.TryWrite(token);
        if (sequence.Generated < sequence.Request.MaxTokens && token != _options.EosTokenId)
            return false;
        _cache.Free(sequence.Id);
        sequence.Writer.TryComplete();
        return true;
    }

    private void Publish()
    {
        Volatile.Write(ref _runningCount, _running.Count);
        Volatile.Write(ref _waitingCount, _waiting.Count);
    }

    private sealed class Sequence(long id, GenerationRequest request, Sampler sampler, ChannelWriter<int> writer)
    {
        public long Id { get; } = id;

        public GenerationRequest Request { get; } = request;

        public Sampler Sampler { get; } = sampler;

        public ChannelWriter<int> Writer { get; } = writer;

        // Prompt then generated tokens. The cache holds all but the last generated one, which the next decode feeds.
        public List<int> Tokens { get; } = [.. request.PromptTokens];

        public int Generated { get; set; }

        public bool Requeued { get; set; }

        // Higher priority first; within a priority, preempted work before new, then by arrival (ids rise with it).
        public static int Compare(Sequence? x, Sequence? y)
        {
            ArgumentNullException.ThrowIfNull(x);
            ArgumentNullException.ThrowIfNull(y);
            var byPriority = y.Request.Priority.CompareTo(x.Request.Priority);
            if (byPriority != 0)
                return byPriority;
            var byRequeue = y.Requeued.CompareTo(x.Requeued);
            return byRequeue != 0 ? byRequeue : x.Id.CompareTo(y.Id);
        }
    }
}
