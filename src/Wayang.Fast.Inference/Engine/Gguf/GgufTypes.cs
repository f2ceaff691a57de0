namespace Wayang.Fast.Inference.Engine.Gguf;

// Value types of GGUF metadata, numbered as the GGUF specification numbers them.
public enum GgufValueType : uint
{
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
}

// ggml tensor types, numbered as ggml numbers them. Only F32, F16 and Q8_0 dequantize; the others are named so that a
// file using them opens (its sizes check) and the error on use says which type it is.
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
}

internal static class GgmlTypeInfo
{
    // (elements per block, bytes per block) from ggml's type traits; null for a type this reader does not know, whose
    // size therefore cannot be checked.
    public static (int BlockSize, int BlockBytes)? Layout(GgmlType type) => type switch
    {
        GgmlType.F32 => (1, 4),
        GgmlType.F16 => (1, 2),
        GgmlType.BF16 => (1, 2),
        GgmlType.F64 => (1, 8),
        GgmlType.I8 => (1, 1),
        GgmlType.I16 => (1, 2),
        GgmlType.I32 => (1, 4),
        GgmlType.I64 => (1, 8),
        GgmlType.Q4_0 => (32, 18),
        GgmlType.Q4_1 => (32, 20),
        GgmlType.Q5_0 => (32, 22),
        GgmlType.Q5_1 => (32, 24),
        GgmlType.Q8_0 => (32, 34),
        GgmlType.Q8_1 => (32, 36),
        GgmlType.Q2_K => (256, 84),
        GgmlType.Q3_K => (256, 110),
        GgmlType.Q4_K => (256, 144),
        GgmlType.Q5_K => (256, 176),
        GgmlType.Q6_K => (256, 210),
        GgmlType.Q8_K => (256, 292),
        _ => null,
    };

    public static string Name(GgmlType type) => Enum.IsDefined(type) ? type.ToString() : $"unknown ggml type {(uint)type}";
}

// One metadata value. Arrays hold a typed .NET array (string[], float[], int[], ...) of their element type.
public sealed record GgufValue(GgufValueType Type, object Value, GgufValueType ElementType = GgufValueType.UInt8)
{
    public string TypeName => Type == GgufValueType.Array ? $"array of {ElementType}" : Type.ToString();
}

// A tensor as the file describes it. Dimensions are ne0 first (ne0 is the contiguous one); DataOffset is absolute in
// the file.
public sealed record GgufTensor(string Name, long[] Dimensions, GgmlType Type, long DataOffset, long ByteLength)
{
    public long ElementCount => Dimensions.Aggregate(1L, (a, b) => a * b);
    public long RowLength => Dimensions.Length == 0 ? 1 : Dimensions[0];
    public long RowCount => ElementCount / RowLength;
}
