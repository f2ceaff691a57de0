namespace Wayang.Fast.Server;

// Which key-encryption provider wraps the secrets' data keys (protocol-spec/secrets.md), and how often rotation
// policies are checked. Bound from "Wayang:Server:Secrets"; credentials come from the environment, never from here.
public sealed class SecretsOptions
{
    // "local" (default: a keyring file in the data directory), "aws-kms" or "vault-transit".
    public string Provider { get; set; } = "local";

    // local: the keyring's directory (default <data>/secrets). Back it up apart from the data: without it the
    // secrets cannot be decrypted, and with it anyone holding a copy of the data can.
    public string? LocalKeyringDirectory { get; set; }

    // aws-kms: the KMS key (id, ARN or alias/...), its region, and an endpoint override (localstack, moto). AWS
    // credentials come from the SDK's default chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile, instance role).
    public string AwsKmsKeyId { get; set; } = "";
    public string AwsRegion { get; set; } = "us-east-1";
    public string? AwsServiceUrl { get; set; }

    // vault-transit: the server, the transit mount, the key, an Enterprise namespace. The token comes from
    // VAULT_TOKEN or from the file named here (owner-only), never from configuration.
    public string VaultAddress { get; set; } = "";
    public string VaultMount { get; set; } = "transit";
    public string VaultKeyName { get; set; } = "";
    public string? VaultNamespace { get; set; }
    public string? VaultTokenFile { get; set; }

    // How often rotation policies are checked for secrets due (each is announced once per period).
    public TimeSpan RotationCheckInterval { get; set; } = TimeSpan.FromHours(1);

    internal void Validate()
    {
        switch (Provider)
        {
            case "local":
                break;
            case "aws-kms":
                if (string.IsNullOrWhiteSpace(AwsKmsKeyId))
                    throw new ArgumentException("Secrets.AwsKmsKeyId is required for the aws-kms provider.", nameof(AwsKmsKeyId));
                break;
            case "vault-transit":
                if (string.IsNullOrWhiteSpace(VaultAddress) || string.IsNullOrWhiteSpace(VaultKeyName))
                    throw new ArgumentException("Secrets.VaultAddress and Secrets.VaultKeyName are required for the vault-transit provider.", nameof(VaultAddress));
                break;
            default:
                throw new ArgumentException($"Secrets.Provider '{Provider}' is not one of local, aws-kms, vault-transit.", nameof(Provider));
        }
        if (RotationCheckInterval <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(RotationCheckInterval), RotationCheckInterval, "Must be positive.");
    }
}
