namespace Wayang.Fast.Inference.Engine.Kernels;

// Device memory for CpuKernels: managed arrays, shared with the host. Stateless, so one instance serves everyone.
public sealed class CpuMemory : IDeviceMemory<Memory<float>>
{
    public static CpuMemory Instance { get; } = new();

    private CpuMemory()
    {
    }

    public Memory<float> Allocate(long length) => new float[length];

    // No copy: the forward pass reads the model's arrays in place, as it always has.
    public Memory<float> Upload(float[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return data;
    }

    public void Free(Memory<float> buffer)
    {
        // The garbage collector's.
    }

    public Memory<float> Slice(Memory<float> buffer, long offset, long length) => buffer.Slice(checked((int)offset), checked((int)length));

    public void Copy(Memory<float> source, Memory<float> destination) => source.Span.CopyTo(destination.Span);

    public void CopyFromHost(ReadOnlySpan<float> source, Memory<float> destination) => source.CopyTo(destination.Span);

    public void CopyToHost(Memory<float> source, Span<float> destination) => source.Span.CopyTo(destination);
}
