using System.Text;
using Wayang.Fast.Inference.Contracts;

namespace Wayang.Fast.Inference.Adapters.LlamaCpp;

// The prompt a chat is rendered into. Models that carry their own Jinja chat template are not interpreted yet (that
// needs a template engine); this plain role-marker format is what every model gets, and the tiny test model has none:
//
//   <|system|>\n{text}\n<|user|>\n{text}\n<|assistant|>\n{text}\n ... <|assistant|>\n
//
// The markers are tokenized as ordinary text, so a model never sees them as control tokens.
public static class LlamaChatTemplate
{
    public static string Render(IReadOnlyList<ChatMessage> messages)
    {
        var sb = new StringBuilder();
        foreach (var m in messages)
        {
            sb.Append(Marker(m.Role)).Append('\n').Append(m.TextContent()).Append('\n');
        }
        sb.Append(Marker(ChatRole.Assistant)).Append('\n');
        return sb.ToString();
    }

    private static string Marker(ChatRole role) => role switch
    {
        ChatRole.System => "<|system|>",
        ChatRole.User => "<|user|>",
        ChatRole.Assistant => "<|assistant|>",
        ChatRole.Tool => "<|tool|>",
        _ => "<|user|>",
    };
}
