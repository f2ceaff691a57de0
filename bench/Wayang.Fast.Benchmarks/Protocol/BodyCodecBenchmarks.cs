using System.Buffers;
using BenchmarkDotNet.Attributes;
using MessagePack;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Benchmarks.Protocol;

// MessagePack bodies with the options the server uses: Trusted to write, Untrusted to read socket input.
// Deserialization allocates the message object and its strings by design; serialization into a reused buffer should not.
[MemoryDiagnoser]
public class BodyCodecBenchmarks
{
    private readonly ArrayBufferWriter<byte> _output = new(4 * 1024);
    private readonly HelloRequest _hello = new() { ProtocolVersion = 1, ClientName = "wayang-cli/0.1.0", ApiKey = "wk_example_0123456789abcdef", InitialStreamCredit = 32 };
    private readonly KeyCreateRequest _keyCreate = new() { TenantId = "acme", Name = "ci-bot", Roles = ["developer", "viewer"] };
    private ReadOnlySequence<byte> _helloBytes;
    private ReadOnlySequence<byte> _keyCreateBytes;

    [GlobalSetup]
    public void Setup()
    {
        _helloBytes = new ReadOnlySequence<byte>(MessagePackSerializer.Serialize(_hello, WireOptions.Trusted));
        _keyCreateBytes = new ReadOnlySequence<byte>(MessagePackSerializer.Serialize(_keyCreate, WireOptions.Trusted));
    }

    [Benchmark]
    public int SerializeHello()
    {
        _output.ResetWrittenCount();
        MessagePackSerializer.Serialize(_output, _hello, WireOptions.Trusted);
        return _output.WrittenCount;
    }

    [Benchmark]
    public HelloRequest DeserializeHello() => MessagePackSerializer.Deserialize<HelloRequest>(_helloBytes, WireOptions.Untrusted);

    [Benchmark]
    public int SerializeKeyCreate()
    {
        _output.ResetWrittenCount();
        MessagePackSerializer.Serialize(_output, _keyCreate, WireOptions.Trusted);
        return _output.WrittenCount;
    }

    [Benchmark]
    public KeyCreateRequest DeserializeKeyCreate() => MessagePackSerializer.Deserialize<KeyCreateRequest>(_keyCreateBytes, WireOptions.Untrusted);
}
