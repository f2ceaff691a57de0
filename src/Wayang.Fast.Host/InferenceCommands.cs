using System.CommandLine;
using System.Globalization;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Host;

// `wayang inference chat|models|providers|policy`: the inference gateway (protocol-spec/inference.md) from the shell.
public static partial class WayangCli
{
    private static Command BuildInference(CliEnvironment env)
    {
        var inference = new Command("inference", "The inference gateway: chat, models, providers, the tenant's fallback policy.");

        var chatConnection = new ConnectionOptions();
        var chatModel = new Option<string>("--model", "-m") { Description = "Model id or alias (or provider/model).", Required = true };
        var chatPrompt = new Argument<string>("prompt") { Description = "The user message." };
        var chatSystem = new Option<string?>("--system") { Description = "A system message before it." };
        var chatMaxTokens = new Option<int>("--max-tokens") { Description = "Most tokens to generate (default: the provider's)." };
        var chatTemperature = new Option<double>("--temperature") { Description = "Sampling temperature (default: the provider's).", DefaultValueFactory = _ => -1 };
        var chatStream = new Option<bool>("--stream") { Description = "Print tokens as they arrive." };
        var chat = new Command("chat", "Send one chat request and print the answer (the provider that served it on stderr).")
            { chatPrompt, chatModel, chatSystem, chatMaxTokens, chatTemperature, chatStream };
        chatConnection.AddTo(chat);
        chat.SetAction((p, ct) => Guard(env, async () =>
        {
            var messages = new List<ChatMessageDto>();
            if (p.GetValue(chatSystem) is { } system)
                messages.Add(new ChatMessageDto { Role = 0, Parts = [system] });
            messages.Add(new ChatMessageDto { Role = 1, Parts = [p.GetValue(chatPrompt)!] });
            var request = new ChatRequestDto { Model = p.GetValue(chatModel)!, Messages = [.. messages], MaxTokens = p.GetValue(chatMaxTokens), Temperature = p.GetValue(chatTemperature) };
            await using var client = await chatConnection.ConnectAsync(p, env, ct);
            if (p.GetValue(chatStream))
            {
                await foreach (var delta in client.StreamChatAsync(request, ct))
                {
                    if (delta.Provider.Length > 0)
                        await env.Error.WriteLineAsync($"provider {delta.Provider}, model {delta.Model}");
                    await env.Out.WriteAsync(delta.Content);
                }
                await env.Out.WriteLineAsync();
                return ExitOk;
            }
            var response = await client.ChatAsync(request, ct: ct);
            foreach (var step in response.FallbackPath)
                await env.Error.WriteLineAsync($"fell back from {step.Provider}/{step.Model}: {step.ErrorCode}");
            await env.Error.WriteLineAsync($"provider {response.Provider}, model {response.Model}, tokens {Num(response.PromptTokens)} + {Num(response.CompletionTokens)}");
            await env.Out.WriteLineAsync(response.Choices.Length > 0 ? string.Concat(response.Choices[0].Message.Parts) : "");
            return ExitOk;
        }));
        inference.Add(chat);

        var modelsConnection = new ConnectionOptions();
        var modelsJson = JsonFlag();
        var models = new Command("models", "List the models the gateway knows.") { modelsJson };
        modelsConnection.AddTo(models);
        models.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await modelsConnection.ConnectAsync(p, env, ct);
            var all = await client.ListModelsAsync(ct: ct);
            if (p.GetValue(modelsJson))
            {
                await WriteJsonAsync(env, all);
                return ExitOk;
            }
            await WriteTableAsync(env.Out, ["ID", "ALIASES", "PROVIDER", "REMOTE", "CONTEXT"], all.Select(m => new[]
            {
                m.Id, m.Aliases.Length == 0 ? "-" : string.Join(",", m.Aliases), m.Provider, m.RemoteName, m.ContextLength == 0 ? "-" : Num(m.ContextLength),
            }));
            return ExitOk;
        }));
        inference.Add(models);

        var providersConnection = new ConnectionOptions();
        var providersJson = JsonFlag();
        var providers = new Command("providers", "List providers with their health and circuit breakers.") { providersJson };
        providersConnection.AddTo(providers);
        providers.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await providersConnection.ConnectAsync(p, env, ct);
            var all = await client.ListProvidersAsync(ct: ct);
            if (p.GetValue(providersJson))
            {
                await WriteJsonAsync(env, all);
                return ExitOk;
            }
            await WriteTableAsync(env.Out, ["NAME", "KIND", "HEALTHY", "LATENCY-MS", "OPEN-BREAKERS", "ERROR"], all.Select(s => new[]
            {
                s.Name, s.Kind, s.Healthy ? "yes" : "no", s.LatencyMs.ToString("0.#", CultureInfo.InvariantCulture),
                Num(s.Breakers.Count(b => b.State == 1)), s.Error.Length == 0 ? "-" : s.Error,
            }));
            return ExitOk;
        }));
        inference.Add(providers);

        inference.Add(BuildFallbackPolicy(env));
        return inference;
    }

    private static Command BuildFallbackPolicy(CliEnvironment env)
    {
        var policy = new Command("policy", "The tenant's fallback policy (JSON, protocol-spec/inference.md#fallback-policies).");

        var getConnection = new ConnectionOptions();
        var getTenant = TenantOption();
        var get = new Command("get", "Print the policy as JSON (the defaults when none is set).") { getTenant };
        getConnection.AddTo(get);
        get.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await getConnection.ConnectAsync(p, env, ct);
            var dto = await client.GetFallbackPolicyAsync(p.GetValue(getTenant), ct: ct);
            if (!dto.IsSet)
                await env.Error.WriteLineAsync("no policy set: the defaults apply");
            await env.Out.WriteLineAsync(dto.PolicyJson);
            return ExitOk;
        }));
        policy.Add(get);

        var setConnection = new ConnectionOptions();
        var setFile = new Argument<string>("file") { Description = "The policy JSON file." };
        var setTenant = TenantOption();
        var set = new Command("set", "Replace the tenant's policy (validated; audited).") { setFile, setTenant };
        setConnection.AddTo(set);
        set.SetAction((p, ct) => Guard(env, async () =>
        {
            var file = p.GetValue(setFile)!;
            var json = ReadFile(env, file);
            await using var client = await setConnection.ConnectAsync(p, env, ct);
            var stored = await client.SetFallbackPolicyAsync(json, p.GetValue(setTenant), ct: ct);
            await env.Out.WriteLineAsync(stored.PolicyJson);
            return ExitOk;
        }));
        policy.Add(set);

        var deleteConnection = new ConnectionOptions();
        var deleteTenant = TenantOption();
        var delete = new Command("delete", "Remove the tenant's policy (the defaults apply again).") { deleteTenant };
        deleteConnection.AddTo(delete);
        delete.SetAction((p, ct) => Guard(env, async () =>
        {
            await using var client = await deleteConnection.ConnectAsync(p, env, ct);
            var dto = await client.DeleteFallbackPolicyAsync(p.GetValue(deleteTenant), ct: ct);
            await env.Out.WriteLineAsync(dto.IsSet ? "deleted" : "no policy was set");
            return ExitOk;
        }));
        policy.Add(delete);
        return policy;
    }
}
