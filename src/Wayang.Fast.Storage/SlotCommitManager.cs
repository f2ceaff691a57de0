using System.Buffers.Binary;
using FASTER.core;
using Microsoft.Win32.SafeHandles;

namespace Wayang.Fast.Storage;

// Where FasterLog keeps its commit metadata (begin and committed-until addresses): one preallocated file of two
// 4 KiB slots, overwritten in place, alternating by commit number.
//
// Why not FASTER's default (DeviceLogCommitCheckpointManager): it creates a new file per commit, writes it through
// a device whose completion runs on another pool thread while the committing pool thread waits in Monitor.Wait,
// then deletes the previous file. On this project's 2-core machines that was a 0.5-2.5 ms commit with two pool
// threads tied up, and the file create/delete put the file system's metadata journal on every commit. Here a
// commit is one write of under 100 bytes into an allocated block, through a handle opened write-through
// (O_SYNC), on the thread FasterLog calls from: no file created, no second thread.
//
// A slot is [magic u32][format u32][commit number i64][length i32][metadata][CRC-32C u32 of everything before it].
// Recovery lists the slots that pass their CRC, newest first; a write torn by a crash fails its CRC and the other
// slot (the previous commit, which was acknowledged) is used. Data directories written with FASTER's default
// manager (log-commits/commit.N.0: [length i32][metadata]) are read too, after the slots, and their files are
// deleted once the first slot commit is durable.
internal sealed class SlotCommitManager : ILogCommitManager
{
    public const string FileName = "commit-slots";
    private const int SlotBytes = 4096;
    private const uint Magic = 0x4D434A57; // "WJCM"
    private const uint FormatVersion = 1;
    private const int HeaderBytes = 4 + 4 + 8 + 4;
    private const int MaxMetadataBytes = SlotBytes - HeaderBytes - sizeof(uint);

    private readonly string _legacyDirectory;
    private readonly SafeFileHandle _file;
    private readonly byte[] _buffer = new byte[SlotBytes];
    private readonly Lock _gate = new();
    private long _lastCommitNum = -1;
    private bool _legacyFilesPresent;

