using System.Runtime.CompilerServices;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Server.Metrics;

// Counters owned by one connection. Each field has a single writer at a time: the In* fields are written
// only by the read loop, the Out* and latency fields only under the session writer's lock. So the hot path
// uses plain increments (no shared cache line ping-pong between connections); the /metrics scrape sums live
// sessions with racy-but-untorn 64-bit reads, and a closing session folds its totals into the server's.
internal sealed class SessionStats
{
    public readonly long[] FramesIn = new long[FrameTypeNames.Slots];
    public readonly long[] FramesOut = new long[FrameTypeNames.Slots];
    public long BytesIn;
    public long BytesOut;

    // [opcode * LatencyBuckets.Count + bucket]
    public readonly long[] LatencyBuckets = new long[OpcodeIndex.Count * Metrics.LatencyBuckets.Count];
    public readonly long[] LatencySumTicks = new long[OpcodeIndex.Count];
    public readonly long[] LatencyCount = new long[OpcodeIndex.Count];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void FrameIn(FrameType type, int totalBytes)
    {
        FramesIn[(byte)type & (FrameTypeNames.Slots - 1)]++;
        BytesIn += totalBytes;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void FrameOut(FrameType type, int totalBytes)
    {
        FramesOut[(byte)type & (FrameTypeNames.Slots - 1)]++;
        BytesOut += totalBytes;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Latency(int opcodeIndex, long elapsedTicks)
    {
        LatencyBuckets[(opcodeIndex * Metrics.LatencyBuckets.Count) + Metrics.LatencyBuckets.IndexOf(elapsedTicks)]++;
        LatencySumTicks[opcodeIndex] += elapsedTicks;
        LatencyCount[opcodeIndex]++;
    }

    // Called with the target's lock held (the server's retired totals) or on a private scrape accumulator.
    public void AddTo(SessionStats target)
    {
        for (int i = 0; i < FramesIn.Length; i++)
        {
            target.FramesIn[i] += Volatile.Read(ref FramesIn[i]);
            target.FramesOut[i] += Volatile.Read(ref FramesOut[i]);
        }
        target.BytesIn += Volatile.Read(ref BytesIn);
        target.BytesOut += Volatile.Read(ref BytesOut);
        for (int i = 0; i < LatencyBuckets.Length; i++)
            target.LatencyBuckets[i] += Volatile.Read(ref LatencyBuckets[i]);
        for (int i = 0; i < LatencySumTicks.Length; i++)
        {
            target.LatencySumTicks[i] += Volatile.Read(ref LatencySumTicks[i]);
            target.LatencyCount[i] += Volatile.Read(ref LatencyCount[i]);
        }
    }
}
