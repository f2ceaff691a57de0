using FASTER.core;

namespace Wayang.Fast.Storage;

// FasterKV callbacks: SpanByteFunctions supplies the variable-length writers (copy into the record, in place
// when the new value fits); reads copy the value out to a fresh byte[] because IStateStore hands out arrays.
internal sealed class StoreFunctions : SpanByteFunctions<SpanByte, byte[], Empty>
{
    public override bool SingleReader(ref SpanByte key, ref SpanByte input, ref SpanByte value, ref byte[] dst, ref ReadInfo readInfo)
    {
        dst = value.ToByteArray();
        return true;
    }

    public override bool ConcurrentReader(ref SpanByte key, ref SpanByte input, ref SpanByte value, ref byte[] dst, ref ReadInfo readInfo)
    {
        dst = value.ToByteArray();
        return true;
    }
}
