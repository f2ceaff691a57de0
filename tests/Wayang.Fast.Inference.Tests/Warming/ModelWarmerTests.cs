using Microsoft.Extensions.Time.Testing;
using Wayang.Fast.Inference.Adapters.LlamaCpp;
using Wayang.Fast.Inference.Adapters.Ollama;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Gateway;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Inference.Providers.Http;
using Wayang.Fast.Inference.Tests.Adapters;
using Wayang.Fast.Inference.Tests.Fakes;
using Wayang.Fast.Inference.Tests.Gguf;
using Wayang.Fast.Testing;

namespace Wayang.Fast.Inference.Tests.Warming;

public sealed class ModelWarmerTests
{
    // A guard against a hung test, not a timing assertion: every wait here ends on a condition long before this.
    private static readonly TimeSpan Guard = TimeSpan.FromMinutes(2);

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly FakeWarmableProvider _local = new("local");
    private readonly FakeProvider _remote = new("remote");
    private readonly ModelRegistry _registry = new();

    public ModelWarmerTests()
    {
        _local.Sizes["m-a"] = 40;
        _local.Sizes["m-b"] = 40;
        _local.Sizes["m-c"] = 40;
        _local.Sizes["m-big"] = 80;
        _registry.Register(new ModelEntry { Id = "a", Aliases = ["alpha"], Provider = "local", RemoteName = "m-a", Format = "gguf" });
        _registry.Register(new ModelEntry { Id = "b", Provider = "local", RemoteName = "m-b", Format = "gguf" });
        _registry.Register(new ModelEntry { Id = "c", Provider = "local", RemoteName = "m-c", Format = "gguf" });
        _registry.Register(new ModelEntry { Id = "big", Provider = "local", RemoteName = "m-big", Format = "gguf" });
        _registry.Register(new ModelEntry { Id = "cloud", Provider = "remote" });
    }

    private ModelWarmer Warmer(ModelWarmerOptions options) => new([_local, _remote], _registry, options, _time);

    private InferenceGateway Gateway(ModelWarmer warmer) => new([_local, _remote], _registry, time: _time) { Usage = warmer };

    private static ChatRequest Request(string model) => new()
    {
        Model = model,
        TenantId = "t1",
        Messages = [ChatMessage.Text(ChatRole.User, "hello")],
    };

    private static LoadedModelSnapshot? Loaded(ModelWarmer warmer, string model) =>
        warmer.Snapshot().Loaded.SingleOrDefault(m => m.Model == model);

    [Fact]
    public async Task Warm_at_start_loads_the_configured_models_by_id_alias_or_provider_path()
    {
        await using var warmer = Warmer(new ModelWarmerOptions { WarmAtStart = ["alpha", "local/m-c", "cloud", "nothing"], RebalanceInterval = TimeSpan.Zero });

        await warmer.StartAsync();

        Assert.Equal(1, _local.LoadsOf("m-a"));
        Assert.Equal(1, _local.LoadsOf("m-c"));
        Assert.Equal(0, _local.LoadsOf("m-b"));
        var snapshot = warmer.Snapshot();
        Assert.Equal(["m-a", "m-c"], snapshot.Loaded.Select(m => m.Model));
        Assert.All(snapshot.Loaded, m => Assert.Equal("local", m.Provider));
        Assert.Equal(80, snapshot.LoadedBytes);
        // A remote model and an unknown name are not warmed (and not failures: nothing was tried).
        Assert.Equal(2, snapshot.Prefetches);
        Assert.Equal(0, snapshot.LoadFailures);
    }

    [Fact]
    public async Task Start_adopts_what_the_runtime_holds_so_its_first_request_is_not_cold()
    {
        _local.Loaded["m-b"] = true;
        await using var warmer = Warmer(new ModelWarmerOptions { RebalanceInterval = TimeSpan.Zero });
        await warmer.StartAsync();
        var gateway = Gateway(warmer);

        await gateway.ChatAsync(Request("b")).WaitAsync(Guard);

        Assert.Equal(40, Loaded(warmer, "m-b")!.SizeBytes);
        Assert.Equal(0, warmer.Snapshot().ColdStarts);
        Assert.Equal(0, _local.LoadsOf("m-b"));
    }

