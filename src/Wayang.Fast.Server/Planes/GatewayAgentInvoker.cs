using System.Text;
using System.Text.Json;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Definitions;
using Wayang.Fast.Control.Secrets;
using Wayang.Fast.Execution.Agents;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Gateway;

namespace Wayang.Fast.Server.Planes;

// AGENT nodes through the inference gateway: the node's agent version gives the model (or alias), the system prompt,
// the template filled from the node's input, the parameters and tools; its credentialRefs are resolved in the run's
// tenant and the first one is sent as the provider credential. The node's output is
// {"text", "model", "provider", "finishReason", "usage": {"promptTokens", "completionTokens"}, "toolCalls"?}.
// Failures become the node's error code (the inference code's name), retryable as the registry says.
internal sealed class GatewayAgentInvoker(InferenceGateway gateway, AgentCatalog agents, SecretStore? secrets) : IInferenceGateway
{
    public async ValueTask<AgentCallResult> CallAgentAsync(AgentCall call, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(call);
        try
        {
            var agent = agents.Agents.Get(call.TenantId, call.Agent, call.AgentVersion ?? 0).Definition;
            var request = await BuildRequestAsync(call, agent, cancellationToken).ConfigureAwait(false);
            var response = await gateway.ChatAsync(request, cancellationToken).ConfigureAwait(false);
            return new AgentCallResult(true, Output(response));
        }
        catch (WayangException ex)
        {
            return new AgentCallResult(false, null, ex.Error.Name, ex.Error.Message, ex.Error.Retryable);
        }
    }

    private async Task<ChatRequest> BuildRequestAsync(AgentCall call, AgentDefinition agent, CancellationToken ct)
    {
        var request = new ChatRequest
        {
            Model = agent.Model ?? agent.ModelAlias ?? "",
            TenantId = call.TenantId,
            Agent = call.Agent,
            Preference = (RoutePreference)(int)agent.ProviderPreference,
            Temperature = agent.Parameters?.Temperature,
            TopP = agent.Parameters?.TopP,
            MaxTokens = agent.Parameters?.MaxTokens,
            Stop = agent.Parameters?.Stop ?? [],
            Seed = agent.Parameters?.Seed,
            Tools = [.. agent.Tools.Select(t => new ToolSpec { Name = t.Name, Description = t.Description, ParametersJson = t.Parameters?.GetRawText() })],
        };
        if (!string.IsNullOrEmpty(agent.SystemPrompt))
            request.Messages.Add(ChatMessage.Text(ChatRole.System, agent.SystemPrompt));
        request.Messages.Add(ChatMessage.Text(ChatRole.User, Render(agent, call.Input)));
        if (agent.CredentialRefs.Count > 0)
        {
            if (secrets is null)
                throw new WayangException(ErrorCode.Unavailable, $"Agent '{call.Agent}' names credentials, but this server keeps no secrets.");
            var value = await secrets.ResolveAsync(call.TenantId, agent.CredentialRefs[0], ct).ConfigureAwait(false);
            request.ApiKey = Encoding.UTF8.GetString(value.Value);
        }
        return request;
    }

    // "{{name}}" placeholders from the node input's top-level properties (strings as they are, other values as JSON);
    // a missing required variable fails the call, a missing optional one renders as "".
    internal static string Render(AgentDefinition agent, JsonElement? input)
    {
        var template = agent.PromptTemplate ?? "";
        var text = new StringBuilder(template.Length + 64);
        int at = 0;
        while (at < template.Length)
        {
            int open = template.IndexOf("{{", at, StringComparison.Ordinal);
            int close = open < 0 ? -1 : template.IndexOf("}}", open + 2, StringComparison.Ordinal);
            if (open < 0 || close < 0)
            {
                text.Append(template, at, template.Length - at);
                break;
            }
            text.Append(template, at, open - at);
            var name = template[(open + 2)..close].Trim();
            var declared = agent.Variables.FirstOrDefault(v => v.Name == name);
            if (input is { ValueKind: JsonValueKind.Object } obj && obj.TryGetProperty(name, out var value))
                text.Append(value.ValueKind == JsonValueKind.String ? value.GetString() : value.GetRawText());
            else if (declared is { Required: true })
                throw new WayangException(ErrorCode.InvalidArgument, $"Agent input is missing the required variable '{name}'.");
            at = close + 2;
        }
        return text.ToString();
    }

    private static JsonElement Output(ChatResponse response)
    {
        var choice = response.Choices.Count > 0 ? response.Choices[0] : new ChatChoice();
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("text", choice.Message.TextContent());
            json.WriteString("model", response.Model);
            json.WriteString("provider", response.Provider);
            json.WriteString("finishReason", choice.FinishReason.ToString().ToUpperInvariant());
            json.WriteStartObject("usage");
            json.WriteNumber("promptTokens", response.Usage.PromptTokens);
            json.WriteNumber("completionTokens", response.Usage.CompletionTokens);
            json.WriteEndObject();
            if (choice.Message.ToolCalls.Count > 0)
            {
                json.WriteStartArray("toolCalls");
                foreach (var t in choice.Message.ToolCalls)
                {
                    json.WriteStartObject();
                    json.WriteString("id", t.Id);
                    json.WriteString("name", t.Name);
                    json.WriteString("arguments", t.ArgumentsJson);
                    json.WriteEndObject();
                }
                json.WriteEndArray();
            }
            json.WriteEndObject();
        }
        using var doc = JsonDocument.Parse(buffer.WrittenMemory);
        return doc.RootElement.Clone();
    }
}
