using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Wayang.Fast.Control.Secrets;

public sealed class VaultTransitOptions
{
    public Uri Address { get; set; } = new("http://127.0.0.1:8200");
    public string Token { get; set; } = "";
    // Vault Enterprise namespace; sent as X-Vault-Namespace when set.
    public string? Namespace { get; set; }
    public string Mount { get; set; } = "transit";
    // An aes256-gcm96 key: associated data needs an AEAD key type.
    public string KeyName { get; set; } = "";
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);
}

// Data keys wrapped by Vault's transit engine. The data key is generated here and sent to
// POST /v1/{mount}/encrypt/{key} with the canonical context as base64 associated_data, so Vault authenticates it and a
// wrapped key moved to another tenant or path fails at decrypt. Re-wrapping is decrypt + encrypt rather than
// /rewrap, because /rewrap takes no associated_data. KeyId is "{mount}/{key}:v{n}" from the "vault:vN:" prefix.
public sealed class VaultTransitKeyProvider : IKeyEncryptionProvider, IDisposable
{
    private readonly VaultTransitOptions _options;
    private readonly HttpClient _http;

    public VaultTransitKeyProvider(VaultTransitOptions options, HttpMessageHandler? handler = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.Token);
        ArgumentException.ThrowIfNullOrEmpty(options.KeyName);
        _options = options;
        _http = handler is null ? new HttpClient() : new HttpClient(handler);
        _http.BaseAddress = options.Address;
        _http.Timeout = options.Timeout;
        _http.DefaultRequestHeaders.Add("X-Vault-Token", options.Token);
        if (!string.IsNullOrEmpty(options.Namespace))
            _http.DefaultRequestHeaders.Add("X-Vault-Namespace", options.Namespace);
    }

    public string Name => "vault-transit";

    public async ValueTask<DataKey> GenerateDataKeyAsync(IReadOnlyDictionary<string, string> context, CancellationToken ct)
    {
        var plaintext = RandomNumberGenerator.GetBytes(KeyContext.DataKeyBytes);
        return new DataKey(plaintext, await EncryptAsync(plaintext, context, ct).ConfigureAwait(false));
    }

    public async ValueTask<byte[]> DecryptDataKeyAsync(WrappedDataKey wrapped, IReadOnlyDictionary<string, string> context, CancellationToken ct)
    {
        var data = await PostAsync("decrypt", new JsonObject
        {
            ["ciphertext"] = Encoding.UTF8.GetString(wrapped.Ciphertext),
            ["associated_data"] = AssociatedData(context),
        }, decrypting: true, ct).ConfigureAwait(false);
        try
        {
            var plaintext = Convert.FromBase64String(data["plaintext"]?.GetValue<string>() ?? "");
            return plaintext.Length == KeyContext.DataKeyBytes ? plaintext : throw KeyContext.Integrity(Name);
        }
        catch (FormatException ex)
        {
            throw KeyContext.Unavailable(Name, "decrypt returned no base64 plaintext", ex);
        }
    }

    public async ValueTask<WrappedDataKey> RewrapAsync(WrappedDataKey wrapped, IReadOnlyDictionary<string, string> context, CancellationToken ct)
    {
        var plaintext = await DecryptDataKeyAsync(wrapped, context, ct).ConfigureAwait(false);
        try
        {
            return await EncryptAsync(plaintext, context, ct).ConfigureAwait(false);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    public void Dispose() => _http.Dispose();

    private async ValueTask<WrappedDataKey> EncryptAsync(byte[] plaintext, IReadOnlyDictionary<string, string> context, CancellationToken ct)
    {
        var data = await PostAsync("encrypt", new JsonObject
        {
            ["plaintext"] = Convert.ToBase64String(plaintext),
            ["associated_data"] = AssociatedData(context),
        }, decrypting: false, ct).ConfigureAwait(false);
        var ciphertext = data["ciphertext"]?.GetValue<string>() ?? "";
        // "vault:v3:..." -> the key version that wrapped it.
        var parts = ciphertext.Split(':', 3);
        if (parts.Length != 3 || parts[0] != "vault" || !parts[1].StartsWith('v'))
            throw KeyContext.Unavailable(Name, "encrypt returned no vault ciphertext");
        return new WrappedDataKey($"{_options.Mount}/{_options.KeyName}:{parts[1]}", Encoding.UTF8.GetBytes(ciphertext));
    }

    private static string AssociatedData(IReadOnlyDictionary<string, string> context) => Convert.ToBase64String(KeyContext.Encode(context, ""));

    // The "data" object of a successful response. Vault's error messages are not passed on: they may echo input.
    private async Task<JsonObject> PostAsync(string operation, JsonObject body, bool decrypting, CancellationToken ct)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.PostAsJsonAsync($"v1/{_options.Mount}/{operation}/{_options.KeyName}", body, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw KeyContext.Unavailable(Name, $"{operation} request failed: {ex.HttpRequestError}", ex);
        }
        catch (TaskCanceledException ex) when (!ct.IsCancellationRequested)
        {
            throw KeyContext.Unavailable(Name, $"{operation} timed out", ex);
        }
        using (response)
        {
            switch (response.StatusCode)
            {
                case HttpStatusCode.OK:
                    break;
                case HttpStatusCode.Forbidden:
                    throw KeyContext.Unavailable(Name, $"{operation}: permission denied (403)");
                // Vault answers 400 when a ciphertext fails authentication (tampered, or other associated data).
                case HttpStatusCode.BadRequest when decrypting:
                    throw KeyContext.Integrity(Name);
                default:
                    throw KeyContext.Unavailable(Name, $"{operation}: HTTP {(int)response.StatusCode}");
            }
            try
            {
                var json = await response.Content.ReadFromJsonAsync<JsonObject>(ct).ConfigureAwait(false);
                return json?["data"] as JsonObject ?? throw KeyContext.Unavailable(Name, $"{operation}: response has no data");
            }
            catch (JsonException ex)
            {
                throw KeyContext.Unavailable(Name, $"{operation}: response is not JSON", ex);
            }
        }
    }
}
