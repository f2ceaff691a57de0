using System.Text;
using LLama;
using LLama.Common;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Adapters.LlamaCpp;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Tests.Gguf;
using static Wayang.Fast.Inference.Tests.Adapters.LocalModelTesting;

namespace Wayang.Fast.Inference.Tests.Adapters;

public sealed class LlamaCppProviderTests : IDisposable
{
    private readonly TempDirectory _dir = ModelsDirectory("llamacpp");
    private readonly LlamaCppProvider _provider;

    public LlamaCppProviderTests()
    {
        _provider = new LlamaCppProvider(new LlamaCppOptions { Name = "local", ModelsDirectory = _dir.Path, ContextLength = 128, MaxSequences = 4 });
    }

    public void Dispose()
    {
        _provider.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task Unary_chat_generates_max_tokens_with_finish_length_and_usage()
    {
        var request = Request("hello world", maxTokens: 10);
        var response = await _provider.ChatAsync(request, Model, CancellationToken.None).WaitAsync(Guard);

        Assert.Equal("local", response.Provider);
        Assert.Equal(Model, response.Model);
        var choice = Assert.Single(response.Choices);
        Assert.Equal(FinishReason.Length, choice.FinishReason);
        Assert.Equal(ChatRole.Assistant, choice.Message.Role);
        Assert.Equal(10, response.Usage.CompletionTokens);

        // The prompt is the documented template, tokenized with BOS.
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(Path.Combine(_dir.Path, Model + ".gguf")) { GpuLayerCount = 0 });
        int promptTokens = weights.Tokenize(LlamaChatTemplate.Render(request.Messages), true, false, Encoding.UTF8).Length;
        Assert.Equal(promptTokens, response.Usage.PromptTokens);
        Assert.Equal("<|system|>\nbe brief\n<|user|>\nhello world\n<|assistant|>\n", LlamaChatTemplate.Render(request.Messages));
    }

    [Fact]
    public async Task Greedy_is_deterministic_and_streaming_concatenates_to_the_unary_text()
    {
        var first = await _provider.ChatAsync(Request("the world"), Model, CancellationToken.None).WaitAsync(Guard);
        var second = await _provider.ChatAsync(Request("the world"), Model, CancellationToken.None).WaitAsync(Guard);
        string text = first.Choices[0].Message.TextContent();
        Assert.NotEmpty(text);
        Assert.Equal(text, second.Choices[0].Message.TextContent());

        var deltas = new List<ChatDelta>();
        await foreach (var d in _provider.StreamChatAsync(Request("the world"), Model, CancellationToken.None))
            deltas.Add(d);
        Assert.Equal(text, string.Concat(deltas.Select(d => d.Content)));
        Assert.True(deltas.Count(d => !string.IsNullOrEmpty(d.Content)) > 1, "the text arrives in several deltas");
        var last = deltas[^1];
        Assert.Equal(FinishReason.Length, last.FinishReason);
        Assert.Equal(first.Usage.CompletionTokens, last.Usage!.CompletionTokens);
        Assert.All(deltas.SkipLast(1), d => Assert.Null(d.FinishReason));
    }

    [Fact]
    public async Task Concurrent_requests_decode_together_with_the_results_they_have_alone()
    {
        // More requests than sequences: the extra ones wait for a free sequence.
        string[] prompts = ["hello", "world", "the hello", "hello world the", "e t o l", "tell the world"];
        var alone = new List<string>();
        foreach (string p in prompts)
            alone.Add((await _provider.ChatAsync(Request(p, maxTokens: 16), Model, CancellationToken.None).WaitAsync(Guard)).Choices[0].Message.TextContent());

        var together = await Task.WhenAll(prompts.Select(p => Task.Run(() => StreamTextAsync(_provider, Request(p, maxTokens: 16))))).WaitAsync(Guard);
        Assert.Equal(alone, together);
    }

    [Fact]
    public async Task A_request_joins_the_batch_of_a_running_one()
    {
        // Stepped: the decoder takes one step per release (while `stepped` is set), so the long request cannot finish
        // its context before the quick one arrives.
        using var steps = new SemaphoreSlim(0);
        bool stepped = false;
        using var provider = new LlamaCppProvider(new LlamaCppOptions
        {
            ModelsDirectory = _dir.Path, ContextLength = 2048, MaxSequences = 2, AfterStepForTests = ct => { if (Volatile.Read(ref stepped)) steps.Wait(ct); },
        });
        var quick = Request("world", maxTokens: 8);
        string alone = (await provider.ChatAsync(quick, Model, CancellationToken.None).WaitAsync(Guard)).Choices[0].Message.TextContent();
        Assert.Equal(1, provider.PeakSequencesPerBatch(Model));

        // A long request is generating (it has streamed a delta) when the quick one arrives; the quick one runs beside
        // it in the same batches and gets the text it gets alone.
        Volatile.Write(ref stepped, true);
        using var cts = new CancellationTokenSource();
        await using var longRun = provider.StreamChatAsync(Request("hello", maxTokens: 100_000), Model, cts.Token).GetAsyncEnumerator(cts.Token);
        await StepUntilAsync(steps, longRun.MoveNextAsync().AsTask());
        var besideTask = provider.ChatAsync(quick, Model, CancellationToken.None);
        var besideResponse = await StepUntilAsync(steps, besideTask);
        string beside = besideResponse.Choices[0].Message.TextContent();
        Volatile.Write(ref stepped, false);
        steps.Release();
        await cts.CancelAsync();

        Assert.Equal(alone, beside);
        Assert.Equal(2, provider.PeakSequencesPerBatch(Model));
    }

