using Amazon.KeyManagementService;
using Amazon.KeyManagementService.Model;
using Amazon.Runtime;

namespace Wayang.Fast.Control.Secrets;

public sealed class AwsKmsOptions
{
    // Key id, ARN or "alias/...": wraps new data keys and is the target of re-wraps.
    public string KeyId { get; set; } = "";
    public string Region { get; set; } = "us-east-1";
    // An endpoint other than AWS (LocalStack, moto); null for the region's endpoint.
    public string? ServiceUrl { get; set; }
    // Null: the SDK's default chain (environment, profile, instance role).
    public AWSCredentials? Credentials { get; set; }
    // Null: the SDK's default retries.
    public int? MaxErrorRetry { get; set; }
}

// Data keys from AWS KMS (GenerateDataKey, AES_256). The context goes along as the KMS encryption context, which KMS
// binds to the ciphertext blob and records in CloudTrail: a blob cannot be decrypted under another tenant or path.
public sealed class AwsKmsKeyProvider : IKeyEncryptionProvider, IDisposable
{
    private readonly IAmazonKeyManagementService _kms;
    private readonly string _keyId;

    public AwsKmsKeyProvider(AwsKmsOptions options)
        : this(CreateClient(options), options.KeyId)
    {
    }

    // Takes ownership of kms.
    public AwsKmsKeyProvider(IAmazonKeyManagementService kms, string keyId)
    {
        ArgumentNullException.ThrowIfNull(kms);
        ArgumentException.ThrowIfNullOrEmpty(keyId);
        _kms = kms;
        _keyId = keyId;
    }

    public string Name => "aws-kms";

    public ValueTask<DataKey> GenerateDataKeyAsync(IReadOnlyDictionary<string, string> context, CancellationToken ct) => CallAsync(async () =>
    {
        var response = await _kms.GenerateDataKeyAsync(new GenerateDataKeyRequest
        {
            KeyId = _keyId,
            KeySpec = DataKeySpec.AES_256,
            EncryptionContext = new Dictionary<string, string>(context),
        }, ct).ConfigureAwait(false);
        return new DataKey(response.Plaintext.ToArray(), new WrappedDataKey(response.KeyId, response.CiphertextBlob.ToArray()));
    });

    public ValueTask<byte[]> DecryptDataKeyAsync(WrappedDataKey wrapped, IReadOnlyDictionary<string, string> context, CancellationToken ct) => CallAsync(async () =>
    {
        var response = await _kms.DecryptAsync(new DecryptRequest
        {
            CiphertextBlob = new MemoryStream(wrapped.Ciphertext),
            EncryptionContext = new Dictionary<string, string>(context),
            // Pinning the key makes KMS refuse a blob that claims another key, rather than use whatever it names.
            KeyId = wrapped.KeyId,
        }, ct).ConfigureAwait(false);
        return response.Plaintext.ToArray();
    });

    // ReEncrypt: the data key never leaves KMS in plain text.
    public ValueTask<WrappedDataKey> RewrapAsync(WrappedDataKey wrapped, IReadOnlyDictionary<string, string> context, CancellationToken ct) => CallAsync(async () =>
    {
        var response = await _kms.ReEncryptAsync(new ReEncryptRequest
        {
            CiphertextBlob = new MemoryStream(wrapped.Ciphertext),
            SourceKeyId = wrapped.KeyId,
            SourceEncryptionContext = new Dictionary<string, string>(context),
            DestinationKeyId = _keyId,
            DestinationEncryptionContext = new Dictionary<string, string>(context),
        }, ct).ConfigureAwait(false);
        return new WrappedDataKey(response.KeyId, response.CiphertextBlob.ToArray());
    });

    public void Dispose() => _kms.Dispose();

    private async ValueTask<T> CallAsync<T>(Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is InvalidCiphertextException or IncorrectKeyException)
        {
            throw KeyContext.Integrity(Name, ex);
        }
        catch (AmazonServiceException ex)
        {
            // The service's error code, never the request (which may hold key material).
            throw KeyContext.Unavailable(Name, $"{ex.ErrorCode ?? ex.GetType().Name} ({(int)ex.StatusCode})", ex);
        }
        catch (Exception ex) when (ex is AmazonClientException or HttpRequestException or IOException)
        {
            throw KeyContext.Unavailable(Name, ex.GetType().Name, ex);
        }
    }

    private static AmazonKeyManagementServiceClient CreateClient(AwsKmsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var config = new AmazonKeyManagementServiceConfig();
        if (options.ServiceUrl is { } url)
        {
            config.ServiceURL = url;
            config.AuthenticationRegion = options.Region;
        }
        else
        {
            config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(options.Region);
        }
        if (options.MaxErrorRetry is int retries)
            config.MaxErrorRetry = retries;
        return options.Credentials is null ? new AmazonKeyManagementServiceClient(config) : new AmazonKeyManagementServiceClient(options.Credentials, config);
    }
}
