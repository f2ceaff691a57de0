using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Inference.Adapters.Gollek;
using Wayang.Fast.Inference.Adapters.LlamaCpp;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Engine.Kernels;
using Wayang.Fast.Inference.Engine.KvCache;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Tests.Gguf;
using static Wayang.Fast.Inference.Tests.Adapters.LocalModelTesting;

namespace Wayang.Fast.Inference.Tests.Adapters;

// The gollek provider (issue 8) on the tiny GGUF model, with the llama.cpp adapter on the same file as its oracle.
public sealed class GollekProviderTests : IDisposable
{
    private readonly TempDirectory _dir = ModelsDirectory("gollek");
    private readonly GollekProvider _provider;

    public GollekProviderTests()
    {
        _provider = new GollekProvider(new GollekOptions { Name = "engine", ModelsDirectory = _dir.Path, ContextLength = 128, MaxSequences = 4, Threads = 2 });
    }

    public void Dispose()
    {
        _provider.Dispose();
        _dir.Dispose();
    }

    private async Task<string> TextAsync(ChatRequest request) =>
        (await _provider.ChatAsync(request, Model, CancellationToken.None).WaitAsync(Guard)).Choices[0].Message.TextContent();

    [Fact]
    public async Task Greedy_chat_gives_the_text_llama_cpp_gives_on_the_same_model_and_prompt()
    {
        // llama.cpp computing in f32 as the engine does (ForwardPassTests' setting).
        using var llama = new LlamaCppProvider(new LlamaCppOptions { ModelsDirectory = _dir.Path, ContextLength = 128, MaxSequences = 1, F32KvCacheForTests = true });
        foreach (string user in new[] { "hello world", "the world", "tell the world hello" })
        {
            var request = Request(user, maxTokens: 24);
            var expected = await llama.ChatAsync(request, Model, CancellationToken.None).WaitAsync(Guard);
            var actual = await _provider.ChatAsync(request, Model, CancellationToken.None).WaitAsync(Guard);

            string text = expected.Choices[0].Message.TextContent();
            Assert.NotEmpty(text);
            Assert.Equal(text, actual.Choices[0].Message.TextContent());
            Assert.Equal(expected.Choices[0].FinishReason, actual.Choices[0].FinishReason);
            Assert.Equal(expected.Usage.PromptTokens, actual.Usage.PromptTokens);
            Assert.Equal(expected.Usage.CompletionTokens, actual.Usage.CompletionTokens);
        }
    }

    [Fact]
    public async Task Streaming_deltas_concatenate_to_the_unary_text_and_end_with_finish_and_usage()
    {
        var unary = await _provider.ChatAsync(Request("the world", maxTokens: 10), Model, CancellationToken.None).WaitAsync(Guard);
        Assert.Equal("engine", unary.Provider);
        Assert.Equal(Model, unary.Model);
        Assert.Equal(FinishReason.Length, unary.Choices[0].FinishReason);
        Assert.Equal(10, unary.Usage.CompletionTokens);

        var deltas = new List<ChatDelta>();
        await foreach (var d in _provider.StreamChatAsync(Request("the world", maxTokens: 10), Model, CancellationToken.None))
            deltas.Add(d);
        Assert.Equal(unary.Choices[0].Message.TextContent(), string.Concat(deltas.Select(d => d.Content)));
        Assert.True(deltas.Count(d => !string.IsNullOrEmpty(d.Content)) > 1, "the text arrives in several deltas");
        Assert.Equal(FinishReason.Length, deltas[^1].FinishReason);
        Assert.Equal(unary.Usage.PromptTokens, deltas[^1].Usage!.PromptTokens);
        Assert.Equal(10, deltas[^1].Usage!.CompletionTokens);
        Assert.All(deltas.SkipLast(1), d => Assert.Null(d.FinishReason));
    }

