using Wayang.Fast.Common.Errors;
using Wayang.Fast.Inference.Models;
using Wayang.Fast.Inference.Tests.Fakes;

namespace Wayang.Fast.Host.Tests;

// `wayang inference` against a real in-process server whose gateway has two scripted providers.
public sealed class InferenceCliTests : IAsyncLifetime
{
    private readonly FakeProvider _a = new("a");
    private readonly FakeProvider _b = new("b");
    private CliTenantServer _shop = null!;
    private Dictionary<string, string?> _dev = null!, _viewer = null!;

    public async Task InitializeAsync()
    {
        _shop = await CliTenantServer.StartAsync(o =>
        {
            o.InferenceProviders = [_a, _b];
            o.InferenceModels = [new ModelEntry { Id = "small", Aliases = ["default"], Provider = "a", ContextLength = 4096 }, new ModelEntry { Id = "big", Provider = "b" }];
        }, ("developer", "dev"), ("viewer", "view"));
        (_dev, _viewer) = (_shop.As("developer"), _shop.As("viewer"));
    }

    public async Task DisposeAsync() => await _shop.DisposeAsync();

    private static async Task<CliRun> OkAsync(Dictionary<string, string?> who, params string[] args)
    {
        var (code, run) = await CliRun.ExecAsync(who, args);
        Assert.True(code == 0, $"{string.Join(' ', args)} exited {code}: {run.StdOut}{run.StdErr}");
        return run;
    }

    [Fact]
    public async Task Chat_prints_the_answer_and_names_the_provider_unary_and_streamed()
    {
        var run = await OkAsync(_dev, "inference", "chat", "hello", "--model", "default");
        Assert.Equal("ok", run.StdOut.Trim());
        Assert.Contains("provider a", run.StdErr, StringComparison.Ordinal);

        run = await OkAsync(_dev, "inference", "chat", "hello", "-m", "big", "--stream");
        Assert.Equal("ok", run.StdOut.Trim());
        Assert.Contains("provider b", run.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_policy_set_from_a_file_reroutes_chat_and_shows_the_fallback()
    {
        var file = Path.Combine(_shop.DataPath, "policy.json");
        File.WriteAllText(file, """{"default":{"chain":[{"model":"big"}]}}""");
        await OkAsync(_dev, "inference", "policy", "set", file);
        Assert.Contains("\"big\"", (await OkAsync(_viewer, "inference", "policy", "get")).StdOut, StringComparison.Ordinal);
        _a.OnChat = (_, _, _) => FakeProvider.Fails(ErrorCode.ProviderUnavailable, "a");

        var run = await OkAsync(_dev, "inference", "chat", "hello", "-m", "small");

        Assert.Contains("fell back from a/small: PROVIDER_UNAVAILABLE", run.StdErr, StringComparison.Ordinal);
        Assert.Contains("provider b", run.StdErr, StringComparison.Ordinal);
        Assert.Equal("deleted", (await OkAsync(_dev, "inference", "policy", "delete")).StdOut.Trim());

        File.WriteAllText(file, """{"default":{"onError":{"NOPE":{"action":"NEXT"}}}}""");
        var (code, bad) = await CliRun.ExecAsync(_dev, "inference", "policy", "set", file);
        Assert.NotEqual(0, code);
        Assert.Contains("FALLBACK_POLICY_INVALID", bad.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_and_providers_are_listed()
    {
        var models = await OkAsync(_viewer, "inference", "models");
        Assert.Contains("small", models.StdOut, StringComparison.Ordinal);
        Assert.Contains("default", models.StdOut, StringComparison.Ordinal);
        var providers = await OkAsync(_viewer, "inference", "providers");
        Assert.Contains("fake", providers.StdOut, StringComparison.Ordinal);
        Assert.Contains("yes", providers.StdOut, StringComparison.Ordinal);
    }
}
