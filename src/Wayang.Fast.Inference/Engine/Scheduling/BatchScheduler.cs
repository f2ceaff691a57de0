using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Engine.KvCache;
using Wayang.Fast.Inference.Engine.Model;
using Wayang.Fast.Inference.Engine.Sampling;

namespace Wayang.Fast.Inference.Engine.Scheduling;

// Iteration-level (continuous) batching with chunked prefill, issue 8. Every sequence has tokens (prompt, then
// generated) of which the first Computed have K/V in the cache; a step feeds some of the rest, and a sequence whose
// every token has been fed samples its next one. Each Step, within MaxBatchedTokens:
//   1. drops cancelled sequences, freeing their KV blocks then and there;
//   2. decode first: one token for every decoding sequence, so admitting new work never stalls sequences already
//      streaming; a sequence that cannot get a block makes the lowest-priority, latest-arrived running sequence give
//      way by recompute: its blocks are freed and it is requeued with its generated tokens appended to its prompt, to
//      be prefilled again (in chunks, like any prompt);
//   3. continues the running sequences' chunked prefills with the budget left, most important first;
//   4. admits waiting sequences by priority, then requeued-before-new, then arrival, while MaxSequences, the budget and
//      the cache allow, each with the first chunk of its prompt after the longest cached prefix.
// All of it runs as one forward pass, so the weights are read once per step. A prompt's first token is sampled only
// once its last chunk has run.
//
// K/V blocks are allocated chunk by chunk (TryAppend), never for a whole prompt up front: the cache registers a full
// block for prefix reuse as its tokens are written, so allocating ahead would let another request reuse blocks whose
// K/V nobody has computed yet. Every token appended in a step is computed by that step's forward pass, and that pass
// writes each layer's K/V for all rows before any row attends, so a block reused within the same step is also sound.
// Admission instead checks that the cache could hold the whole prompt, counting the blocks that sequences already
// admitted still need for their prefill (reserved), so admitting does not set up its own preemption.
//
// Admission stops at the first waiting sequence that does not fit rather than skipping it, so a lower-priority
// request never overtakes a higher one, and nothing is admitted in a step that preempted (the blocks just freed are
// what the running sequences are short of).
//
// Submit may be called from any thread; Step (or RunAsync, which calls it) from one thread at a time.
public sealed class BatchScheduler
{
    private readonly IForwardPass _forward;
    private readonly PagedKvCache _cache;
    private readonly SchedulerOptions _options;
    private readonly int _blockSize;
    private readonly int _maxTokensPerSequence;
    private readonly ConcurrentQueue<Sequence> _incoming = new();
    private readonly List<Sequence> _waiting = [];
    private readonly List<Sequence> _running = [];
    private readonly SemaphoreSlim _signal = new(0);
    // The step's batch, one row per token fed; reused every step.
    private readonly long[] _rowIds;
    private readonly int[] _rowTokens;
    private readonly int[] _rowPositions;
    private readonly int[] _rowSlots;
    // Rows whose logits are sampled (a decode, or the last chunk of a prefill) and their sequences; at most one each.
    private readonly int[] _logitRows;
    private readonly Sequence?[] _logitSequences;
    private readonly float[] _logits;
    private int _rowCount;
    private int _logitCount;
    private long _nextId;
    private long _preemptions;
    private long _steps;
    private long _tokensGenerated;
    private long _batchWaits;
    private int _runningCount;
    private int _waitingCount;

