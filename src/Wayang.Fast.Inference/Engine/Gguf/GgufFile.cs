using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Inference.Engine.Gguf;

// A GGUF v3 file, mapped read-only: tensor data stays in the page cache and is handed out as spans over the mapping,
// never copied, so a model of several gigabytes opens in the time it takes to parse its header.
public sealed unsafe class GgufFile : IDisposable
{
    public const uint Version = 3;
    public const int DefaultAlignment = 32;
    private const int MaxDims = 4;
    private const int Q8BlockSize = 32;
    private const int Q8BlockBytes = 34;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private readonly Dictionary<string, GgufValue> _metadata = new(StringComparer.Ordinal);
    private readonly Dictionary<string, GgufTensor> _tensors = new(StringComparer.Ordinal);
    private readonly List<GgufTensor> _tensorList = [];
    private bool _disposed;

    private GgufFile(string path)
    {
        Path = path;
        if (!File.Exists(path))
            throw new WayangException(ErrorCode.ModelNotFound, $"GGUF file '{path}' does not exist");
        Length = new FileInfo(path).Length;
        // An empty file cannot be mapped; it is simply truncated at its first byte.
        if (Length == 0)
            throw GgufErrors.Format(path, 0, "truncated: the file is empty");
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _base = p + _view.PointerOffset;
            Parse();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public static GgufFile Open(string path) => new(path);

    public string Path { get; }
    public long Length { get; }
    public int Alignment { get; private set; } = DefaultAlignment;
    public long DataOffset { get; private set; }
    public IReadOnlyDictionary<string, GgufValue> Metadata => _metadata;
    public IReadOnlyList<GgufTensor> Tensors => _tensorList;
    public string Architecture => GetString("general.architecture");

    private void Parse()
    {
        var c = new GgufCursor(_base, Length, Path);
        var magic = c.Take(4, "magic");
        if (!magic.SequenceEqual("GGUF"u8))
            throw GgufErrors.Format(Path, 0, $"bad magic 0x{magic[0]:X2}{magic[1]:X2}{magic[2]:X2}{magic[3]:X2}, expected 'GGUF'");
        uint version = c.U32("version");
        if (version != Version)
            throw GgufErrors.Format(Path, 4, $"unsupported GGUF version {version}; only version {Version} is supported");
        long tensorCount = c.Count("tensor count", 8 + 4 + 4 + 8);
        long kvCount = c.Count("metadata count", 8 + 4);

        for (long i = 0; i < kvCount; i++)
        {
            string key = c.Str($"key of metadata entry {i}");
            long typeAt = c.Position;
            var type = (GgufValueType)c.U32($"value type of '{key}'");
            _metadata[key] = ReadValue(c, type, key, typeAt);
        }

        if (_metadata.TryGetValue("general.alignment", out var alignValue))
        {
            ulong a = AsUnsigned("general.alignment", alignValue);
            if (a == 0 || a > 1 << 20 || (a & (a - 1)) != 0)
                throw GgufErrors.Invalid(Path, $"general.alignment {a} is not a power of two");
            Alignment = (int)a;
        }

        var infos = new List<(string Name, long[] Dims, GgmlType Type, ulong Offset, long At)>();
        for (long i = 0; i < tensorCount; i++)
        {
            long at = c.Position;
            string name = c.Str($"name of tensor {i}");
            uint nDims = c.U32($"dimension count of tensor '{name}'");
            if (nDims > MaxDims)
                throw GgufErrors.Format(Path, c.Position - 4, $"tensor '{name}' has {nDims} dimensions; at most {MaxDims} are allowed");
            var dims = new long[nDims];
            long count = 1;
            for (int d = 0; d < nDims; d++)
            {
                ulong ne = c.U64($"dimension {d} of tensor '{name}'");
                if (ne == 0 || ne > long.MaxValue / (ulong)count)
                    throw GgufErrors.Format(Path, c.Position - 8, $"tensor '{name}' has an invalid dimension {d} of {ne}");
                dims[d] = (long)ne;
                count *= (long)ne;
            }
            var type = (GgmlType)c.U32($"type of tensor '{name}'");
            ulong offset = c.U64($"data offset of tensor '{name}'");
            if (_tensors.ContainsKey(name) || infos.Exists(t => t.Name == name))
                throw GgufErrors.Format(Path, at, $"tensor '{name}' appears twice");
            infos.Add((name, dims, type, offset, c.Position - 8));
        }

        DataOffset = AlignUp(c.Position);
        foreach (var (name, dims, type, offset, at) in infos)
        {
            var layout = GgmlTypeInfo.Layout(type)
                ?? throw GgufErrors.Format(Path, at - 4, $"tensor '{name}' has unsupported ggml type {(uint)type}");
            if (dims.Length > 0 && dims[0] % layout.BlockSize != 0)
                throw GgufErrors.Invalid(Path, $"tensor '{name}' of type {type} has a row of {dims[0]} elements, not a multiple of its block size {layout.BlockSize}");
            if (offset % (ulong)Alignment != 0)
                throw GgufErrors.Format(Path, at, $"tensor '{name}' data offset {offset} is not aligned to {Alignment}");
            long count = dims.Aggregate(1L, (a, b) => a * b);
            // Blocks beyond the file length cannot fit; checking that first keeps the byte count from overflowing.
            long blocks = count / layout.BlockSize;
            long bytes = blocks > Length ? long.MaxValue : blocks * layout.BlockBytes;
            if (offset > (ulong)Length || bytes > Length - DataOffset - (long)offset)
                throw GgufErrors.Format(Path, at,
                    $"tensor '{name}' data (offset {offset} in the data section at byte {DataOffset}, {(bytes == long.MaxValue ? "too many" : bytes.ToString(System.Globalization.CultureInfo.InvariantCulture))} bytes) is outside the file of {Length} bytes");
            var tensor = new GgufTensor(name, dims, type, DataOffset + (long)offset, bytes);
            _tensors.Add(name, tensor);
            _tensorList.Add(tensor);
        }
    }

    private GgufValue ReadValue(GgufCursor c, GgufValueType type, string key, long typeAt) => type switch
    {
        GgufValueType.UInt8 => new(type, c.U8(key)),
        GgufValueType.Int8 => new(type, (sbyte)c.U8(key)),
        GgufValueType.UInt16 => new(type, c.U16(key)),
        GgufValueType.Int16 => new(type, (short)c.U16(key)),
        GgufValueType.UInt32 => new(type, c.U32(key)),
        GgufValueType.Int32 => new(type, (int)c.U32(key)),
        GgufValueType.Float32 => new(type, c.F32(key)),
        GgufValueType.Bool => new(type, c.U8(key) != 0),
        GgufValueType.String => new(type, c.Str(key)),
        GgufValueType.UInt64 => new(type, c.U64(key)),
        GgufValueType.Int64 => new(type, (long)c.U64(key)),
        GgufValueType.Float64 => new(type, c.F64(key)),
        GgufValueType.Array => ReadArray(c, key),
        _ => throw GgufErrors.Format(Path, typeAt, $"unknown value type {(uint)type} of metadata key '{key}'"),
    };

    private GgufValue ReadArray(GgufCursor c, string key)
    {
        long typeAt = c.Position;
        var element = (GgufValueType)c.U32($"element type of '{key}'");
        int size = element switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
            GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 or GgufValueType.String => 8,
            // Nested arrays are legal GGUF; each inner array needs at least its element type and count.
            GgufValueType.Array => 12,
            _ => throw GgufErrors.Format(Path, typeAt, $"unknown element type {(uint)element} of metadata array '{key}'"),
        };
        long n = c.Count($"element count of '{key}'", size);
        Array values = element switch
        {
            GgufValueType.UInt8 => Fill(n, _ => c.U8(key)),
            GgufValueType.Int8 => Fill(n, _ => (sbyte)c.U8(key)),
            GgufValueType.UInt16 => Fill(n, _ => c.U16(key)),
            GgufValueType.Int16 => Fill(n, _ => (short)c.U16(key)),
            GgufValueType.UInt32 => Fill(n, _ => c.U32(key)),
            GgufValueType.Int32 => Fill(n, _ => (int)c.U32(key)),
            GgufValueType.Float32 => Fill(n, _ => c.F32(key)),
            GgufValueType.Bool => Fill(n, _ => c.U8(key) != 0),
            GgufValueType.String => Fill(n, i => c.Str($"element {i} of '{key}'")),
            GgufValueType.UInt64 => Fill(n, _ => c.U64(key)),
            GgufValueType.Int64 => Fill(n, _ => (long)c.U64(key)),
            GgufValueType.Float64 => Fill(n, _ => c.F64(key)),
            _ => Fill(n, i => ReadArray(c, $"{key}[{i}]")),
        };
        return new GgufValue(GgufValueType.Array, values, element);
    }

