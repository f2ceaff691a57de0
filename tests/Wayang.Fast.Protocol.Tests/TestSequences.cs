using System.Buffers;

namespace Wayang.Fast.Protocol.Tests;

// Builds ReadOnlySequence<byte> values out of many segments, the way a socket read may deliver a frame.
internal sealed class TestSegment : ReadOnlySequenceSegment<byte>
{
    public TestSegment(ReadOnlyMemory<byte> memory, long runningIndex)
    {
        Memory = memory;
        RunningIndex = runningIndex;
    }

    public TestSegment Append(ReadOnlyMemory<byte> memory)
    {
        var next = new TestSegment(memory, RunningIndex + Memory.Length);
        Next = next;
        return next;
    }
}

internal static class TestSequences
{
    // Cuts data at the given offsets (ascending, duplicates allowed: they make empty segments, which readers must tolerate).
    public static ReadOnlySequence<byte> Split(byte[] data, IEnumerable<int> cuts)
    {
        var points = cuts.Where(c => c >= 0 && c <= data.Length).Order().ToList();
        points.Add(data.Length);
        int start = 0;
        TestSegment? first = null;
        TestSegment? last = null;
        foreach (var p in points)
        {
            // Each segment gets its own array so a reader cannot get away with assuming contiguity.
            var memory = data.AsSpan(start, p - start).ToArray();
            if (first is null)
                first = last = new TestSegment(memory, 0);
            else
                last = last!.Append(memory);
            start = p;
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    public static ReadOnlySequence<byte> OneBytePerSegment(byte[] data) =>
        data.Length == 0 ? ReadOnlySequence<byte>.Empty : Split(data, Enumerable.Range(1, data.Length - 1));

    public static ReadOnlySequence<byte> RandomSplit(byte[] data, Random random, int maxCuts)
    {
        int n = random.Next(0, maxCuts + 1);
        var cuts = new int[n];
        for (int i = 0; i < n; i++)
            cuts[i] = random.Next(0, data.Length + 1);
        return Split(data, cuts);
    }
}
