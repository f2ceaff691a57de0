using System.Globalization;
using System.Text.Json;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Storage;

// The data directory (README.md documents it):
//   <dir>/MANIFEST.json   format version and the fixed geometry, written once at creation (temp file + rename)
//   <dir>/LOCK            held with an exclusive OS lock while a store is open; holds the owner's pid
//   <dir>/journal/        FasterLog segments (log.N) and its commit records (log-commits/)
//   <dir>/state/          FasterKV hybrid log (hlog.N) and checkpoints (checkpoints/)
internal sealed class StorageDirectory : IDisposable
{
    public const int CurrentFormatVersion = 1;
    public const string ManifestFileName = "MANIFEST.json";
    public const string LockFileName = "LOCK";

    private FileStream? _lock;

    private StorageDirectory(string root, FileStream lockStream, DataManifest manifest)
    {
        Root = root;
        _lock = lockStream;
        Manifest = manifest;
    }

    public string Root { get; }
    public DataManifest Manifest { get; }
    public string JournalPath => Path.Combine(Root, "journal");
    public string StatePath => Path.Combine(Root, "state");

    public static StorageDirectory Open(StorageOptions options)
    {
        var root = Path.GetFullPath(options.DataDirectory);
        Directory.CreateDirectory(root);
        var lockStream = AcquireLock(root);
        try
        {
            var manifestPath = Path.Combine(root, ManifestFileName);
            DataManifest manifest;
            if (File.Exists(manifestPath))
            {
                manifest = ReadManifest(manifestPath);
            }
            else
            {
                if (Directory.Exists(Path.Combine(root, "journal")) || Directory.Exists(Path.Combine(root, "state")))
                    throw new WayangException(ErrorCode.StorageCorrupt, $"Data directory '{root}' has journal/ or state/ but no {ManifestFileName}; refusing to guess its format.");
                manifest = new DataManifest(CurrentFormatVersion, DateTimeOffset.UtcNow, options.JournalPageBits, options.JournalSegmentBits, options.StorePageBits, options.StoreSegmentBits);
                WriteManifest(manifestPath, manifest);
            }
            return new StorageDirectory(root, lockStream, manifest);
        }
        catch
        {
            lockStream.Dispose();
            throw;
        }
    }

    private static FileStream AcquireLock(string root)
    {
        var path = Path.Combine(root, LockFileName);
        FileStream stream;
        try
        {
            // FileShare.None is an exclusive flock() on Unix and a share-mode lock on Windows; the OS drops it when
            // the process dies, so a kill -9 never leaves the directory locked.
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException ex)
        {
            throw new WayangException(new WayangError(ErrorCode.StorageLocked, $"Data directory '{root}' is in use by another store (its {LockFileName} file is locked)."), ex);
        }
        try
        {
            stream.SetLength(0);
            var pid = System.Text.Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
            stream.Write(pid);
            stream.Flush();
        }
        catch (IOException)
        {
            // The pid is for humans; the lock is what matters.
        }
        return stream;
    }

    private static DataManifest ReadManifest(string path)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException ex)
        {
            throw new WayangException(new WayangError(ErrorCode.StorageCorrupt, $"{path} is not valid JSON: {ex.Message}"), ex);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("formatVersion", out var versionElement) || !versionElement.TryGetInt32(out int version) || version < 1)
                throw new WayangException(ErrorCode.StorageCorrupt, $"{path} has no valid formatVersion.");
            if (version > CurrentFormatVersion)
                throw new WayangException(ErrorCode.StorageFormatTooNew,
                    $"Data directory format version {version} (in {path}) is newer than this build supports (format version {CurrentFormatVersion}). Upgrade Wayang.Fast to open it.");
            return new DataManifest(
                version,
                root.TryGetProperty("createdAt", out var created) && created.TryGetDateTimeOffset(out var at) ? at : DateTimeOffset.MinValue,
                RequiredInt(root, "journalPageBits", path),
                RequiredInt(root, "journalSegmentBits", path),
                RequiredInt(root, "storePageBits", path),
                RequiredInt(root, "storeSegmentBits", path));
        }
    }

    private static int RequiredInt(JsonElement root, string name, string path) =>
        root.TryGetProperty(name, out var e) && e.TryGetInt32(out int v) && v is > 0 and < 63
            ? v
            : throw new WayangException(ErrorCode.StorageCorrupt, $"{path} has no valid {name}.");

    private static void WriteManifest(string path, DataManifest manifest)
    {
        var temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            {
                writer.WriteStartObject();
                writer.WriteNumber("formatVersion", manifest.FormatVersion);
                writer.WriteString("createdAt", manifest.CreatedAt);
                writer.WriteString("createdBy", "Wayang.Fast.Storage " + typeof(StorageDirectory).Assembly.GetName().Version);
                writer.WriteNumber("journalPageBits", manifest.JournalPageBits);
                writer.WriteNumber("journalSegmentBits", manifest.JournalSegmentBits);
                writer.WriteNumber("storePageBits", manifest.StorePageBits);
                writer.WriteNumber("storeSegmentBits", manifest.StoreSegmentBits);
                writer.WriteEndObject();
            }
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
    }

    public void Dispose()
    {
        _lock?.Dispose();
        _lock = null;
    }
}

internal sealed record DataManifest(int FormatVersion, DateTimeOffset CreatedAt, int JournalPageBits, int JournalSegmentBits, int StorePageBits, int StoreSegmentBits);
