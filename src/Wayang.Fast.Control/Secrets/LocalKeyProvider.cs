using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Control.Secrets;

// The embedded default: versioned 256-bit master keys in "<directory>/master.keys" (JSON, owner-only), the highest
// version current. A data key is wrapped with AES-256-GCM under the current master key: nonce(12) | ciphertext(32) |
// tag(16), associated data = the canonical context + the master key id, so a wrapped key moved to another tenant or
// path, or relabelled with another key id, fails to unwrap. Anyone who can read the keyring file can read every
// secret: back it up separately from the data directory's journal and checkpoints.
public sealed class LocalKeyProvider : IKeyEncryptionProvider
{
    public const string FileName = "master.keys";
    private const string IdPrefix = "local-";
    private const int NonceBytes = 12;
    private const int TagBytes = 16;

    private readonly string _path;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _lock = new(1, 1);
    // Ascending by version; replaced whole on rotate/retire so unwraps read it without the lock.
    private volatile MasterKey[]? _keys;

    public LocalKeyProvider(string directory, TimeProvider? time = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        _path = Path.Combine(directory, FileName);
        _time = time ?? TimeProvider.System;
    }

    public string Name => "local";

    public string KeyringPath => _path;

    public async ValueTask<string> CurrentKeyIdAsync(CancellationToken ct = default) => (await KeysAsync(ct).ConfigureAwait(false))[^1].Id;

    public async ValueTask<IReadOnlyList<string>> KeyIdsAsync(CancellationToken ct = default) =>
        Array.ConvertAll(await KeysAsync(ct).ConfigureAwait(false), k => k.Id);

    public async ValueTask<DataKey> GenerateDataKeyAsync(IReadOnlyDictionary<string, string> context, CancellationToken ct)
    {
        var current = (await KeysAsync(ct).ConfigureAwait(false))[^1];
        var plaintext = RandomNumberGenerator.GetBytes(KeyContext.DataKeyBytes);
        return new DataKey(plaintext, Wrap(current, plaintext, context));
    }

    public async ValueTask<byte[]> DecryptDataKeyAsync(WrappedDataKey wrapped, IReadOnlyDictionary<string, string> context, CancellationToken ct)
    {
        var keys = await KeysAsync(ct).ConfigureAwait(false);
        var master = Array.Find(keys, k => k.Id == wrapped.KeyId) ?? throw KeyContext.Unavailable(Name, $"master key '{wrapped.KeyId}' is not in the keyring.");
        if (wrapped.Ciphertext.Length != NonceBytes + KeyContext.DataKeyBytes + TagBytes)
            throw KeyContext.Integrity(Name);
        var blob = wrapped.Ciphertext.AsSpan();
        var plaintext = new byte[KeyContext.DataKeyBytes];
        try
        {
            using var aes = new AesGcm(master.Key, TagBytes);
            aes.Decrypt(blob[..NonceBytes], blob.Slice(NonceBytes, KeyContext.DataKeyBytes), blob[^TagBytes..], plaintext, KeyContext.Encode(context, master.Id));
        }
        catch (AuthenticationTagMismatchException ex)
        {
            throw KeyContext.Integrity(Name, ex);
        }
        return plaintext;
    }

    public async ValueTask<WrappedDataKey> RewrapAsync(WrappedDataKey wrapped, IReadOnlyDictionary<string, string> context, CancellationToken ct)
    {
        var plaintext = await DecryptDataKeyAsync(wrapped, context, ct).ConfigureAwait(false);
        try
        {
            return Wrap((await KeysAsync(ct).ConfigureAwait(false))[^1], plaintext, context);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    // A new master key version that wraps every new data key from now on. Existing data keys stay readable under
    // their old master key until SecretStore.RewrapAllAsync moves them; then RetireAsync can drop the old one.
    public async ValueTask<string> RotateMasterKeyAsync(CancellationToken ct = default)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var keys = LoadOrCreate();
            var next = new MasterKey(IdPrefix + (keys[^1].Version + 1).ToString(CultureInfo.InvariantCulture), keys[^1].Version + 1,
                RandomNumberGenerator.GetBytes(KeyContext.DataKeyBytes), _time.GetUtcNow());
            MasterKey[] updated = [.. keys, next];
            Save(updated);
            _keys = updated;
            return next.Id;
        }
        finally
        {
            _lock.Release();
        }
    }

