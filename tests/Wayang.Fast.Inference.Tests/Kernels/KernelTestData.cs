namespace Wayang.Fast.Inference.Tests.Kernels;

// Inputs both backends' kernel tests draw from.
internal static class KernelTestData
{
    // Seeded values in [-1, 1], never (near) zero: a kernel that skipped an element must change the result.
    public static float[] RandomArray(Random rng, int length)
    {
        var a = new float[length];
        for (var i = 0; i < length; i++)
        {
            var v = (float)((rng.NextDouble() * 2) - 1);
            a[i] = MathF.Abs(v) < 1e-3f ? 0.5f : v;
        }
        return a;
    }
}
