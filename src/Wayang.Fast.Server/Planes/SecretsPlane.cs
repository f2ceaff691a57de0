using Microsoft.Extensions.Logging;
using System.Security.Cryptography;
using System.Text;
using Wayang.Fast.Control.Secrets;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Storage;

namespace Wayang.Fast.Server.Planes;

// The server's secrets: the store, the key-encryption provider chosen by SecretsOptions, and the periodic check that
// announces secrets due for rotation (to SecretWatch subscribers: an operator's rotation executor rotates them, or
// reports why it could not).
internal sealed class SecretsPlane : IAsyncDisposable
{
    private readonly IKeyEncryptionProvider _provider;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _rotationChecks;

    private SecretsPlane(IStateStore state, IKeyEncryptionProvider provider, TimeSpan checkInterval, ILogger logger)
    {
        _provider = provider;
        _logger = logger;
        Store = new SecretStore(state, provider);
        _rotationChecks = CheckRotationsAsync(checkInterval);
    }

    public SecretStore Store { get; }

    public string ProviderName => _provider.Name;

    public static SecretsPlane Open(IStateStore state, SecretsOptions options, string dataDirectory, ILogger logger)
    {
        IKeyEncryptionProvider provider = options.Provider switch
        {
            "aws-kms" => new AwsKmsKeyProvider(new AwsKmsOptions { KeyId = options.AwsKmsKeyId, Region = options.AwsRegion, ServiceUrl = options.AwsServiceUrl }),
            "vault-transit" => new VaultTransitKeyProvider(new VaultTransitOptions
            {
                Address = new Uri(options.VaultAddress),
                Mount = options.VaultMount,
                KeyName = options.VaultKeyName,
                Namespace = options.VaultNamespace,
                Token = VaultToken(options),
            }),
            _ => new LocalKeyProvider(options.LocalKeyringDirectory ?? Path.Combine(dataDirectory, "secrets")),
        };
        return new SecretsPlane(state, provider, options.RotationCheckInterval, logger);
    }

    // The execution plane's task-token signing key, kept as a secret (encrypted like any other) in the server's own
    // namespace: "_server" is not a valid tenant id, so no request can name it (a system-tenant executor holds
    // secrets.read, and this key would let it forge any tenant's task results).
    // A data directory from before the secrets plane has it in plain bytes under the engine's own key: it moves here
    // (same key, so tokens already issued stay valid), and the plain copy is deleted once the secret is durable.
    public async Task<byte[]> TokenSigningKeyAsync(IStateStore state, CancellationToken ct)
    {
        if (Store.List(ServerNamespace, TokenKeyPath).Any(s => s.Path == TokenKeyPath))
            return (await Store.GetAsync(ServerNamespace, TokenKeyPath, 0, ct).ConfigureAwait(false)).Value;
        var legacyKey = Encoding.UTF8.GetBytes(ExecutionEngine.TokenKeyStoreKey);
        var key = state.TryGet(legacyKey, out var legacy) && legacy.Length >= 32 ? legacy : RandomNumberGenerator.GetBytes(32);
        await Store.PutAsync(ServerNamespace, TokenKeyPath, key, cas: 0, principal: "server", ct).ConfigureAwait(false);
        if (legacy is { Length: > 0 })
            await state.DeleteAsync(legacyKey, ct).ConfigureAwait(false);
        return key;
    }

    public const string ServerNamespace = "_server";
    public const string TokenKeyPath = "execution/token-signing-key";

    // Every data key re-wrapped under a new key-encryption key, reads served throughout. The local keyring gets a new
    // master key first and drops the old ones once nothing uses them; AWS KMS and Vault rotate their keys themselves
    // (automatic key rotation, transit/keys/<name>/rotate), and the re-wrap moves every data key to the latest version.
    public async Task<int> RotateMasterKeyAsync(CancellationToken ct)
    {
        var local = _provider as LocalKeyProvider;
        if (local is not null)
            await local.RotateMasterKeyAsync(ct).ConfigureAwait(false);
        int rewrapped = await Store.RewrapAllAsync(ct).ConfigureAwait(false);
        if (local is not null)
        {
            string current = await local.CurrentKeyIdAsync(ct).ConfigureAwait(false);
            var inUse = Store.KeyIdsInUse();
            foreach (var keyId in await local.KeyIdsAsync(ct).ConfigureAwait(false))
            {
                if (keyId != current && !inUse.Contains(keyId))
                    await local.RetireAsync(keyId, inUse, ct).ConfigureAwait(false);
            }
        }
        return rewrapped;
    }

    private async Task CheckRotationsAsync(TimeSpan interval)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            do
            {
                try
                {
                    foreach (var due in await Store.CheckRotationDueAsync(_stop.Token).ConfigureAwait(false))
                        Log.RotationDue(_logger, due.Tenant, due.Path, due.Policy.RotateEveryDays);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.RotationCheckFailed(_logger, ex);
                }
            }
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }

    private static string VaultToken(SecretsOptions options)
    {
        if (options.VaultTokenFile is { } file)
            return File.ReadAllText(file).Trim();
        return Environment.GetEnvironmentVariable("VAULT_TOKEN")
            ?? throw new ArgumentException("The vault-transit provider needs a token: VAULT_TOKEN or Secrets.VaultTokenFile.");
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _rotationChecks.ConfigureAwait(false);
        _stop.Dispose();
        (_provider as IDisposable)?.Dispose();
    }
}