    [Fact]
    public async Task Rebalance_prefetches_the_most_requested_models_and_popularity_decays()
    {
        await using var warmer = Warmer(new ModelWarmerOptions { PopularCount = 1, PopularMinScore = 2, PopularityHalfLife = TimeSpan.FromMinutes(10), RebalanceInterval = TimeSpan.Zero });
        var gateway = Gateway(warmer);
        for (int i = 0; i < 3; i++)
            await gateway.ChatAsync(Request("b")).WaitAsync(Guard);
        await gateway.ChatAsync(Request("a")).WaitAsync(Guard);
        await gateway.ChatAsync(Request("cloud")).WaitAsync(Guard);
        // The runtime dropped both (Ollama's keep_alive ran out): the popular one comes back, the other does not.
        _local.Loaded.Clear();

        await warmer.RebalanceAsync();

        Assert.True(_local.Loaded.ContainsKey("m-b"));
        Assert.False(_local.Loaded.ContainsKey("m-a"));
        Assert.Equal(2, _local.LoadsOf("m-b"));
        Assert.Equal(1, warmer.Snapshot().Prefetches);
        Assert.True(Loaded(warmer, "m-b")!.Popularity >= 2.9);

        // Three requests, two half-lives later, count as 0.75: under the threshold, so no longer prefetched.
        _time.Advance(TimeSpan.FromMinutes(20));
        _local.Loaded.Clear();
        await warmer.RebalanceAsync();
        Assert.Empty(_local.Loaded);
        Assert.Empty(warmer.Snapshot().Loaded);
    }

    [Fact]
    public async Task Loads_over_the_budget_evict_the_least_recently_used_model()
    {
        var options = new ModelWarmerOptions { MemoryBudgetBytes = 100, PopularCount = 0, RebalanceInterval = TimeSpan.Zero };
        await using var warmer = Warmer(options);
        var gateway = Gateway(warmer);
        Assert.True(await warmer.WarmAsync("a"));
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(await warmer.WarmAsync("b"));
        _time.Advance(TimeSpan.FromSeconds(1));
        // A request makes a the most recently used: b is now the least.
        await gateway.ChatAsync(Request("a")).WaitAsync(Guard);
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.True(await warmer.WarmAsync("c"));

        Assert.Equal(1, _local.UnloadsOf("m-b"));
        Assert.Equal(0, _local.UnloadsOf("m-a"));
        var snapshot = warmer.Snapshot();
        Assert.Equal(["m-a", "m-c"], snapshot.Loaded.Select(m => m.Model));
        Assert.Equal(80, snapshot.LoadedBytes);
        Assert.Equal(1, snapshot.Evictions);
        Assert.Equal(0, snapshot.OverBudgetLoads);
        Assert.Equal(_time.GetUtcNow() - TimeSpan.FromSeconds(1), Loaded(warmer, "m-a")!.LastUse);
    }

    [Fact]
    public async Task A_model_with_a_request_in_flight_is_never_evicted_and_the_load_over_budget_is_counted()
    {
        await using var warmer = Warmer(new ModelWarmerOptions { MemoryBudgetBytes = 100, PopularCount = 0, RebalanceInterval = TimeSpan.Zero });
        var gateway = Gateway(warmer);
        Assert.True(await warmer.WarmAsync("big"));
        _local.Close("m-big");
        var inFlight = gateway.ChatAsync(Request("big"));
        await _local.EnteredAsync("m-big").WaitAsync(Guard);
        Assert.Equal(1, Loaded(warmer, "m-big")!.InFlight);
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.True(await warmer.WarmAsync("a"));

        // Nothing could make room (the only other model is busy): the load went over the budget and says so.
        Assert.Equal(0, _local.UnloadsOf("m-big"));
        var snapshot = warmer.Snapshot();
        Assert.Equal(120, snapshot.LoadedBytes);
        Assert.Equal(1, snapshot.OverBudgetLoads);
        Assert.Equal(0, snapshot.Evictions);

        // A rebalance still passes over the busy model, although it is the least recently used: the idle one goes.
        await warmer.RebalanceAsync();
        Assert.Equal(0, _local.UnloadsOf("m-big"));
        Assert.True(_local.Loaded.ContainsKey("m-big"));
        Assert.Equal(1, _local.UnloadsOf("m-a"));
        snapshot = warmer.Snapshot();
        Assert.Equal(1, snapshot.Evictions);
        Assert.Equal("m-big", Assert.Single(snapshot.Loaded).Model);

        _local.Open("m-big");
        await inFlight.WaitAsync(Guard);
        Assert.Equal(0, Loaded(warmer, "m-big")!.InFlight);
    }