    // Removes a non-current master key that no stored data key uses (pass SecretStore.KeyIdsInUse()); anything
    // still wrapped under it would become unreadable, so that is refused.
    public async ValueTask RetireAsync(string keyId, IReadOnlySet<string> keyIdsInUse, CancellationToken ct = default)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var keys = LoadOrCreate();
            int index = Array.FindIndex(keys, k => k.Id == keyId);
            if (index < 0)
                throw new WayangException(ErrorCode.NotFound, $"master key '{keyId}' is not in the keyring.");
            if (index == keys.Length - 1)
                throw new WayangException(ErrorCode.InvalidArgument, $"master key '{keyId}' is current; rotate first.");
            if (keyIdsInUse.Contains(keyId))
                throw new WayangException(ErrorCode.InvalidArgument, $"master key '{keyId}' still wraps stored data keys; rewrap them first.");
            MasterKey[] updated = [.. keys.Where((_, i) => i != index)];
            Save(updated);
            _keys = updated;
        }
        finally
        {
            _lock.Release();
        }
    }

    private static WrappedDataKey Wrap(MasterKey master, byte[] plaintext, IReadOnlyDictionary<string, string> context)
    {
        var blob = new byte[NonceBytes + KeyContext.DataKeyBytes + TagBytes];
        RandomNumberGenerator.Fill(blob.AsSpan(0, NonceBytes));
        using var aes = new AesGcm(master.Key, TagBytes);
        aes.Encrypt(blob.AsSpan(0, NonceBytes), plaintext, blob.AsSpan(NonceBytes, KeyContext.DataKeyBytes), blob.AsSpan(NonceBytes + KeyContext.DataKeyBytes), KeyContext.Encode(context, master.Id));
        return new WrappedDataKey(master.Id, blob);
    }

    private async ValueTask<MasterKey[]> KeysAsync(CancellationToken ct)
    {
        if (_keys is { } keys)
            return keys;
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return _keys = LoadOrCreate();
        }
        finally
        {
            _lock.Release();
        }
    }

    private MasterKey[] LoadOrCreate()
    {
        if (_keys is { } cached)
            return cached;
        if (!File.Exists(_path))
        {
            MasterKey[] created = [new MasterKey(IdPrefix + "1", 1, RandomNumberGenerator.GetBytes(KeyContext.DataKeyBytes), _time.GetUtcNow())];
            Save(created);
            return created;
        }
        List<StoredMasterKey>? stored;
        try
        {
            stored = JsonSerializer.Deserialize(File.ReadAllBytes(_path), SecretJsonContext.Default.ListStoredMasterKey);
        }
        catch (Exception ex) when (ex is JsonException or IOException or UnauthorizedAccessException)
        {
            throw KeyContext.Unavailable(Name, $"keyring '{_path}' cannot be read: {ex.GetType().Name}", ex);
        }
        if (stored is null || stored.Count == 0)
            throw KeyContext.Unavailable(Name, $"keyring '{_path}' holds no master key.");
        var keys = new MasterKey[stored.Count];
        for (int i = 0; i < keys.Length; i++)
        {
            var s = stored[i];
            if (!s.Id.StartsWith(IdPrefix, StringComparison.Ordinal) || !int.TryParse(s.Id.AsSpan(IdPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int version)
                || s.Key.Length != KeyContext.DataKeyBytes)
            {
                throw KeyContext.Unavailable(Name, $"keyring '{_path}' has a malformed entry '{s.Id}'.");
            }
            keys[i] = new MasterKey(s.Id, version, s.Key, s.CreatedAt);
        }
        Array.Sort(keys, (a, b) => a.Version.CompareTo(b.Version));
        return keys;
    }

    // Temp file created owner-only, fsynced, then renamed over the old one: a crash leaves the old or the new
    // keyring, never a torn one, and the key bytes are never readable by others even for a moment.
    private void Save(MasterKey[] keys)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(
            keys.Select(k => new StoredMasterKey { Id = k.Id, Key = k.Key, CreatedAt = k.CreatedAt }).ToList(), SecretJsonContext.Default.ListStoredMasterKey);
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        var temp = _path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var file = new FileStream(temp, options))
        {
            file.Write(json);
            file.Flush(flushToDisk: true);
        }
        CryptographicOperations.ZeroMemory(json);
        File.Move(temp, _path, overwrite: true);
    }

    private sealed record MasterKey(string Id, int Version, byte[] Key, DateTimeOffset CreatedAt);
}

internal sealed class StoredMasterKey
{
    public string Id { get; set; } = "";
    public byte[] Key { get; set; } = [];
    public DateTimeOffset CreatedAt { get; set; }
}
