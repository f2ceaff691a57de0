using Wayang.Fast.Inference.Contracts;
using Wayang.Fast.Inference.Providers;
using Wayang.Fast.Inference.Routing;

namespace Wayang.Fast.Inference.Tests;

// The inference enums that travel on the wire (as numbers) or sit in stored policies (as names): explicit values,
// append-only. A change here is a protocol change (protocol-spec/inference.md, messages.md).
public sealed class WireEnumTests
{
    [Fact]
    public void Wire_enum_values_are_frozen()
    {
        Assert.Equal([("System", 0), ("User", 1), ("Assistant", 2), ("Tool", 3)], Values<ChatRole>());
        Assert.Equal([("Unspecified", 0), ("Stop", 1), ("Length", 2), ("ToolCalls", 3), ("ContentFilter", 4), ("Cancelled", 5)], Values<FinishReason>());
        Assert.Equal([("Text", 0), ("JsonObject", 1), ("JsonSchema", 2)], Values<ResponseFormat>());
        Assert.Equal([("Text", 0)], Values<ContentPartKind>());
        // The agent definition's ProviderPreference (AUTO 0, LOCAL 1, CLOUD 2) converts by value.
        Assert.Equal([("Auto", 0), ("Local", 1), ("Cloud", 2)], Values<RoutePreference>());
        Assert.Equal([("None", 0), ("Chat", 1), ("Streaming", 2), ("Embeddings", 4), ("Tools", 8), ("JsonMode", 16), ("Local", 32)], Values<ProviderCapabilities>());
        Assert.Equal([("Closed", 0), ("Open", 1), ("HalfOpen", 2)], Values<BreakerState>());
        Assert.Equal([("Default", 0), ("Next", 1), ("Target", 2), ("Retry", 3), ("Fail", 4)], Values<FallbackAction>());
    }

    // The GGUF file format's own numbering (ggml.h, gguf.h, llama-vocab.h): our loader must never drift from it.
    [Fact]
    public void Gguf_format_enums_follow_ggml()
    {
        Assert.Equal([("UInt8", 0), ("Int8", 1), ("UInt16", 2), ("Int16", 3), ("UInt32", 4), ("Int32", 5), ("Float32", 6), ("Bool", 7),
            ("String", 8), ("Array", 9), ("UInt64", 10), ("Int64", 11), ("Float64", 12)], Values<Wayang.Fast.Inference.Engine.Gguf.GgufValueType>());
        Assert.Equal([("F32", 0), ("F16", 1), ("Q4_0", 2), ("Q4_1", 3), ("Q5_0", 6), ("Q5_1", 7), ("Q8_0", 8), ("Q8_1", 9), ("Q2_K", 10),
            ("Q3_K", 11), ("Q4_K", 12), ("Q5_K", 13), ("Q6_K", 14), ("Q8_K", 15), ("I8", 24), ("I16", 25), ("I32", 26), ("I64", 27), ("F64", 28), ("BF16", 30)],
            Values<Wayang.Fast.Inference.Engine.Gguf.GgmlType>());
        Assert.Equal([("Undefined", 0), ("Normal", 1), ("Unknown", 2), ("Control", 3), ("UserDefined", 4), ("Unused", 5), ("Byte", 6)],
            Values<Wayang.Fast.Inference.Engine.Tokenization.GgufTokenType>());
    }

    [Fact]
    public void Stored_policy_action_names_are_frozen()
    {
        var json = FallbackPolicyStore.ToJson(new TenantFallbackPolicy
        {
            Default = new FallbackPolicy
            {
                OnError =
                {
                    ["A"] = new FallbackRule { Action = FallbackAction.Default }, ["B"] = new FallbackRule { Action = FallbackAction.Next },
                    ["C"] = new FallbackRule { Action = FallbackAction.Target }, ["D"] = new FallbackRule { Action = FallbackAction.Retry },
                    ["E"] = new FallbackRule { Action = FallbackAction.Fail },
                },
            },
        });
        foreach (var name in new[] { "\"DEFAULT\"", "\"NEXT\"", "\"TARGET\"", "\"RETRY\"", "\"FAIL\"" })
            Assert.Contains(name, json, StringComparison.Ordinal);
    }

    private static (string, int)[] Values<T>() where T : struct, Enum =>
        [.. Enum.GetValues<T>().Select(v => (v.ToString(), Convert.ToInt32(v, System.Globalization.CultureInfo.InvariantCulture)))];
}