    [Fact]
    public async Task A_request_for_a_model_not_loaded_is_a_cold_start_with_its_time_to_first_output()
    {
        await using var warmer = Warmer(new ModelWarmerOptions { RebalanceInterval = TimeSpan.Zero });
        var gateway = Gateway(warmer);
        _local.Close("m-a");
        var cold = gateway.ChatAsync(Request("a"));
        await _local.EnteredAsync("m-a").WaitAsync(Guard);
        Assert.Equal(1, warmer.Snapshot().ColdStarts);
        _time.Advance(TimeSpan.FromMilliseconds(2500));
        _local.Open("m-a");
        await cold.WaitAsync(Guard);

        // The second request finds the model loaded (the runtime loaded it for the first).
        await gateway.ChatAsync(Request("a")).WaitAsync(Guard);
        await gateway.ChatAsync(Request("cloud")).WaitAsync(Guard);

        var snapshot = warmer.Snapshot();
        Assert.Equal(1, snapshot.ColdStarts);
        Assert.Equal(1, snapshot.ColdStartLatency.Count);
        Assert.Equal(2500, snapshot.ColdStartLatency.LastMilliseconds);
        Assert.Equal(2500, snapshot.ColdStartLatency.MaxMilliseconds);
        Assert.Equal(2500, snapshot.ColdStartLatency.MeanMilliseconds);
        Assert.Equal("m-a", Assert.Single(snapshot.Loaded).Model);
    }

    [Fact]
    public async Task A_stream_through_the_gateway_is_in_flight_until_it_is_closed()
    {
        await using var warmer = Warmer(new ModelWarmerOptions { RebalanceInterval = TimeSpan.Zero });
        Assert.True(await warmer.WarmAsync("a"));
        var gateway = Gateway(warmer);
        _time.Advance(TimeSpan.FromSeconds(5));

        await using (var stream = gateway.StreamChatAsync(Request("alpha")).GetAsyncEnumerator())
        {
            Assert.True(await stream.MoveNextAsync().AsTask().WaitAsync(Guard));
            var during = Loaded(warmer, "m-a")!;
            Assert.Equal(1, during.InFlight);
            Assert.Equal(_time.GetUtcNow(), during.LastUse);
            _time.Advance(TimeSpan.FromSeconds(1));
            while (await stream.MoveNextAsync().AsTask().WaitAsync(Guard))
            {
            }
        }

        var after = Loaded(warmer, "m-a")!;
        Assert.Equal(0, after.InFlight);
        Assert.Equal(_time.GetUtcNow(), after.LastUse);
        Assert.Equal(0, warmer.Snapshot().ColdStarts);
        Assert.True(after.Popularity > 0);
    }

    [Fact]
    public async Task The_timer_rebalances_on_its_interval()
    {
        await using var warmer = Warmer(new ModelWarmerOptions { PopularCount = 1, PopularMinScore = 0.5, RebalanceInterval = TimeSpan.FromMinutes(1) });
        await warmer.StartAsync();
        await Gateway(warmer).ChatAsync(Request("c")).WaitAsync(Guard);
        _local.Loaded.Clear();
        var warmed = _local.WarmedAsync("m-c");

        _time.Advance(TimeSpan.FromMinutes(1));

        // The tick's rebalance runs on the thread pool: wait for its load.
        await warmed.WaitAsync(Guard);
        Assert.True(_local.Loaded.ContainsKey("m-c"));
        Assert.Equal(2, _local.LoadsOf("m-c"));
    }