    private static T[] Fill<T>(long n, Func<long, T> read)
    {
        var a = new T[n];
        for (long i = 0; i < n; i++)
            a[i] = read(i);
        return a;
    }

    private long AlignUp(long n) => (n + Alignment - 1) / Alignment * Alignment;

    // Typed metadata. Integer getters accept any integer type whose value fits, as writers differ (u32 vs i32).

    public bool Has(string key) => _metadata.ContainsKey(key);

    public GgufValue Get(string key) => _metadata.TryGetValue(key, out var v)
        ? v
        : throw GgufErrors.Invalid(Path, $"metadata key '{key}' is missing");

    public string GetString(string key) => Get(key) is { Type: GgufValueType.String, Value: string s } ? s : throw WrongType(key, "String");

    public float GetSingle(string key) => Get(key) switch
    {
        { Type: GgufValueType.Float32, Value: float f } => f,
        { Type: GgufValueType.Float64, Value: double d } => (float)d,
        _ => throw WrongType(key, "Float32"),
    };

    public bool GetBool(string key) => Get(key) is { Type: GgufValueType.Bool, Value: bool b } ? b : throw WrongType(key, "Bool");

    public ulong GetUInt64(string key) => AsUnsigned(key, Get(key));

    public uint GetUInt32(string key)
    {
        ulong v = GetUInt64(key);
        return v <= uint.MaxValue ? (uint)v : throw GgufErrors.Invalid(Path, $"metadata key '{key}' value {v} does not fit in UInt32");
    }

