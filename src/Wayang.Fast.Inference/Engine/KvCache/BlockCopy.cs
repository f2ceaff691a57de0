namespace Wayang.Fast.Inference.Engine.KvCache;

// A copy-on-write the kernel must perform before this step's writes: every slot of Source copied to Destination.
public readonly record struct BlockCopy(int Source, int Destination);