    [Fact]
    public async Task A_stop_string_ends_the_completion_before_it_with_finish_stop()
    {
        string text = await TextAsync(Request("the world", maxTokens: 24));
        Assert.True(text.Length >= 6, $"the greedy text is long enough to cut: '{text}'");
        string stop = text.Substring(3, 2);
        string expected = text[..text.IndexOf(stop, StringComparison.Ordinal)];

        var stopped = await _provider.ChatAsync(Request("the world", 24, stop), Model, CancellationToken.None).WaitAsync(Guard);
        Assert.Equal(expected, stopped.Choices[0].Message.TextContent());
        Assert.Equal(FinishReason.Stop, stopped.Choices[0].FinishReason);
        Assert.Equal(expected, await StreamTextAsync(_provider, Request("the world", 24, stop)).WaitAsync(Guard));
    }

    [Fact]
    public async Task Concurrent_requests_each_get_the_text_they_get_alone()
    {
        // More requests than sequences: the extra ones wait in the scheduler's queue.
        string[] prompts = ["hello", "world", "the hello", "hello world the", "e t o l", "tell the world"];
        var alone = new List<string>();
        foreach (string p in prompts)
            alone.Add(await TextAsync(Request(p, maxTokens: 16)));

        var together = await Task.WhenAll(prompts.Select(p => Task.Run(() => StreamTextAsync(_provider, Request(p, maxTokens: 16))))).WaitAsync(Guard);
        Assert.Equal(alone, together);
    }

    [Fact]
    public async Task Cancellation_mid_stream_ends_the_stream_and_frees_every_kv_block()
    {
        using var gate = new StepGate();
        using var provider = new GollekProvider(new GollekOptions
        {
            ModelsDirectory = _dir.Path, ContextLength = 256, MaxSequences = 2, Threads = 1, KernelsForTests = gate.Wrap,
        });
        // Declared after the provider, so it is disposed first: a failed assertion never leaves Dispose joining a held loop.
        using var opener = new GateOpener(gate);
        using var cts = new CancellationTokenSource();
        var stream = provider.StreamChatAsync(Request("hello world", maxTokens: 150), Model, cts.Token).GetAsyncEnumerator(cts.Token);
        await using (stream)
        {
            // One forward pass per permit until the first delta is out; the step loop then waits at the gate, with the
            // request running and holding blocks.
            await gate.StepUntilAsync(stream.MoveNextAsync().AsTask());
            var held = Assert.Single(provider.GetMetrics());
            Assert.Equal(1, held.Scheduler.Running);
            Assert.True(held.KvCache.UsedBlocks > 0);

            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            {
                while (await stream.MoveNextAsync())
                {
                }
            });
        }