    public int GetInt32(string key)
    {
        var v = Get(key);
        long value = v.Value switch
        {
            sbyte x => x,
            short x => x,
            int x => x,
            long x => x,
            byte x => x,
            ushort x => x,
            uint x => x,
            ulong x when x <= int.MaxValue => (long)x,
            _ => throw WrongType(key, "Int32"),
        };
        return value is >= int.MinValue and <= int.MaxValue
            ? (int)value
            : throw GgufErrors.Invalid(Path, $"metadata key '{key}' value {value} does not fit in Int32");
    }

    public uint GetUInt32(string key, uint fallback) => Has(key) ? GetUInt32(key) : fallback;
    public float GetSingle(string key, float fallback) => Has(key) ? GetSingle(key) : fallback;

    public string[] GetStringArray(string key) => GetArray<string>(key, GgufValueType.String);
    public float[] GetSingleArray(string key) => GetArray<float>(key, GgufValueType.Float32);

    public int[] GetInt32Array(string key)
    {
        var v = Get(key);
        return v.Value switch
        {
            int[] a => a,
            uint[] a when a.All(x => x <= int.MaxValue) => [.. a.Select(x => (int)x)],
            _ => throw WrongType(key, "array of Int32"),
        };
    }

    // The length of an array without converting it: the vocabulary size is the token count.
    public long GetArrayLength(string key) => Get(key) is { Type: GgufValueType.Array, Value: Array a } ? a.LongLength : throw WrongType(key, "Array");

    private T[] GetArray<T>(string key, GgufValueType element) =>
        Get(key) is { Type: GgufValueType.Array, Value: T[] a } ? a : throw WrongType(key, $"array of {element}");

    private ulong AsUnsigned(string key, GgufValue v) => v.Value switch
    {
        byte x => x,
        ushort x => x,
        uint x => x,
        ulong x => x,
        sbyte x when x >= 0 => (ulong)x,
        short x when x >= 0 => (ulong)x,
        int x when x >= 0 => (ulong)x,
        long x when x >= 0 => (ulong)x,
        sbyte or short or int or long => throw GgufErrors.Invalid(Path, $"metadata key '{key}' is negative ({v.Value})"),
        _ => throw WrongType(key, "an unsigned integer"),
    };

    private WayangException WrongType(string key, string expected) =>
        GgufErrors.Invalid(Path, $"metadata key '{key}' is {_metadata[key].TypeName}, expected {expected}");

