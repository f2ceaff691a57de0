using ILGPU;
using ILGPU.Runtime;

namespace Wayang.Fast.Inference.Engine.Kernels;

// Device memory for IlgpuKernels, on its accelerator. Every buffer it hands out stays owned here, keyed by the view's
// underlying buffer, until Free disposes it; disposing the memory (IlgpuKernels does, before its accelerator) releases
// whatever is left. Not thread-safe: like the kernels, one forward pass drives it from one thread at a time.
public sealed class IlgpuMemory : IDeviceMemory<ArrayView<float>>, IDisposable
{
    private readonly Accelerator _accelerator;
    private readonly Dictionary<MemoryBuffer, MemoryBuffer1D<float, Stride1D.Dense>> _owned = [];

    internal IlgpuMemory(Accelerator accelerator) => _accelerator = accelerator;

    // Device bytes held by buffers not yet freed.
    public long AllocatedBytes => _owned.Values.Sum(b => b.LengthInBytes);

    public ArrayView<float> Allocate(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length == 0)
            return default;
        IlgpuKernels.Bind(_accelerator);
        var buffer = _accelerator.Allocate1D<float>(length);
        buffer.MemSetToZero();
        _accelerator.Synchronize();
        return Own(buffer);
    }

    public ArrayView<float> Upload(float[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Length == 0)
            return default;
        IlgpuKernels.Bind(_accelerator);
        return Own(_accelerator.Allocate1D(data));
    }

    public void Free(ArrayView<float> buffer)
    {
        if (((IArrayView)buffer).Buffer is { } raw && _owned.Remove(raw, out var owned))
        {
            IlgpuKernels.Bind(_accelerator);
            owned.Dispose();
        }
    }

    public ArrayView<float> Slice(ArrayView<float> buffer, long offset, long length) => buffer.SubView(offset, length);

    public void Copy(ArrayView<float> source, ArrayView<float> destination)
    {
        if (source.Length == 0)
            return;
        IlgpuKernels.Bind(_accelerator);
        source.CopyTo(destination.SubView(0, source.Length));
        _accelerator.Synchronize();
    }

    public void CopyFromHost(ReadOnlySpan<float> source, ArrayView<float> destination)
    {
        if (source.IsEmpty)
            return;
        IlgpuKernels.Bind(_accelerator);
        destination.SubView(0, source.Length).CopyFromCPU(source);
    }

    public void CopyToHost(ArrayView<float> source, Span<float> destination)
    {
        if (source.Length == 0)
            return;
        IlgpuKernels.Bind(_accelerator);
        source.CopyToCPU(destination[..checked((int)source.Length)]);
    }

    public void Dispose()
    {
        foreach (var buffer in _owned.Values)
            buffer.Dispose();
        _owned.Clear();
    }

    private ArrayView<float> Own(MemoryBuffer1D<float, Stride1D.Dense> buffer)
    {
        ArrayView<float> view = buffer.View;
        _owned.Add(((IArrayView)view).Buffer, buffer);
        return view;
    }
}