        // The loop goes on; the next request runs to its end only after the cancelled one was dropped (every step
        // drops cancelled sequences before it admits), and frees its own blocks before its stream completes.
        gate.Open();
        string after = await StreamTextAsync(provider, Request("hello", maxTokens: 4)).WaitAsync(Guard);
        Assert.NotEmpty(after);
        var metrics = Assert.Single(provider.GetMetrics());
        Assert.Equal(0, metrics.Scheduler.Running);
        Assert.Equal(0, metrics.Scheduler.Waiting);
        Assert.Equal(0, metrics.KvCache.UsedBlocks);
        Assert.Equal(metrics.KvCache.TotalBlocks, metrics.KvCache.FreeBlocks + metrics.KvCache.CachedEvictableBlocks);
    }

    [Fact]
    public async Task Unloading_a_model_fails_its_running_requests_as_provider_unavailable()
    {
        using var gate = new StepGate();
        using var provider = new GollekProvider(new GollekOptions
        {
            Name = "engine", ModelsDirectory = _dir.Path, ContextLength = 256, MaxSequences = 1, Threads = 1, KernelsForTests = gate.Wrap,
        });
        using var opener = new GateOpener(gate);
        var stream = provider.StreamChatAsync(Request("hello", maxTokens: 150), Model, CancellationToken.None).GetAsyncEnumerator();
        await using (stream)
        {
            await gate.StepUntilAsync(stream.MoveNextAsync().AsTask());
            // Unload joins the step loop, which is held at the gate: it runs beside the reader, and the gate opens
            // once the reader has seen the failure.
            var unload = Task.Run(() => provider.Unload(Model));
            var ex = await Assert.ThrowsAsync<WayangException>(async () =>
            {
                while (await stream.MoveNextAsync())
                {
                }
            });
            Assert.Equal(ErrorCode.ProviderUnavailable, ex.Code);
            gate.Open();
            Assert.True(await unload.WaitAsync(Guard));
        }
        Assert.False(provider.IsLoaded(Model));
        // Loaded again on the next use.
        Assert.Equal(3, (await provider.ChatAsync(Request("hello", 3), Model, CancellationToken.None).WaitAsync(Guard)).Usage.CompletionTokens);
    }

    [Fact]
    public async Task Prompt_and_max_tokens_over_the_context_length_are_context_length_exceeded()
    {
        var longPrompt = Request(string.Concat(Enumerable.Repeat("hello world ", 200)));
        var unary = await Assert.ThrowsAsync<WayangException>(() => _provider.ChatAsync(longPrompt, Model, CancellationToken.None));
        Assert.Equal(ErrorCode.ContextLengthExceeded, unary.Code);
        Assert.Equal("engine", unary.Error.Details["provider"]);
        var streamed = await Assert.ThrowsAsync<WayangException>(() => StreamTextAsync(_provider, longPrompt));
        Assert.Equal(ErrorCode.ContextLengthExceeded, streamed.Code);

        // The prompt fits, the completion asked for does not.
        var tooMany = await Assert.ThrowsAsync<WayangException>(() => _provider.ChatAsync(Request("hello", maxTokens: 128), Model, CancellationToken.None));
        Assert.Equal(ErrorCode.ContextLengthExceeded, tooMany.Code);

        // Without max tokens the completion gets what the context leaves (the default is larger).
        using var small = new GollekProvider(new GollekOptions { ModelsDirectory = _dir.Path, ContextLength = 64, DefaultMaxTokens = 1000, Threads = 1 });
        var request = Request("hello");
        request.MaxTokens = null;
        var response = await small.ChatAsync(request, Model, CancellationToken.None).WaitAsync(Guard);
        Assert.Equal(FinishReason.Length, response.Choices[0].FinishReason);
        Assert.Equal(64, response.Usage.TotalTokens);

        // The model is fine afterwards.
        Assert.Equal(3, (await _provider.ChatAsync(Request("hello", 3), Model, CancellationToken.None).WaitAsync(Guard)).Usage.CompletionTokens);
    }

    [Theory]
    [InlineData("missing")]
    [InlineData("../tiny")]
    [InlineData("")]
    public async Task An_unknown_model_is_model_not_found(string model)
    {
        var ex = await Assert.ThrowsAsync<WayangException>(() => _provider.ChatAsync(Request("hello"), model, CancellationToken.None));
        Assert.Equal(ErrorCode.ModelNotFound, ex.Code);
        Assert.False(_provider.IsLoaded(model));
    }

    [Fact]
    public async Task Models_are_listed_warmed_and_unloaded_with_their_memory()
    {
        TinyGgufWriter.Write(Path.Combine(_dir.Path, "other.gguf"), new TinyGgufOptions { Seed = 9, HeadCountKv = 2 });
        File.WriteAllText(Path.Combine(_dir.Path, "notes.txt"), "not a model");
        IWarmableProvider warmable = _provider;

        var listed = await _provider.ListModelsAsync(CancellationToken.None);
        Assert.Equal(["other", "tiny"], listed.Select(m => m.Name));
        Assert.All(listed, m => Assert.False(m.Loaded));

        var first = await warmable.LoadModelAsync(Model, CancellationToken.None).WaitAsync(Guard);
        Assert.False(first.WasLoaded);
        Assert.True(first.SizeBytes > 100_000, $"weights and KV buffers: {first.SizeBytes} bytes");
        var again = await warmable.LoadModelAsync(Model, CancellationToken.None).WaitAsync(Guard);
        Assert.True(again.WasLoaded);
        Assert.Equal(TimeSpan.Zero, again.LoadTime);
        Assert.Equal(first.SizeBytes, again.SizeBytes);

        var loaded = Assert.Single(await warmable.ListLoadedModelsAsync(CancellationToken.None));
        Assert.Equal((Model, first.SizeBytes, 128), (loaded.Name, loaded.SizeBytes!.Value, loaded.ContextLength!.Value));
        listed = await _provider.ListModelsAsync(CancellationToken.None);
        Assert.True(listed.Single(m => m.Name == Model).Loaded);
        Assert.False(listed.Single(m => m.Name == "other").Loaded);
        Assert.Equal(Model, Assert.Single(_provider.GetMetrics()).Model);

        await warmable.UnloadModelAsync(Model, CancellationToken.None);
        Assert.False(_provider.IsLoaded(Model));
        Assert.Empty(_provider.LoadedModels);
        Assert.Empty(_provider.GetMetrics());
        Assert.Equal(2, (await _provider.ChatAsync(Request("hello", 2), "other", CancellationToken.None).WaitAsync(Guard)).Usage.CompletionTokens);
        Assert.True(_provider.IsLoaded("other"));

        var health = await _provider.CheckHealthAsync(CancellationToken.None);
        Assert.True(health.Healthy, health.Error);
        Assert.Equal("gollek", _provider.Kind);
        Assert.Equal(ProviderCapabilities.Chat | ProviderCapabilities.Streaming | ProviderCapabilities.Local, _provider.Capabilities);
    }

    [Fact]
    public async Task Health_reports_a_missing_models_directory_and_embeddings_are_unsupported()
    {
        using var provider = new GollekProvider(new GollekOptions { Name = "engine", ModelsDirectory = Path.Combine(_dir.Path, "nope") });
        var health = await provider.CheckHealthAsync(CancellationToken.None);
        Assert.False(health.Healthy);
        Assert.Empty(await provider.ListModelsAsync(CancellationToken.None));

        var ex = await Assert.ThrowsAsync<WayangException>(() => _provider.EmbedAsync(new EmbeddingRequest { Inputs = ["hello"] }, Model, CancellationToken.None));
        Assert.Equal(ErrorCode.InferenceRequestInvalid, ex.Code);
    }

    [Fact]
    public async Task Seeded_sampling_repeats_with_the_same_seed()
    {
        ChatRequest Sampled() => new()
        {
            Messages = [ChatMessage.Text(ChatRole.User, "hello")],
            MaxTokens = 16,
            Temperature = 0.9,
            TopP = 0.95,
            Seed = 42,
            Priority = (int)SlaPriority.High,
        };
        Assert.Equal(await TextAsync(Sampled()), await TextAsync(Sampled()));
    }

    [Theory]
    [InlineData(SlaPriority.Unspecified, SlaPriority.Normal)]
    [InlineData(SlaPriority.Low, SlaPriority.Low)]
    [InlineData(SlaPriority.Normal, SlaPriority.Normal)]
    [InlineData(SlaPriority.High, SlaPriority.High)]
    [InlineData(SlaPriority.Critical, SlaPriority.Critical)]
    public void Sla_classes_are_scheduler_priorities_in_their_order(SlaPriority sla, SlaPriority expected) =>
        Assert.Equal((int)expected, GollekProvider.Priority((int)sla));

    [Fact]
    public void The_provider_factory_creates_gollek_from_configuration()
    {
        Assert.Contains("gollek", ProviderFactory.Kinds);
        using var provider = Assert.IsType<GollekProvider>(ProviderFactory.Create(new ProviderConfig
        {
            Name = "engine", Kind = "gollek", ModelsDirectory = _dir.Path, ContextLength = 64, MaxSequences = 2, Threads = 1,
        }));
        Assert.Equal(("engine", "gollek"), (provider.Name, provider.Kind));
        var ex = Assert.Throws<ArgumentException>(() => ProviderFactory.Create(new ProviderConfig { Name = "engine", Kind = "gollek" }));
        Assert.Contains("ModelsDirectory", ex.Message, StringComparison.Ordinal);
        var backend = Assert.Throws<ArgumentException>(() => ProviderFactory.Create(new ProviderConfig
        {
            Name = "engine", Kind = "gollek", ModelsDirectory = _dir.Path, Backend = "opencl",
        }));
        Assert.Contains("opencl", backend.Message, StringComparison.Ordinal);
        var budget = Assert.Throws<ArgumentException>(() => ProviderFactory.Create(new ProviderConfig
        {
            Name = "engine", Kind = "gollek", ModelsDirectory = _dir.Path, MaxSequences = 8, MaxBatchedTokens = 4,
        }));
        Assert.Contains("MaxBatchedTokens", budget.Message, StringComparison.Ordinal);
        var wait = Assert.Throws<ArgumentException>(() => ProviderFactory.Create(new ProviderConfig
        {
            Name = "engine", Kind = "gollek", ModelsDirectory = _dir.Path, MaxBatchWaitMilliseconds = -1,
        }));
        Assert.Contains("MaxBatchWaitMilliseconds", wait.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_scheduler_options_from_configuration_reach_the_models_scheduler()
    {
        using var waiting = Assert.IsType<GollekProvider>(ProviderFactory.Create(new ProviderConfig
        {
            Name = "engine", Kind = "gollek", ModelsDirectory = _dir.Path, ContextLength = 64, MaxSequences = 2, Threads = 1,
            MaxBatchedTokens = 8, MaxBatchWaitMilliseconds = 1,
        }));
        var request = Request("tell the world hello", maxTokens: 4);

        var reply = await waiting.ChatAsync(request, Model, CancellationToken.None).WaitAsync(Guard);
        var unchunked = await _provider.ChatAsync(request, Model, CancellationToken.None).WaitAsync(Guard);

        // The wait held the first step after idle (counted); the default provider never waits.
        Assert.Equal(1, Assert.Single(waiting.GetMetrics()).Scheduler.BatchWaits);
        Assert.Equal(0, Assert.Single(_provider.GetMetrics()).Scheduler.BatchWaits);
        // A prompt longer than the 8-token budget is prefilled in chunks, and greedy decoding gives what it gives whole.
        Assert.True(reply.Usage.PromptTokens > 8, $"prompt of {reply.Usage.PromptTokens} tokens");
        Assert.NotEmpty(reply.Choices[0].Message.TextContent());
        Assert.Equal(unchunked.Choices[0].Message.TextContent(), reply.Choices[0].Message.TextContent());
    }

    [Fact]
    public async Task The_ilgpu_backend_gives_the_cpu_backends_greedy_text()
    {
        // From configuration, so the factory's mapping of Backend is what is under test too.
        using var ilgpu = Assert.IsType<GollekProvider>(ProviderFactory.Create(new ProviderConfig
        {
            Name = "engine", Kind = "gollek", ModelsDirectory = _dir.Path, ContextLength = 128, MaxSequences = 2, Backend = "ILGPU-CPU",
        }));
        var request = Request("tell the world hello", maxTokens: 12);
        var expected = await _provider.ChatAsync(request, Model, CancellationToken.None).WaitAsync(Guard);
        var actual = await ilgpu.ChatAsync(request, Model, CancellationToken.None).WaitAsync(Guard);

        Assert.Equal("ilgpu-cpu", Assert.Single(ilgpu.GetMetrics()).Backend);
        Assert.Equal("cpu", Assert.Single(_provider.GetMetrics()).Backend);
        Assert.NotEmpty(expected.Choices[0].Message.TextContent());
        Assert.Equal(expected.Choices[0].Message.TextContent(), actual.Choices[0].Message.TextContent());
        Assert.Equal(expected.Usage.CompletionTokens, actual.Usage.CompletionTokens);
    }

    [Fact]
    public async Task The_cuda_backend_without_a_cuda_device_is_provider_unavailable_at_load()
    {
        using (var probe = IlgpuKernels.TryCreateCuda())
        {
            // A machine with a GPU runs the cuda backend for real: this test is about the machines without one.
            if (probe is not null)
                return;
        }
        using var cuda = new GollekProvider(new GollekOptions { Name = "engine", ModelsDirectory = _dir.Path, ContextLength = 64, Backend = "cuda" });
        var ex = await Assert.ThrowsAsync<WayangException>(() => cuda.ChatAsync(Request("hello", 3), Model, CancellationToken.None).WaitAsync(Guard));
        Assert.Equal(ErrorCode.ProviderUnavailable, ex.Code);
        Assert.Contains("CUDA", ex.Message, StringComparison.Ordinal);
        Assert.False(cuda.IsLoaded(Model));
    }

    private sealed class GateOpener(StepGate gate) : IDisposable
    {
        public void Dispose() => gate.Open();
    }

    // Holds the step loop between forward passes: the output head (the one MatMul with vocabulary-sized rows, run once
    // per Prefill or Decode) waits for a permit while the gate is closed, and says when it has arrived there.
    private sealed class StepGate : IDisposable
    {
        private readonly SemaphoreSlim _permits = new(0);
        private readonly SemaphoreSlim _arrived = new(0);
        private volatile bool _open;

        public IKernels<Memory<float>> Wrap(IKernels<Memory<float>> inner) => new Gated(inner, this);

        // Lets one forward pass run at a time until the task completes; returns with the loop waiting at the gate.
        // The task may complete a little after the pass that produced its result (its continuation runs on the pool):
        // then one more pass runs, which the callers' budgets allow for.
        public async Task StepUntilAsync(Task task)
        {
            await _arrived.WaitAsync().WaitAsync(Guard);
            for (int released = 0; !task.IsCompleted; released++)
            {
                Assert.True(released < 64, "no progress after 64 forward passes");
                _permits.Release();
                await _arrived.WaitAsync().WaitAsync(Guard);
            }
            await task;
        }

        public void Open()
        {
            _open = true;
            _permits.Release(1000);
        }

        public void Dispose()
        {
            Open();
            _permits.Dispose();
            _arrived.Dispose();
        }

        private void Pass()
        {
            if (_open)
                return;
            _arrived.Release();
            _permits.Wait();
        }

        private sealed class Gated(IKernels<Memory<float>> inner, StepGate gate) : IKernels<Memory<float>>
        {
            public void MatVec(Memory<float> weights, Memory<float> x, Memory<float> y, int rows, int cols) => inner.MatVec(weights, x, y, rows, cols);

            public void MatMul(Memory<float> weights, Memory<float> x, Memory<float> y, int batch, int rows, int cols)
            {
                if (rows == TinyGgufWriter.VocabSize)
                    gate.Pass();
                inner.MatMul(weights, x, y, batch, rows, cols);
            }

            public void RmsNorm(Memory<float> x, Memory<float> weight, Memory<float> y, int batch, int dim, float eps) => inner.RmsNorm(x, weight, y, batch, dim, eps);

            public void SwiGlu(Memory<float> gate, Memory<float> up, Memory<float> y, int length) => inner.SwiGlu(gate, up, y, length);

            public void Rope(Memory<float> x, ReadOnlySpan<int> positions, int numHeads, int headDim, int ropeDim, float freqBase) =>
                inner.Rope(x, positions, numHeads, headDim, ropeDim, freqBase);

            public void Softmax(Memory<float> x, int batch, int length) => inner.Softmax(x, batch, length);

            public void Add(Memory<float> x, Memory<float> y, int length) => inner.Add(x, y, length);

            public void AppendKv(Memory<float> keyCache, Memory<float> valueCache, Memory<float> keys, Memory<float> values, ReadOnlySpan<int> slotMapping, KvLayout layout) =>
                inner.AppendKv(keyCache, valueCache, keys, values, slotMapping, layout);

            public void CopyBlocks(Memory<float> keyCache, Memory<float> valueCache, ReadOnlySpan<BlockCopy> copies, KvLayout layout) =>
                inner.CopyBlocks(keyCache, valueCache, copies, layout);

            public void PagedAttentionDecode(
                Memory<float> queries,
                Memory<float> keyCache,
                Memory<float> valueCache,
                Memory<float> output,
                ReadOnlySpan<int> blockTables,
                int maxBlocksPerSequence,
                ReadOnlySpan<int> sequenceLengths,
                int numHeads,
                KvLayout layout) =>
                inner.PagedAttentionDecode(queries, keyCache, valueCache, output, blockTables, maxBlocksPerSequence, sequenceLengths, numHeads, layout);
        }
    }
}
