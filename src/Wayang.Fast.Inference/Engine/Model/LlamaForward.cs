using Wayang.Fast.Inference.Engine.Kernels;
using Wayang.Fast.Inference.Engine.KvCache;

namespace Wayang.Fast.Inference.Engine.Model;

// The llama forward pass over a paged KV cache: embedding, per layer RMSNorm -> Q/K/V -> rope -> append K/V at the
// cache's slots -> paged attention (grouped-query) -> output projection + residual -> RMSNorm -> SwiGLU feed-forward
// + residual, then the final RMSNorm and output head. It owns the per-layer K/V buffers; the PagedKvCache passed in
// owns the bookkeeping (block tables, lengths, slots) and must have the same block count and size.
//
// Every step is one batch of query tokens, each with its position, slot, block table and attention length, so decode
// (one token per sequence), prefill (a prompt's tokens, whole or a chunk) and any mix of them (Forward, what the
// scheduler runs so the weights are read once per step) share the code: a token at position p attends over the first
// p + 1 tokens of its own table, which is causal attention through the decode kernel. The projections are MatMuls over
// the whole batch. Each layer appends every row's K/V before any row attends, so a row may read K/V that another row
// of the same batch writes (a prefix block registered by one sequence's chunk and reused by another in the same step).
//
// Generic over the backend's buffer: weights, K/V and activations live in TBuffer (IDeviceMemory allocates them), the
// weights uploaded once here. Per step the host hands the kernels only ints (positions, slots, block tables, lengths,
// pending block copies) and reads back only the requested rows' logits. On the CPU (LlamaForward) TBuffer is
// Memory<float> over managed arrays, the weights are the model's own arrays, and nothing is copied that was not before.
public class LlamaForward<TBuffer> : IForwardPass, IDisposable
    where TBuffer : struct
{
    private readonly LlamaModel _model;
    private readonly IKernels<TBuffer> _kernels;
    private readonly IDeviceMemory<TBuffer> _memory;
    private readonly KvLayout _layout;
    private readonly int _numBlocks;
    private readonly List<TBuffer> _uploaded = [];
    private readonly TBuffer _tokenEmbedding;
    private readonly TBuffer _outputNorm;
    private readonly TBuffer _output;
    private readonly LayerWeights[] _layers;
    private readonly TBuffer[] _keyCache;
    private readonly TBuffer[] _valueCache;
    private Scratch? _scratch;
    private bool _disposed;

    public LlamaForward(LlamaModel model, IKernels<TBuffer> kernels, IDeviceMemory<TBuffer> memory, int numBlocks, int blockSize)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(kernels);
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numBlocks);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        _model = model;
        _kernels = kernels;
        _memory = memory;
        _numBlocks = numBlocks;
        _layout = new KvLayout(blockSize, model.Parameters.HeadCountKv, model.Parameters.HeadDim);
        var layers = model.Layers.Count;
        _keyCache = new TBuffer[layers];
        _valueCache = new TBuffer[layers];
        try
        {
            // Each array once: a tied output head is the token embedding itself.
            var uploads = new Dictionary<float[], TBuffer>(ReferenceEqualityComparer.Instance);
            TBuffer Upload(float[] data)
            {
                if (!uploads.TryGetValue(data, out var buffer))
                {
                    buffer = memory.Upload(data);
                    uploads.Add(data, buffer);
                    _uploaded.Add(buffer);
                }
                return buffer;
            }
            _tokenEmbedding = Upload(model.TokenEmbedding);
            _outputNorm = Upload(model.OutputNorm);
            _output = Upload(model.Output);
            _layers = new LayerWeights[layers];
            for (var l = 0; l < layers; l++)
            {
                var w = model.Layers[l];
                _layers[l] = new LayerWeights(Upload(w.AttentionNorm), Upload(w.Query), Upload(w.Key), Upload(w.Value), Upload(w.AttentionOutput),
                    Upload(w.FeedForwardNorm), Upload(w.Gate), Upload(w.Up), Upload(w.Down));
                _keyCache[l] = memory.Allocate((long)numBlocks * _layout.BlockStride);
                _valueCache[l] = memory.Allocate((long)numBlocks * _layout.BlockStride);
            }
        }
        catch
        {
            Release();
            throw;
        }
    }

    public LlamaModel Model => _model;

    public int VocabSize => _model.Parameters.VocabSize;

    // Runs a prompt already admitted with cache.TryAddSequence: tokens are the prompt after its cachedTokens reused ones
    // and slotMapping the slots TryAddSequence wrote for them. logits [vocab] receives the last token's.
    public void Prefill(PagedKvCache cache, long sequenceId, ReadOnlySpan<int> tokens, ReadOnlySpan<int> slotMapping, int cachedTokens, Span<float> logits)
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokens.Length);
        CheckCache(cache);
        if (cache.GetLength(sequenceId) != cachedTokens + tokens.Length)
            throw new ArgumentException("The sequence's cached length is not cachedTokens plus the tokens.", nameof(tokens));
        var n = tokens.Length;
        var table = cache.GetBlockTable(sequenceId);
        var maxBlocks = table.Length;
        var s = Prepare(n, maxBlocks);
        for (var i = 0; i < n; i++)
        {
            s.Positions[i] = cachedTokens + i;
            s.Lengths[i] = cachedTokens + i + 1;
            table.CopyTo(s.Tables.AsSpan(i * maxBlocks, maxBlocks));
        }
        s.LogitRows[0] = n - 1;
        Run(cache, tokens, slotMapping, n, maxBlocks, logitRowCount: 1, logits);
    }

    // One decode step for a batch of sequences, each having just appended its token with cache.TryAppend (so its
    // length counts it); slotMapping[i] is the slot TryAppend gave sequence i. logits is [sequences x vocab].
    public void Decode(PagedKvCache cache, ReadOnlySpan<long> sequenceIds, ReadOnlySpan<int> tokens, ReadOnlySpan<int> slotMapping, Span<float> logits)
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequenceIds.Length);
        if (tokens.Length != sequenceIds.Length)
            throw new ArgumentException("One token per sequence.", nameof(tokens));
        CheckCache(cache);
        var n = sequenceIds.Length;
        var maxBlocks = 0;
        foreach (var id in sequenceIds)
            maxBlocks = Math.Max(maxBlocks, cache.GetBlockTable(id).Length);
        var s = Prepare(n, maxBlocks);
        // Padding entries are never read (a sequence reads only the blocks its length covers), so zeros are safe.
        Array.Clear(s.Tables, 0, n * maxBlocks);
        for (var i = 0; i < n; i++)
        {
            var length = cache.GetLength(sequenceIds[i]);
            s.Positions[i] = length - 1;
            s.Lengths[i] = length;
            cache.GetBlockTable(sequenceIds[i]).CopyTo(s.Tables.AsSpan(i * maxBlocks, maxBlocks));
            s.LogitRows[i] = i;
        }
        Run(cache, tokens, slotMapping, n, maxBlocks, logitRowCount: n, logits);
    }

    // One step's batch, any mix of sequences' decode tokens and prefill chunks: row i feeds tokens[i] of sequence
    // sequenceIds[i] at position positions[i] into slot slotMapping[i] and attends over that sequence's first
    // positions[i] + 1 tokens. Every row's token must already be in the cache (TryAddSequence/TryAppend wrote its slot).
    // logits receives, in order, the logits of the rows listed in logitRows: [logitRows x vocab].
    public void Forward(PagedKvCache cache, ReadOnlySpan<long> sequenceIds, ReadOnlySpan<int> tokens, ReadOnlySpan<int> positions,
        ReadOnlySpan<int> slotMapping, ReadOnlySpan<int> logitRows, Span<float> logits)
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequenceIds.Length);
        var n = sequenceIds.Length;
        if (tokens.Length != n || positions.Length != n)
            throw new ArgumentException("One token and one position per row.", nameof(tokens));
        if (logitRows.Length > n)
            throw new ArgumentException("More logit rows than rows.", nameof(logitRows));
        CheckCache(cache);
        var maxBlocks = 0;
        for (var i = 0; i < n; i++)
        {
            // Rows of one sequence are usually adjacent (a chunk), so the table lookup is skipped for repeats.
            if (i == 0 || sequenceIds[i] != sequenceIds[i - 1])
                maxBlocks = Math.Max(maxBlocks, cache.GetBlockTable(sequenceIds[i]).Length);
        }
        var s = Prepare(n, maxBlocks);
        var table = ReadOnlySpan<int>.Empty;
        var length = 0;
        for (var i = 0; i < n; i++)
        {
            if (i == 0 || sequenceIds[i] != sequenceIds[i - 1])
            {
                table = cache.GetBlockTable(sequenceIds[i]);
                length = cache.GetLength(sequenceIds[i]);
            }
            if ((uint)positions[i] >= (uint)length)
                throw new ArgumentOutOfRangeException(nameof(positions), positions[i], $"row {i}: position outside sequence {sequenceIds[i]}'s {length} cached tokens");
            s.Positions[i] = positions[i];
            s.Lengths[i] = positions[i] + 1;
            var rowTable = s.Tables.AsSpan(i * maxBlocks, maxBlocks);
            table.CopyTo(rowTable);
            // Padding entries are never read (a row reads only the blocks its length covers), so zeros are safe.
            rowTable[table.Length..].Clear();
        }
        for (var j = 0; j < logitRows.Length; j++)
        {
            if ((uint)logitRows[j] >= (uint)n)
                throw new ArgumentOutOfRangeException(nameof(logitRows), logitRows[j], "logit row outside the batch");
            s.LogitRows[j] = logitRows[j];
        }
        Run(cache, tokens, slotMapping, n, maxBlocks, logitRows.Length, logits);
    }

    private void CheckCache(PagedKvCache cache)
    {
        if (cache.TotalBlocks != _numBlocks || cache.BlockSize != _layout.BlockSize)
            throw new ArgumentException("The KV cache's block count or size differs from the forward pass's buffers.", nameof(cache));
    }

    // Activations are rebuilt only when a step has more rows than any before; the block-table array, which also grows
    // with the longest sequence (a block more every BlockSize decode steps), grows on its own and by doubling, so
    // steady decoding allocates nothing.
    private Scratch Prepare(int tokens, int maxBlocks)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_scratch is null || _scratch.Tokens < tokens)
        {
            var grown = new Scratch(Math.Max(tokens, _scratch?.Tokens ?? 0), _model.Parameters, _memory);
            _scratch?.Free(_memory);
            _scratch = grown;
        }
        _scratch.EnsureTables((long)tokens * maxBlocks);
        return _scratch;
    }

    // The rows listed in the scratch's first logitRowCount LogitRows get logits, written consecutively to logits.
    private void Run(PagedKvCache cache, ReadOnlySpan<int> tokens, ReadOnlySpan<int> slotMapping, int n, int maxBlocks, int logitRowCount, Span<float> logits)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var p = _model.Parameters;
        int embd = p.EmbeddingLength, qDim = p.HeadCount * p.HeadDim, kvDim = p.HeadCountKv * p.HeadDim, ff = p.FeedForwardLength;
        var logitRows = logitRowCount;
        if (slotMapping.Length < n)
            throw new ArgumentException("One slot per token.", nameof(slotMapping));
        if (logits.Length < logitRows * p.VocabSize)
            throw new ArgumentException($"logits needs {logitRows * p.VocabSize} floats.", nameof(logits));
        var k = _kernels;
        var m = _memory;
        var s = _scratch!;
        var slots = slotMapping[..n];
        var positions = s.Positions.AsSpan(0, n);
        var lengths = s.Lengths.AsSpan(0, n);
        var tables = s.Tables.AsSpan(0, n * maxBlocks);
        for (var i = 0; i < n; i++)
        {
            if ((uint)tokens[i] >= (uint)p.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(tokens), tokens[i], "token id outside the vocabulary");
        }
        TBuffer x = m.Slice(s.X, 0, n * embd), xb = m.Slice(s.Xb, 0, n * embd);
        TBuffer q = m.Slice(s.Q, 0, n * qDim), att = m.Slice(s.Attention, 0, n * qDim);
        TBuffer key = m.Slice(s.K, 0, n * kvDim), value = m.Slice(s.V, 0, n * kvDim);
        TBuffer gate = m.Slice(s.Gate, 0, n * ff), up = m.Slice(s.Up, 0, n * ff);

        for (var i = 0; i < n; i++)
            m.Copy(m.Slice(_tokenEmbedding, (long)tokens[i] * embd, embd), m.Slice(x, (long)i * embd, embd));

        // Copy-on-write blocks recorded by the cache's appends must hold their source's K/V before this step writes.
        var copies = cache.PendingCopies;
        for (var l = 0; l < _keyCache.Length && !copies.IsEmpty; l++)
            k.CopyBlocks(_keyCache[l], _valueCache[l], copies, _layout);
        cache.ClearPendingCopies();

        for (var l = 0; l < _keyCache.Length; l++)
        {
            var w = _layers[l];
            k.RmsNorm(x, w.AttentionNorm, xb, n, embd, p.RmsNormEpsilon);
            k.MatMul(w.Query, xb, q, n, qDim, embd);
            k.MatMul(w.Key, xb, key, n, kvDim, embd);
            k.MatMul(w.Value, xb, value, n, kvDim, embd);
            k.Rope(q, positions, p.HeadCount, p.HeadDim, p.RopeDimensionCount, p.RopeFreqBase);
            k.Rope(key, positions, p.HeadCountKv, p.HeadDim, p.RopeDimensionCount, p.RopeFreqBase);
            k.AppendKv(_keyCache[l], _valueCache[l], key, value, slots, _layout);
            k.PagedAttentionDecode(q, _keyCache[l], _valueCache[l], att, tables, maxBlocks, lengths, p.HeadCount, _layout);
            k.MatMul(w.AttentionOutput, att, xb, n, embd, qDim);
            k.Add(x, xb, n * embd);

            k.RmsNorm(x, w.FeedForwardNorm, xb, n, embd, p.RmsNormEpsilon);
            k.MatMul(w.Gate, xb, gate, n, ff, embd);
            k.MatMul(w.Up, xb, up, n, ff, embd);
            k.SwiGlu(gate, up, gate, n * ff);
            k.MatMul(w.Down, gate, xb, n, embd, ff);
            k.Add(x, xb, n * embd);
        }

        if (logitRows == 0)
            return;
        // Only the rows that want logits pay for the output head (a prefill chunk wants at most its last): norm every
        // row (cheap), then gather the wanted ones to the front of x, which the layers no longer need.
        k.RmsNorm(x, _outputNorm, xb, n, embd, p.RmsNormEpsilon);
        for (var j = 0; j < logitRows; j++)
            m.Copy(m.Slice(xb, (long)s.LogitRows[j] * embd, embd), m.Slice(x, (long)j * embd, embd));
        var output = m.Slice(s.Logits, 0, logitRows * p.VocabSize);
        k.MatMul(_output, m.Slice(x, 0, logitRows * embd), output, logitRows, p.VocabSize, embd);
        // The one read-back of the step.
        m.CopyToHost(output, logits);
    }

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    // Frees the device buffers (the CPU backend's are the garbage collector's anyway).
    protected virtual void Dispose(bool disposing)
    {
        if (_disposed)
            return;
        _disposed = true;
        if (disposing)
            Release();
    }

    private void Release()
    {
        foreach (var buffer in _uploaded)
            _memory.Free(buffer);
        _uploaded.Clear();
        foreach (var buffer in _keyCache.Concat(_valueCache))
            _memory.Free(buffer);
        _scratch?.Free(_memory);
        _scratch = null;
    }

    private sealed record LayerWeights(
        TBuffer AttentionNorm,
        TBuffer Query,
        TBuffer Key,
        TBuffer Value,
        TBuffer AttentionOutput,
        TBuffer FeedForwardNorm,
        TBuffer Gate,
        TBuffer Up,
        TBuffer Down);

    // Activations for up to Tokens query tokens (device buffers) and the step's host-side ints; grown, never shrunk.
    private sealed class Scratch
    {
        public Scratch(int tokens, Gguf.LlamaHyperParameters p, IDeviceMemory<TBuffer> memory)
        {
            Tokens = tokens;
            long embd = p.EmbeddingLength, qDim = p.HeadCount * p.HeadDim, kvDim = p.HeadCountKv * p.HeadDim, ff = p.FeedForwardLength, vocab = p.VocabSize;
            var buffers = new List<TBuffer>();
            TBuffer Allocate(long length)
            {
                var buffer = memory.Allocate(length);
                buffers.Add(buffer);
                return buffer;
            }
            try
            {
                X = Allocate(tokens * embd);
                Xb = Allocate(tokens * embd);
                Q = Allocate(tokens * qDim);
                Attention = Allocate(tokens * qDim);
                K = Allocate(tokens * kvDim);
                V = Allocate(tokens * kvDim);
                Gate = Allocate(tokens * ff);
                Up = Allocate(tokens * ff);
                Logits = Allocate(tokens * vocab);
            }
            catch
            {
                foreach (var buffer in buffers)
                    memory.Free(buffer);
                throw;
            }
            Positions = new int[tokens];
            Lengths = new int[tokens];
            LogitRows = new int[tokens];
        }

        public int Tokens { get; }
        public TBuffer X { get; }
        public TBuffer Xb { get; }
        public TBuffer Q { get; }
        public TBuffer Attention { get; }
        public TBuffer K { get; }
        public TBuffer V { get; }
        public TBuffer Gate { get; }
        public TBuffer Up { get; }
        public TBuffer Logits { get; }
        public int[] Positions { get; }
        public int[] Lengths { get; }
        public int[] LogitRows { get; }
        // Padded block tables of the step's rows, [rows x maxBlocks] for the step's maxBlocks.
        public int[] Tables { get; private set; } = [];

        public void EnsureTables(long length)
        {
            if (Tables.Length < length)
                Tables = new int[Math.Max(length, 2L * Tables.Length)];
        }

        public void Free(IDeviceMemory<TBuffer> memory)
        {
            foreach (var buffer in (TBuffer[])[X, Xb, Q, Attention, K, V, Gate, Up, Logits])
                memory.Free(buffer);
        }
    }
}

// The CPU forward pass: CpuKernels (or any IKernels over Memory<float>) on managed arrays, the model's weights used in place.
public sealed class LlamaForward(LlamaModel model, IKernels<Memory<float>> kernels, int numBlocks, int blockSize)
    : LlamaForward<Memory<float>>(model, kernels, CpuMemory.Instance, numBlocks, blockSize);