    [Fact]
    public async Task Llama_cpp_models_are_warmed_at_start_and_unloaded_when_evicted()
    {
        using var dir = new TempDirectory("warming");
        TinyGgufWriter.Write(Path.Combine(dir.Path, "tiny.gguf"), new TinyGgufOptions { ContextLength = 256 });
        TinyGgufWriter.Write(Path.Combine(dir.Path, "tiny2.gguf"), new TinyGgufOptions { ContextLength = 256 });
        using var llama = new LlamaCppProvider(new LlamaCppOptions { Name = "llama", ModelsDirectory = dir.Path, ContextLength = 128, MaxSequences = 1 });
        var registry = new ModelRegistry();
        registry.Register(new ModelEntry { Id = "tiny", Provider = "llama", Format = "gguf" });
        registry.Register(new ModelEntry { Id = "tiny2", Provider = "llama", Format = "gguf" });
        var options = new ModelWarmerOptions { WarmAtStart = ["tiny"], PopularCount = 0, RebalanceInterval = TimeSpan.Zero };
        await using var warmer = new ModelWarmer([llama], registry, options, _time);

        await warmer.StartAsync().WaitAsync(Guard);

        Assert.True(llama.IsLoaded("tiny"));
        var tiny = Assert.Single(warmer.Snapshot().Loaded);
        Assert.Equal("tiny", tiny.Model);
        Assert.True(tiny.SizeBytes > 0);
        Assert.Equal(llama.LoadedModels.Single().SizeBytes, tiny.SizeBytes);

        // Room for one of the two (they are the same size): warming the second evicts the first.
        options.MemoryBudgetBytes = tiny.SizeBytes;
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(await warmer.WarmAsync("tiny2").WaitAsync(Guard));

        Assert.False(llama.IsLoaded("tiny"));
        Assert.True(llama.IsLoaded("tiny2"));
        Assert.Equal(1, warmer.Snapshot().Evictions);
        Assert.Equal("tiny2", Assert.Single(warmer.Snapshot().Loaded).Model);
    }

    [Fact]
    public async Task Ollama_models_are_warmed_with_keep_alive_and_evicted_with_keep_alive_zero()
    {
        await using var fake = await FakeOllamaServer.StartAsync();
        using var ollama = new OllamaProvider(new HttpProviderOptions { Name = "ollama", BaseAddress = fake.Address });
        var registry = new ModelRegistry();
        registry.Register(new ModelEntry { Id = "llama3", Provider = "ollama", RemoteName = "llama3.2:3b" });
        var options = new ModelWarmerOptions { WarmAtStart = ["llama3"], PopularCount = 0, RebalanceInterval = TimeSpan.Zero };
        await using var warmer = new ModelWarmer([ollama], registry, options, _time);

        await warmer.StartAsync().WaitAsync(Guard);

        var warm = fake.Last("/api/generate").Json;
        Assert.Equal("llama3.2:3b", warm.GetProperty("model").GetString());
        Assert.Equal(-1, warm.GetProperty("keep_alive").GetInt32());
        Assert.True(fake.Loaded.ContainsKey("llama3.2:3b"));
        var loaded = Assert.Single(warmer.Snapshot().Loaded);
        Assert.Equal(2_019_393_189, loaded.SizeBytes);
        Assert.Equal(1, warmer.Snapshot().Prefetches);

        // The embedding model does not fit beside it: the chat model, least recently used, is unloaded.
        options.MemoryBudgetBytes = 2_100_000_000;
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(await warmer.WarmAsync("ollama/nomic-embed-text:latest").WaitAsync(Guard));

        var unloads = fake.Http.Requests.Where(r => r.PathAndQuery == "/api/generate" && r.Json.GetProperty("keep_alive").GetInt32() == 0).ToList();
        Assert.Equal("llama3.2:3b", Assert.Single(unloads).Json.GetProperty("model").GetString());
        Assert.False(fake.Loaded.ContainsKey("llama3.2:3b"));
        Assert.True(fake.Loaded.ContainsKey("nomic-embed-text:latest"));
        Assert.Equal("nomic-embed-text:latest", Assert.Single(warmer.Snapshot().Loaded).Model);
        Assert.Equal(1, warmer.Snapshot().Evictions);
    }
}
