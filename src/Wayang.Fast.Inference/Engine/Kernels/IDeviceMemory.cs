namespace Wayang.Fast.Inference.Engine.Kernels;

// The few device-memory operations the forward pass needs beside IKernels, over the same TBuffer: f32 buffers it
// allocates (K/V caches, activations), the weights it uploads once, slices of both, and the per-step host traffic
// (logits down). The CPU backend (CpuMemory) is the identity on Memory<float>: uploading weights wraps the model's
// array and nothing is copied that the CPU path did not copy before. Buffers from Allocate and Upload belong to the
// memory until Free (or the backend's disposal) releases them.
public interface IDeviceMemory<TBuffer>
    where TBuffer : struct
{
    // A zeroed buffer of length floats.
    TBuffer Allocate(long length);

    // A buffer holding data, which the caller does not change afterwards (weights): the CPU backend uses the array itself.
    TBuffer Upload(float[] data);

    // Releases a buffer that Allocate or Upload returned (not a slice of one).
    void Free(TBuffer buffer);

    TBuffer Slice(TBuffer buffer, long offset, long length);

    // destination[..source.Length] = source.
    void Copy(TBuffer source, TBuffer destination);

    // destination[..source.Length] = source, host to device.
    void CopyFromHost(ReadOnlySpan<float> source, TBuffer destination);

    // destination[..source.Length] = source, device to host.
    void CopyToHost(TBuffer source, Span<float> destination);
}