    // Lets the stepped decoder go one step at a time until the task completes (the steps are bounded: a delta or an
    // 8-token answer needs only a few).
    private static async Task<T> StepUntilAsync<T>(SemaphoreSlim steps, Task<T> task)
    {
        for (int released = 0; !task.IsCompleted; released++)
        {
            Assert.True(released < 256, "no progress after 256 decode steps");
            steps.Release();
            await Task.WhenAny(task, Task.Delay(20));
        }
        return await task;
    }

    [Fact]
    public async Task Unloading_a_model_fails_its_running_requests_as_provider_unavailable()
    {
        // The decoder takes one step per release, so the request is certainly still generating when the model goes
        // (free-running, the tiny model could finish its 128-token context before the unload).
        using var steps = new SemaphoreSlim(0);
        using var held = new LlamaCppProvider(new LlamaCppOptions
        {
            Name = "local", ModelsDirectory = _dir.Path, ContextLength = 128, MaxSequences = 1, AfterStepForTests = ct => steps.Wait(ct),
        });
        var stream = held.StreamChatAsync(Request("hello", maxTokens: 100_000), Model, CancellationToken.None).GetAsyncEnumerator();
        await using (stream)
        {
            var first = stream.MoveNextAsync().AsTask();
            for (int released = 0; !first.IsCompleted; released++)
            {
                Assert.True(released < 64, "no delta after 64 decode steps");
                steps.Release();
                await Task.WhenAny(first, Task.Delay(20));
            }
            Assert.True(await first);
            Assert.True(held.Unload(Model));
            var ex = await Assert.ThrowsAsync<WayangException>(async () =>
            {
                while (await stream.MoveNextAsync())
                {
                }
            });
            Assert.Equal(ErrorCode.ProviderUnavailable, ex.Code);
        }
        Assert.Equal(3, (await _provider.ChatAsync(Request("hello", 3), Model, CancellationToken.None).WaitAsync(Guard)).Usage.CompletionTokens);
    }

    [Fact]
    public async Task Cancellation_mid_stream_ends_with_operation_canceled_and_frees_the_sequence()
    {
        string expected = (await _provider.ChatAsync(Request("hello"), Model, CancellationToken.None).WaitAsync(Guard)).Choices[0].Message.TextContent();

        using var cts = new CancellationTokenSource();
        int deltas = 0;
        var run = Task.Run(async () =>
        {
            await foreach (var d in _provider.StreamChatAsync(Request("hello world", maxTokens: 100_000), Model, cts.Token))
            {
                if (++deltas == 2)
                    await cts.CancelAsync();
            }
        });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(Guard));
        Assert.Equal(2, deltas);

