using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Wayang.Fast.Execution.Engine;

// One reusable buffer (and JSON writer) per thread for durable records: IStateStore.PutAsync copies the bytes into the
// journal before it returns, so the buffer is free again as soon as the put is issued.
internal sealed class RecordWriter
{
    // A buffer that grew past this (a huge run record) is dropped rather than kept per thread.
    private const int MaxRetainedBytes = 1 << 20;

    [ThreadStatic]
    private static RecordWriter? _cached;

    private readonly ArrayBufferWriter<byte> _buffer = new(4096);
    private readonly Utf8JsonWriter _writer;

    private RecordWriter() => _writer = new Utf8JsonWriter(_buffer, new JsonWriterOptions { SkipValidation = true });

    public static RecordWriter Rent()
    {
        var writer = _cached ?? new RecordWriter();
        _cached = null;
        return writer;
    }

    public static void Return(RecordWriter writer)
    {
        if (writer._buffer.Capacity <= MaxRetainedBytes)
            _cached = writer;
    }

    // A run record in its binary format (RunRecordCodec).
    public ReadOnlyMemory<byte> SerializeRun(Runs.RunState run)
    {
        _buffer.ResetWrittenCount();
        Runs.RunRecordCodec.Write(_buffer, run);
        return _buffer.WrittenMemory;
    }

    public ReadOnlyMemory<byte> Serialize<T>(T value, JsonTypeInfo<T> typeInfo)
    {
        _buffer.ResetWrittenCount();
        _writer.Reset(_buffer);
        JsonSerializer.Serialize(_writer, value, typeInfo);
        _writer.Flush();
        return _buffer.WrittenMemory;
    }
}