    // Tensors.

    public bool TryGetTensor(string name, out GgufTensor tensor) => _tensors.TryGetValue(name, out tensor!);

    public GgufTensor GetTensor(string name) => _tensors.TryGetValue(name, out var t)
        ? t
        : throw GgufErrors.Invalid(Path, $"tensor '{name}' is missing");

    public ReadOnlySpan<byte> GetData(GgufTensor tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (tensor.ByteLength > int.MaxValue)
            throw GgufErrors.Invalid(Path, $"tensor '{tensor.Name}' of {tensor.ByteLength} bytes is too large for one span");
        return new ReadOnlySpan<byte>(_base + tensor.DataOffset, (int)tensor.ByteLength);
    }

    public void Dequantize(GgufTensor tensor, Span<float> destination)
    {
        if (destination.Length < tensor.ElementCount)
            throw new WayangException(ErrorCode.InvalidArgument,
                $"destination of {destination.Length} floats is too small for tensor '{tensor.Name}' of {tensor.ElementCount} elements");
        Dequantize(tensor, GetData(tensor), destination[..(int)tensor.ElementCount]);
    }

    // One row (ne0 elements), so that a large matrix can be used a row at a time without dequantizing all of it.
    public void DequantizeRow(GgufTensor tensor, long row, Span<float> destination)
    {
        if (row < 0 || row >= tensor.RowCount)
            throw new WayangException(ErrorCode.InvalidArgument, $"row {row} is outside tensor '{tensor.Name}' of {tensor.RowCount} rows");
        int rowLength = (int)tensor.RowLength;
        if (destination.Length < rowLength)
            throw new WayangException(ErrorCode.InvalidArgument, $"destination of {destination.Length} floats is too small for a row of {rowLength}");
        int rowBytes = (int)(tensor.ByteLength / tensor.RowCount);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var data = new ReadOnlySpan<byte>(_base + tensor.DataOffset + (row * rowBytes), rowBytes);
        Dequantize(tensor, data, destination[..rowLength]);
    }

    private void Dequantize(GgufTensor tensor, ReadOnlySpan<byte> data, Span<float> destination)
    {
        switch (tensor.Type)
        {
            case GgmlType.F32:
                MemoryMarshal.Cast<byte, float>(data).CopyTo(destination);
                break;
            case GgmlType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(data);
                for (int i = 0; i < halves.Length; i++)
                    destination[i] = (float)halves[i];
                break;
            case GgmlType.Q8_0:
                DequantizeQ8_0(data, destination);
                break;
            default:
                throw GgufErrors.Invalid(Path, $"tensor '{tensor.Name}' has ggml type {GgmlTypeInfo.Name(tensor.Type)}, which cannot be dequantized (F32, F16 and Q8_0 can)");
        }
    }

    // Q8_0: blocks of 32 values, each an f16 scale followed by 32 signed bytes; value = scale * byte.
    private static void DequantizeQ8_0(ReadOnlySpan<byte> data, Span<float> destination)
    {
        int blocks = data.Length / Q8BlockBytes;
        for (int b = 0; b < blocks; b++)
        {
            var block = data.Slice(b * Q8BlockBytes, Q8BlockBytes);
            float scale = (float)MemoryMarshal.Read<Half>(block);
            var quants = MemoryMarshal.Cast<byte, sbyte>(block[2..]);
            var output = destination.Slice(b * Q8BlockSize, Q8BlockSize);
            if (Vector256.IsHardwareAccelerated)
            {
                var s = Vector256.Create(scale);
                var (lo, hi) = Vector256.Widen(Vector256.Create<sbyte>(quants));
                var (a, bb) = Vector256.Widen(lo);
                var (c, d) = Vector256.Widen(hi);
                (Vector256.ConvertToSingle(a) * s).CopyTo(output);
                (Vector256.ConvertToSingle(bb) * s).CopyTo(output[8..]);
                (Vector256.ConvertToSingle(c) * s).CopyTo(output[16..]);
                (Vector256.ConvertToSingle(d) * s).CopyTo(output[24..]);
            }
            else
            {
                for (int i = 0; i < Q8BlockSize; i++)
                    output[i] = quants[i] * scale;
            }
        }
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        if (_view is not null)
        {
            if (_base != null)
                _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