        // Every sequence is free again: as many requests as sequences all finish, with the text they have alone.
        var after = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => StreamTextAsync(_provider, Request("hello")))).WaitAsync(Guard);
        Assert.All(after, t => Assert.Equal(expected, t));
    }

    [Fact]
    public async Task Breaking_out_of_a_stream_frees_its_sequence()
    {
        for (int i = 0; i < 6; i++)
        {
            await foreach (var d in _provider.StreamChatAsync(Request("world", maxTokens: 100_000), Model, CancellationToken.None))
                break;
        }
        var response = await _provider.ChatAsync(Request("world", maxTokens: 4), Model, CancellationToken.None).WaitAsync(Guard);
        Assert.Equal(4, response.Usage.CompletionTokens);
    }

    [Fact]
    public async Task Generation_stops_at_the_context_length_with_finish_length()
    {
        var response = await _provider.ChatAsync(Request("hello", maxTokens: 100_000), Model, CancellationToken.None).WaitAsync(Guard);
        Assert.Equal(FinishReason.Length, response.Choices[0].FinishReason);
        Assert.Equal(128, response.Usage.TotalTokens);
    }

    [Fact]
    public async Task A_stop_string_ends_the_completion_before_it()
    {
        string text = (await _provider.ChatAsync(Request("the world", maxTokens: 24), Model, CancellationToken.None).WaitAsync(Guard)).Choices[0].Message.TextContent();
        Assert.True(text.Length >= 6, $"the greedy text is long enough to cut: '{text}'");
        string stop = text.Substring(3, 2);
        string expected = text[..text.IndexOf(stop, StringComparison.Ordinal)];

        var stopped = await _provider.ChatAsync(Request("the world", 24, stop), Model, CancellationToken.None).WaitAsync(Guard);
        Assert.Equal(expected, stopped.Choices[0].Message.TextContent());
        Assert.Equal(FinishReason.Stop, stopped.Choices[0].FinishReason);
        Assert.Equal(expected, await StreamTextAsync(_provider, Request("the world", 24, stop)));
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
        };
        var a = await _provider.ChatAsync(Sampled(), Model, CancellationToken.None).WaitAsync(Guard);
        var b = await _provider.ChatAsync(Sampled(), Model, CancellationToken.None).WaitAsync(Guard);
        Assert.Equal(a.Choices[0].Message.TextContent(), b.Choices[0].Message.TextContent());
    }

    [Fact]
    public async Task A_prompt_longer_than_the_context_is_context_length_exceeded()
    {
        var request = Request(string.Concat(Enumerable.Repeat("hello world ", 200)));
        var unary = await Assert.ThrowsAsync<WayangException>(() => _provider.ChatAsync(request, Model, CancellationToken.None));
        Assert.Equal(ErrorCode.ContextLengthExceeded, unary.Code);
        Assert.Equal("local", unary.Error.Details["provider"]);
        var streamed = await Assert.ThrowsAsync<WayangException>(() => StreamTextAsync(_provider, request));
        Assert.Equal(ErrorCode.ContextLengthExceeded, streamed.Code);

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
    public async Task Models_are_listed_loaded_on_first_use_and_unloaded()
    {
        TinyGgufWriter.Write(Path.Combine(_dir.Path, "other.gguf"), new TinyGgufOptions { Seed = 9, HeadCountKv = 2 });
        File.WriteAllText(Path.Combine(_dir.Path, "notes.txt"), "not a model");

        var listed = await _provider.ListModelsAsync(CancellationToken.None);
        Assert.Equal(["other", "tiny"], listed.Select(m => m.Name));
        Assert.All(listed, m => Assert.False(m.Loaded));
        Assert.All(listed, m => Assert.True(m.SizeBytes > 100_000));

        await _provider.LoadAsync("tiny", CancellationToken.None).WaitAsync(Guard);
        Assert.True(_provider.IsLoaded("tiny"));
        listed = await _provider.ListModelsAsync(CancellationToken.None);
        Assert.True(listed.Single(m => m.Name == "tiny").Loaded);
        Assert.Equal(128, listed.Single(m => m.Name == "tiny").ContextLength);
        Assert.False(listed.Single(m => m.Name == "other").Loaded);
        var loaded = Assert.Single(_provider.LoadedModels);
        Assert.Equal("tiny", loaded.Name);
        Assert.True(loaded.SizeBytes > 0);

        Assert.True(_provider.Unload("tiny"));
        Assert.False(_provider.IsLoaded("tiny"));
        Assert.Empty(_provider.LoadedModels);
        // Loaded again on the next use.
        Assert.Equal(2, (await _provider.ChatAsync(Request("hello", 2), "other", CancellationToken.None).WaitAsync(Guard)).Usage.CompletionTokens);
        Assert.True(_provider.IsLoaded("other"));

        var health = await _provider.CheckHealthAsync(CancellationToken.None);
        Assert.True(health.Healthy, health.Error);
        Assert.Equal("llamacpp", _provider.Kind);
        Assert.True(_provider.Capabilities.HasFlag(Wayang.Fast.Inference.Providers.ProviderCapabilities.Local));
    }

    [Fact]
    public async Task Health_reports_a_missing_models_directory_without_throwing()
    {
        using var provider = new LlamaCppProvider(new LlamaCppOptions { ModelsDirectory = Path.Combine(_dir.Path, "nope") });
        var health = await provider.CheckHealthAsync(CancellationToken.None);
        Assert.False(health.Healthy);
        Assert.Empty(await provider.ListModelsAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Embeddings_are_one_pooled_vector_per_input()
    {
        var request = new EmbeddingRequest { Inputs = ["hello world", "the", "hello world"] };
        var response = await _provider.EmbedAsync(request, Model, CancellationToken.None).WaitAsync(Guard);
        Assert.Equal(3, response.Vectors.Count);
        Assert.All(response.Vectors, v => Assert.Equal(64, v.Length));
        Assert.Contains(response.Vectors[0], x => x != 0);
        Assert.Equal(response.Vectors[0], response.Vectors[2]);
        Assert.NotEqual(response.Vectors[0], response.Vectors[1]);
        // BOS plus "▁hello" "▁world", and BOS plus "▁the".
        Assert.Equal(3 + 2 + 3, response.Usage.PromptTokens);
    }
}