    public SlotCommitManager(string directory)
    {
        _legacyDirectory = Path.Combine(directory, "log-commits");
        string path = Path.Combine(directory, FileName);
        bool created = !File.Exists(path);
        _file = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, FileOptions.WriteThrough);
        if (created || RandomAccess.GetLength(_file) < 2 * SlotBytes)
        {
            // Allocate both slots now so that a commit never extends the file (no size change to make durable).
            // The file's directory entry becomes durable with this first sync on journaling file systems (ext4, xfs);
            // .NET has no directory fsync, and the store's MANIFEST relies on the same.
            RandomAccess.Write(_file, new byte[2 * SlotBytes], 0);
            RandomAccess.FlushToDisk(_file);
        }
        _legacyFilesPresent = ListLegacyCommits().Any();
        foreach (long commitNum in ReadSlots().Select(s => s.CommitNum))
            _lastCommitNum = Math.Max(_lastCommitNum, commitNum);
    }

    public void Commit(long beginAddress, long untilAddress, byte[] commitMetadata, long commitNum, bool forceWriteMetadata)
    {
        if (commitMetadata.Length > MaxMetadataBytes)
            throw new InvalidOperationException($"Commit metadata of {commitMetadata.Length} bytes exceeds a commit slot ({MaxMetadataBytes} bytes).");
        lock (_gate)
        {
            if (commitNum < 0)
                commitNum = _lastCommitNum + 1;
            int length = Encode(_buffer, commitNum, commitMetadata);
            RandomAccess.Write(_file, _buffer.AsSpan(0, length), SlotOffset(commitNum));
            _lastCommitNum = Math.Max(_lastCommitNum, commitNum);
            if (_legacyFilesPresent)
            {
                // FASTER's own files are older than any slot commit; the new commit is durable, so they can go.
                foreach (long legacy in ListLegacyCommits().ToList())
                    File.Delete(LegacyPath(legacy));
                _legacyFilesPresent = false;
            }
        }
    }

    public byte[]? GetCommitMetadata(long commitNum)
    {
        foreach (var slot in ReadSlots())
        {
            if (slot.CommitNum == commitNum)
                return slot.Metadata;
        }
        string legacy = LegacyPath(commitNum);
        if (!File.Exists(legacy))
            return null;
        byte[] bytes = File.ReadAllBytes(legacy);
        if (bytes.Length < sizeof(int))
            return null;
        int size = BinaryPrimitives.ReadInt32LittleEndian(bytes);
        return size < 0 || size > bytes.Length - sizeof(int) ? null : bytes.AsSpan(sizeof(int), size).ToArray();
    }

    // Newest first: FasterLog recovers from the first one whose metadata it can read.
    public IEnumerable<long> ListCommits() =>
        ReadSlots().Select(s => s.CommitNum).OrderDescending()
            .Concat(ListLegacyCommits().OrderDescending())
            .ToList();

    // Slots are overwritten by later commits; nothing to remove. Legacy files go in Commit.
    public void RemoveCommit(long commitNum)
    {
    }

    public void RemoveAllCommits()
    {
        lock (_gate)
        {
            RandomAccess.Write(_file, new byte[2 * SlotBytes], 0);
            foreach (long legacy in ListLegacyCommits().ToList())
                File.Delete(LegacyPath(legacy));
            _legacyFilesPresent = false;
            _lastCommitNum = -1;
        }
    }

    public void OnRecovery(long commitNum)
    {
        lock (_gate)
            _lastCommitNum = Math.Max(_lastCommitNum, commitNum);
    }

    public void Dispose() => _file.Dispose();

    private static long SlotOffset(long commitNum) => (commitNum & 1) * SlotBytes;

    private static int Encode(byte[] buffer, long commitNum, byte[] metadata)
    {
        var span = buffer.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], FormatVersion);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], commitNum);
        BinaryPrimitives.WriteInt32LittleEndian(span[16..], metadata.Length);
        metadata.CopyTo(span[HeaderBytes..]);
        int crcAt = HeaderBytes + metadata.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(span[crcAt..], Crc32C.Compute(span[..crcAt]));
        return crcAt + sizeof(uint);
    }

    private List<(long CommitNum, byte[] Metadata)> ReadSlots()
    {
        var slots = new List<(long, byte[])>(2);
        var buffer = new byte[SlotBytes];
        for (int slot = 0; slot < 2; slot++)
        {
            int read = RandomAccess.Read(_file, buffer, slot * SlotBytes);
            if (TryDecode(buffer.AsSpan(0, read), out long commitNum, out byte[]? metadata))
                slots.Add((commitNum, metadata));
        }
        return slots;
    }

    // A slot never written (zeros), torn by a crash, or damaged fails here and is not offered to recovery.
    internal static bool TryDecode(ReadOnlySpan<byte> slot, out long commitNum, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out byte[]? metadata)
    {
        commitNum = -1;
        metadata = null;
        if (slot.Length < HeaderBytes + sizeof(uint)
            || BinaryPrimitives.ReadUInt32LittleEndian(slot) != Magic
            || BinaryPrimitives.ReadUInt32LittleEndian(slot[4..]) != FormatVersion)
            return false;
        int length = BinaryPrimitives.ReadInt32LittleEndian(slot[16..]);
        if (length < 0 || length > MaxMetadataBytes || HeaderBytes + length + sizeof(uint) > slot.Length)
            return false;
        int crcAt = HeaderBytes + length;
        if (BinaryPrimitives.ReadUInt32LittleEndian(slot[crcAt..]) != Crc32C.Compute(slot[..crcAt]))
            return false;
        commitNum = BinaryPrimitives.ReadInt64LittleEndian(slot[8..]);
        metadata = slot.Slice(HeaderBytes, length).ToArray();
        return true;
    }

    private IEnumerable<long> ListLegacyCommits()
    {
        if (!Directory.Exists(_legacyDirectory))
            yield break;
        foreach (string file in Directory.EnumerateFiles(_legacyDirectory, "commit.*.0"))
        {
            string name = Path.GetFileName(file);
            if (long.TryParse(name.AsSpan("commit.".Length, name.Length - "commit.".Length - ".0".Length), out long commitNum))
                yield return commitNum;
        }
    }

    private string LegacyPath(long commitNum) => Path.Combine(_legacyDirectory, $"commit.{commitNum}.0");
}
