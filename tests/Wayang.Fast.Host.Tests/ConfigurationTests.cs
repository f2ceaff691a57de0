using Wayang.Fast.Server;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Host.Tests;

public sealed class ConfigurationTests
{
    private static readonly Dictionary<string, string?> NoFlags = [];

    [Fact]
    public void Defaults_apply_without_file_environment_or_flags()
    {
        using var dir = new TempDirectory();
        var options = ServeConfiguration.BindServerOptions(ServeConfiguration.Build(null, [], NoFlags, dir.Path));

        var defaults = new WayangServerOptions();
        Assert.Equal(defaults.Port, options.Port);
        Assert.Equal(defaults.HttpPort, options.HttpPort);
        Assert.Equal(defaults.DataDirectory, options.DataDirectory);
        Assert.Equal(DurabilityMode.Fsync, options.Durability);
    }

    [Fact]
    public void File_then_environment_then_flags_in_that_order_of_precedence()
    {
        using var dir = new TempDirectory();
        var file = Path.Combine(dir.Path, "custom.json");
        File.WriteAllText(file, """
            { "Wayang": { "Server": { "Port": 1000, "HttpPort": 1001, "DataDirectory": "from-file", "Durability": "relaxed", "ListenAddress": "10.0.0.1", "MaxConnections": 7 } } }
            """);
        var environment = new Dictionary<string, string?>
        {
            ["WAYANG_Server__Port"] = "2000",
            ["WAYANG_Server__ListenAddress"] = "0.0.0.0",
            ["WAYANG_SERVER__HTTPPORT"] = "2001",
            ["UNRELATED__Port"] = "9",
        };
        var flags = new Dictionary<string, string?> { ["Wayang:Server:Port"] = "3000" };

        var options = ServeConfiguration.BindServerOptions(ServeConfiguration.Build(file, environment, flags, dir.Path));

        Assert.Equal(3000, options.Port);                   // flag beats environment and file
        Assert.Equal("0.0.0.0", options.ListenAddress);     // environment beats file
        Assert.Equal(2001, options.HttpPort);               // environment names are case-insensitive
        Assert.Equal("from-file", options.DataDirectory);   // file beats defaults
        Assert.Equal(DurabilityMode.Relaxed, options.Durability);
        Assert.Equal(7, options.MaxConnections);
    }

    [Fact]
    public void Execution_options_bind_from_the_environment_with_the_token_key_as_base64()
    {
        using var dir = new TempDirectory();
        var key = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        var environment = new Dictionary<string, string?>
        {
            ["WAYANG_Server__Execution__MaxQueueDepth"] = "5000",
            ["WAYANG_Server__Execution__IdempotencyRetention"] = "02:00:00",
            ["WAYANG_Server__Execution__TokenSigningKey"] = Convert.ToBase64String(key),
        };

        var options = ServeConfiguration.BindServerOptions(ServeConfiguration.Build(null, environment, NoFlags, dir.Path));

        Assert.Equal(5000, options.Execution.MaxQueueDepth);
        Assert.Equal(TimeSpan.FromHours(2), options.Execution.IdempotencyRetention);
        Assert.Equal(key, options.Execution.TokenSigningKey);
    }

    [Fact]
    public void Storage_tuning_binds_from_the_environment_and_leaves_the_rest_at_the_defaults()
    {
        using var dir = new TempDirectory();
        var environment = new Dictionary<string, string?>
        {
            ["WAYANG_Server__Storage__CheckpointJournalBytes"] = "268435456",
            ["WAYANG_Server__Storage__CheckpointInterval"] = "00:05:00",
            ["WAYANG_Server__Storage__CompactionMinLogBytes"] = "0",
        };

        var options = ServeConfiguration.BindServerOptions(ServeConfiguration.Build(null, environment, NoFlags, dir.Path));

        Assert.Equal(256L << 20, options.Storage.CheckpointJournalBytes);
        Assert.Equal(TimeSpan.FromMinutes(5), options.Storage.CheckpointInterval);
        Assert.Equal(0, options.Storage.CompactionMinLogBytes);
        Assert.Null(options.Storage.StoreMemoryBits);
        Assert.Null(options.Storage.IndexBuckets);
    }

    [Fact]
    public void Appsettings_in_the_working_directory_is_used_when_no_config_flag_is_given()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(Path.Combine(dir.Path, "appsettings.json"), """{ "Wayang": { "Server": { "Port": 4321 } } }""");

        var options = ServeConfiguration.BindServerOptions(ServeConfiguration.Build(null, [], NoFlags, dir.Path));

