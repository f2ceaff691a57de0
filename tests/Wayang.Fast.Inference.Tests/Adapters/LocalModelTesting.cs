using System.Text;
using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Tests.Gguf;

namespace Wayang.Fast.Inference.Tests.Adapters;

// What the tests of the in-process providers (llamacpp, gollek) share: the tiny GGUF model in a models directory of
// its own, the requests they send it and the text of a stream.
internal static class LocalModelTesting
{
    public const string Model = "tiny";
    // A guard against a hung test, not a timing assertion: every wait here ends on a condition long before this.
    public static readonly TimeSpan Guard = TimeSpan.FromMinutes(2);

    // A models directory holding the tiny model (256 tokens of trained context) as "tiny".
    public static TempDirectory ModelsDirectory(string area)
    {
        var dir = new TempDirectory(area);
        TinyGgufWriter.Write(Path.Combine(dir.Path, Model + ".gguf"), new TinyGgufOptions { ContextLength = 256 });
        return dir;
    }

    public static ChatRequest Request(string user, int maxTokens = 12, params string[] stop) => new()
    {
        Messages = [ChatMessage.Text(ChatRole.System, "be brief"), ChatMessage.Text(ChatRole.User, user)],
        MaxTokens = maxTokens,
        Temperature = 0,
        Stop = [.. stop],
    };

    public static async Task<string> StreamTextAsync(IInferenceProvider provider, ChatRequest request, CancellationToken ct = default)
    {
        var sb = new StringBuilder();
        await foreach (var d in provider.StreamChatAsync(request, Model, ct))
            sb.Append(d.Content);
        return sb.ToString();
    }
}