    public BatchScheduler(IForwardPass forward, PagedKvCache cache, SchedulerOptions options)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MaxSequences);
        // Every running sequence's decode must fit in one step, or the least important would starve.
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxBatchedTokens, options.MaxSequences);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxBatchWait, TimeSpan.Zero);
        // SemaphoreSlim's timeout limit.
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.MaxBatchWait, TimeSpan.FromMilliseconds(int.MaxValue));
        _forward = forward;
        _cache = cache;
        _options = options;
        _blockSize = cache.BlockSize;
        _maxTokensPerSequence = cache.MaxTokensPerSequence;
        _rowIds = new long[options.MaxBatchedTokens];
        _rowTokens = new int[options.MaxBatchedTokens];
        _rowPositions = new int[options.MaxBatchedTokens];
        _rowSlots = new int[options.MaxBatchedTokens];
        _logitRows = new int[options.MaxSequences];
        _logitSequences = new Sequence?[options.MaxSequences];
        _logits = new float[(long)options.MaxSequences * forward.VocabSize];
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
        var promptLength = request.PromptTokens.Count;
        if (promptLength == 0)
            throw new WayangException(ErrorCode.InvalidArgument, "the prompt is empty");
        if (request.MaxTokens <= 0)
            throw new WayangException(ErrorCode.InvalidArgument, $"max tokens {request.MaxTokens} is not positive");
        // The last sampled token is never fed back, so a sequence holds at most prompt + max tokens - 1 tokens of K/V.
        // Only what could never fit is refused: anything else runs, alone if it must (prompts of any length are
        // prefilled in chunks).
        var needed = (long)promptLength + request.MaxTokens - 1;
        if (needed > _maxTokensPerSequence)
            throw new WayangException(ErrorCode.ContextLengthExceeded,
                $"a prompt of {promptLength} tokens plus {request.MaxTokens} to generate needs {needed} KV cache slots; the cache holds {_maxTokensPerSequence} per sequence");
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
        BatchWaits = Interlocked.Read(ref _batchWaits),
    };

    // Run on a thread of its own (TaskCreationOptions.LongRunning): a step blocks its thread for the whole forward pass,
    // which must not hold a thread-pool thread the host's I/O needs. Ends cancelled when the token fires.
    public Task RunAsync(CancellationToken cancellationToken) =>
        Task.Factory.StartNew(() => Run(cancellationToken), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    // Steps while there is work and blocks on the submit signal when there is none, until cancelled
    // (OperationCanceledException). Call from one thread; RunAsync starts it on a dedicated one.
    public void Run(CancellationToken cancellationToken)
    {
        var idle = true;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!HasWork)
            {
                idle = true;
                _signal.Wait(cancellationToken);
                continue;
            }
            if (idle)
            {
                idle = false;
                WaitForBurst(cancellationToken);
            }
            var result = Step();
            // Waiting work that cannot be admitted while nothing runs never will be; without this the loop would spin.
            if (!result.DidWork && _runningCount == 0)
                _signal.Wait(cancellationToken);
        }
    }

    // Holds the first step after idle until MaxSequences are queued or MaxBatchWait has passed. Each Submit releases
    // the signal once, so this sleeps on it (no spinning) and rechecks the queue on every wake.
    private void WaitForBurst(CancellationToken cancellationToken)
    {
        var wait = _options.MaxBatchWait;
        if (wait <= TimeSpan.Zero)
            return;
        Interlocked.Increment(ref _batchWaits);
        var start = Stopwatch.GetTimestamp();
        while (_incoming.Count + _waiting.Count < _options.MaxSequences)
        {
            var remaining = wait - Stopwatch.GetElapsedTime(start);
            if (remaining <= TimeSpan.Zero || !_signal.Wait(remaining, cancellationToken))
                return;
        }
    }

    public StepResult Step()
    {
        var step = Interlocked.Increment(ref _steps);
        while (_incoming.TryDequeue(out var arrived))
            _waiting.Add(arrived);
        var cancelled = DropCancelled(_running) + DropCancelled(_waiting);
        _rowCount = 0;
        _logitCount = 0;
        var budget = _options.MaxBatchedTokens;
        // Most important first: decodes and chunks go to them first, and victims are taken from the end.
        _running.Sort(Sequence.Compare);
        var decoded = ScheduleDecodes(step, ref budget, out var preempted);
        var prefillTokens = ScheduleRunningPrefills(step, ref budget, ref preempted);
        var admitted = preempted == 0 ? AdmitWaiting(step, ref budget, ref prefillTokens) : 0;
        var finished = _rowCount > 0 ? RunBatch() : 0;
        Publish();
        return new StepResult(decoded, admitted, preempted, finished, cancelled, prefillTokens);
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

    private int ScheduleDecodes(long step, ref int budget, out int preempted)
    {
        preempted = 0;
        var decoded = 0;
        var i = 0;
        // MaxBatchedTokens >= MaxSequences, so the budget never runs out here; the check only keeps the rows in bounds.
        while (i < _running.Count && budget > 0)
        {
            var sequence = _running[i];
            if (!sequence.IsDecoding)
            {
                i++;
                continue;
            }
            if (!_cache.CanAppend(sequence.Id, 1))
            {
                // Everything from i on has no rows yet, so the last sequence (possibly this one) can go.
                Preempt(_running.Count - 1);
                preempted++;
                continue;
            }
            AppendRows(sequence, 1, step);
            budget--;
            decoded++;
            i++;
        }
        return decoded;
    }

    private int ScheduleRunningPrefills(long step, ref int budget, ref int preempted)
    {
        var tokens = 0;
        var i = 0;
        while (i < _running.Count && budget > 0)
        {
            var sequence = _running[i];
            // Decoded above (IsDecoding no longer says so: its token is now counted as computed).
            if (sequence.ScheduledStep == step)
            {
                i++;
                continue;
            }
            var chunk = Math.Min(budget, sequence.Tokens.Count - sequence.Computed);
            // Short of blocks, a smaller chunk is still progress; only when not one token fits does someone give way.
            chunk = Math.Min(chunk, AppendRoom(sequence));
            if (chunk == 0 || !_cache.CanAppend(sequence.Id, chunk))
            {
                // The least important sequence not yet in this step's batch gives way: this one at worst, since
                // everything before it has rows (decodes already scheduled are not undone). Then index i holds this
                // sequence again, to retry with the freed blocks, or the next one if this one went.
                var victim = _running.Count - 1;
                while (_running[victim].ScheduledStep == step)
                    victim--;
                Preempt(victim);
                preempted++;
                continue;
            }
            AppendRows(sequence, chunk, step);
            budget -= chunk;
            tokens += chunk;
            i++;
        }
        return tokens;
    }

    // Tokens the sequence can append without more blocks than are available: the rest of its last block plus
    // whole free (or evictable) blocks. Its last block is never shared (prefix reuse shares only full blocks).
    private int AppendRoom(Sequence sequence)
    {
        var partial = sequence.Computed % _blockSize;
        var room = (partial == 0 ? 0 : _blockSize - partial) + ((long)_cache.AvailableBlocks * _blockSize);
        return (int)Math.Min(room, _maxTokensPerSequence - sequence.Computed);
    }

    private int AdmitWaiting(long step, ref int budget, ref int prefillTokens)
    {
        _waiting.Sort(Sequence.Compare);
        var reserved = ReservedBlocks();
        var admitted = 0;
        while (_waiting.Count > 0 && _running.Count < _options.MaxSequences && budget > 0)
        {
            var sequence = _waiting[0];
            var tokens = CollectionsMarshal.AsSpan(sequence.Tokens);
            var needed = _cache.BlocksNeeded(tokens);
            if (needed < 0 || needed > _cache.AvailableBlocks - reserved)
                break;
            if (!_cache.TryAddSequence(sequence.Id, tokens, budget, _rowSlots.AsSpan(_rowCount), out var cached))
                throw new InvalidOperationException("The KV cache refused a sequence it said it could take.");
            _waiting.RemoveAt(0);
            sequence.Computed = cached;
            // The cached prefix costs no compute, so only the tokens after it count against the budget. The prefix
            // match stops short of the last token, so at least one is always computed.
            var chunk = Math.Min(budget, tokens.Length - cached);
            AddRows(sequence, chunk, step);
            budget -= chunk;
            prefillTokens += chunk;
            reserved += BlocksFor(tokens.Length) - BlocksFor(sequence.Computed);
            _running.Add(sequence);
            admitted++;
        }
        return admitted;
    }

    // Blocks the admitted sequences still need to finish their prefill; admission leaves them free.
    private int ReservedBlocks()
    {
        var reserved = 0;
        foreach (var sequence in _running)
        {
            if (!sequence.IsDecoding)
                reserved += BlocksFor(sequence.Tokens.Count) - BlocksFor(sequence.Computed);
        }
        return reserved;
    }

    private int BlocksFor(int tokens) => (tokens + _blockSize - 1) / _blockSize;

    // Recompute preemption: the K/V is dropped and rebuilt by prefilling prompt plus generated tokens on readmission.
    // Its full blocks stay in the prefix cache until evicted, so a readmission soon after reuses them.
    private void Preempt(int index)
    {
        var victim = _running[index];
        _running.RemoveAt(index);
        _cache.Free(victim.Id);
        victim.Computed = 0;
        victim.Requeued = true;
        _waiting.Add(victim);
        Interlocked.Increment(ref _preemptions);
    }

    private void AppendRows(Sequence sequence, int count, long step)
    {
        var tokens = CollectionsMarshal.AsSpan(sequence.Tokens).Slice(sequence.Computed, count);
        if (!_cache.TryAppend(sequence.Id, tokens, _rowSlots.AsSpan(_rowCount, count)))
            throw new InvalidOperationException("The KV cache refused an append it said it could take.");
        AddRows(sequence, count, step);
    }

    // Adds the next count tokens of the sequence, whose slots are already at _rowSlots[_rowCount..], to the batch.
    private void AddRows(Sequence sequence, int count, long step)
    {
        var tokens = CollectionsMarshal.AsSpan(sequence.Tokens).Slice(sequence.Computed, count);
        for (var t = 0; t < count; t++)
        {
            _rowIds[_rowCount + t] = sequence.Id;
            _rowTokens[_rowCount + t] = tokens[t];
            _rowPositions[_rowCount + t] = sequence.Computed + t;
        }
        _rowCount += count;
        sequence.Computed += count;
        sequence.ScheduledStep = step;
        if (sequence.Computed == sequence.Tokens.Count)
        {
            _logitRows[_logitCount] = _rowCount - 1;
            _logitSequences[_logitCount++] = sequence;
        }
    }

    private int RunBatch()
    {
        var vocab = _forward.VocabSize;
        _forward.Forward(_cache, _rowIds.AsSpan(0, _rowCount), _rowTokens.AsSpan(0, _rowCount), _rowPositions.AsSpan(0, _rowCount),
            _rowSlots.AsSpan(0, _rowCount), _logitRows.AsSpan(0, _logitCount), _logits.AsSpan(0, _logitCount * vocab));
        var finished = 0;
        for (var j = 0; j < _logitCount; j++)
        {
            var sequence = _logitSequences[j]!;
            _logitSequences[j] = null;
            if (Emit(sequence, _logits.AsSpan(j * vocab, vocab)))
            {
                _running.Remove(sequence);
                finished++;
            }
        }
        return finished;
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

        // Prompt then generated tokens; sized once for both, so appending a sampled token never grows the list.
        public List<int> Tokens { get; } = WithRoom(request.PromptTokens, request.MaxTokens);

        private static List<int> WithRoom(IReadOnlyList<int> prompt, int generated)
        {
            var tokens = new List<int>(prompt.Count + generated);
            tokens.AddRange(prompt);
            return tokens;
        }

        // Leading tokens whose K/V is in the cache (cached prefix included); the rest are still to be fed.
        public int Computed { get; set; }

        public int Generated { get; set; }

        public bool Requeued { get; set; }

        // The step that last gave this sequence rows; a sequence with rows in the current step is not preempted.
        public long ScheduledStep { get; set; }

        // Only the last sampled token is left to feed: the sequence needs one decode row.
        public bool IsDecoding => Generated > 0 && Computed == Tokens.Count - 1;

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