        Assert.Equal(4321, options.Port);
    }

    [Fact]
    public void Missing_config_file_is_a_usage_error()
    {
        using var dir = new TempDirectory();
        Assert.Throws<UsageException>(() => ServeConfiguration.Build("nope.json", [], NoFlags, dir.Path));
    }

    [Fact]
    public void Invalid_value_is_a_usage_error()
    {
        using var dir = new TempDirectory();
        var environment = new Dictionary<string, string?> { ["WAYANG_Server__Port"] = "not-a-number" };
        Assert.Throws<UsageException>(() => ServeConfiguration.BindServerOptions(ServeConfiguration.Build(null, environment, NoFlags, dir.Path)));
    }

    [Fact]
    public void Environment_mapping_targets_the_Wayang_section_and_top_level_Logging()
    {
        var mapped = ServeConfiguration.MapEnvironment(new Dictionary<string, string?>
        {
            ["WAYANG_Server__DataDirectory"] = "/d",
            ["WAYANG_Logging__LogLevel__Default"] = "Warning",
            ["WAYANG_API_KEY"] = "secret",
            ["PATH"] = "/bin",
        }).ToDictionary(kv => kv.Key, kv => kv.Value);

        Assert.Equal(2, mapped.Count);
        Assert.Equal("/d", mapped["Wayang:Server:DataDirectory"]);
        Assert.Equal("Warning", mapped["Logging:LogLevel:Default"]);
    }

    [Theory]
    [InlineData("127.0.0.1:7500", "127.0.0.1", 7500)]
    [InlineData("example.org", "example.org", 7420)]
    [InlineData("[::1]:9000", "::1", 9000)]
    [InlineData("[::1]", "::1", 7420)]
    [InlineData("localhost:1", "localhost", 1)]
    public void Server_addresses_parse(string value, string host, int port) =>
        Assert.Equal((host, port), WayangCli.ParseServer(value));

    [Theory]
    [InlineData("host:")]
    [InlineData("host:x")]
    [InlineData(":80")]
    [InlineData("host:70000")]
    [InlineData("[::1")]
    public void Bad_server_addresses_are_usage_errors(string value) =>
        Assert.Throws<UsageException>(() => WayangCli.ParseServer(value));
}

public sealed class InferenceConfigurationTests
{
    [Fact]
    public void Providers_models_and_gateway_options_bind_from_the_file_with_the_key_from_the_environment()
    {
        using var dir = new TempDirectory();
        var file = Path.Combine(dir.Path, "custom.json");
        File.WriteAllText(file, """
            { "Wayang": { "Inference": {
                "Providers": [
                  { "Name": "local", "Kind": "llamacpp", "ModelsDirectory": "models", "MaxSequences": 2 },
                  { "Name": "engine", "Kind": "gollek", "ModelsDirectory": "models", "MaxSequences": 16 },
                  { "Name": "ollama", "Kind": "ollama", "BaseAddress": "http://127.0.0.1:11434", "KeepAliveSeconds": 300 },
                  { "Name": "openai", "Kind": "openai", "BaseAddress": "https://api.openai.com" },
                  { "Name": "claude", "Kind": "anthropic", "BaseAddress": "https://api.anthropic.com" },
                  { "Name": "trt", "Kind": "triton", "BaseAddress": "http://10.0.0.5:8000" } ],
                "Models": [ { "Id": "gpt", "Aliases": [ "default" ], "Provider": "openai", "RemoteName": "gpt-4o-mini", "ContextLength": 128000 } ],
                "Gateway": { "TotalTimeout": "00:00:45", "CircuitBreaker": { "FailureThreshold": 3 } } } } }
            """);
        var environment = new Dictionary<string, string?> { ["WAYANG_Inference__Providers__3__ApiKey"] = "sk-from-env" };
        var options = new WayangServerOptions();

        ServeConfiguration.BindInference(ServeConfiguration.Build(file, environment, new Dictionary<string, string?>(), dir.Path), options, dir.Path);

        try
        {
            Assert.Equal([("local", "llamacpp"), ("engine", "gollek"), ("ollama", "ollama"), ("openai", "openai"), ("claude", "anthropic"), ("trt", "triton")],
                options.InferenceProviders.Select(p => (p.Name, p.Kind)));
            var model = Assert.Single(options.InferenceModels);
            Assert.Equal(("gpt", "gpt-4o-mini", 128000, "default"), (model.Id, model.ProviderModel, model.ContextLength, model.Aliases.Single()));
            Assert.Equal(TimeSpan.FromSeconds(45), options.InferenceGateway.TotalTimeout);
            Assert.Equal(3, options.InferenceGateway.CircuitBreaker.FailureThreshold);
        }
        finally
        {
            foreach (var p in options.InferenceProviders.OfType<IDisposable>())
                p.Dispose();
        }
    }

    [Theory]
    [InlineData("""{ "Name": "x", "Kind": "vllm-direct", "BaseAddress": "http://h" }""", "known kinds")]
    [InlineData("""{ "Name": "x", "Kind": "openai" }""", "BaseAddress")]
    [InlineData("""{ "Name": "x", "Kind": "llamacpp" }""", "ModelsDirectory")]
    [InlineData("""{ "Name": "x", "Kind": "gollek" }""", "ModelsDirectory")]
    [InlineData("""{ "Kind": "ollama", "BaseAddress": "http://h" }""", "needs a Name")]
    public void A_provider_that_cannot_work_is_a_usage_error_naming_it(string provider, string expected)
    {
        using var dir = new TempDirectory();
        var file = Path.Combine(dir.Path, "custom.json");
        File.WriteAllText(file, $$"""{ "Wayang": { "Inference": { "Providers": [ {{provider}} ] } } }""");

        var ex = Assert.Throws<UsageException>(() =>
            ServeConfiguration.BindInference(ServeConfiguration.Build(file, [], new Dictionary<string, string?>(), dir.Path), new WayangServerOptions(), dir.Path));

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }
}
