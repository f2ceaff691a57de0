using System.Net.Http.Headers;
using System.Net.Sockets;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Inference.Providers.Http;

// The HTTP plumbing the adapters share: one HttpClient per provider instance over a SocketsHttpHandler with the
// connect timeout, and one send that turns transport failures and error statuses into inference codes. An
// adapter passes readError to pick the provider's own error type out of the body (it wins over the status).
public sealed class ProviderHttp : IDisposable
{
    private readonly HttpClient _client;
    private readonly HttpProviderOptions _options;
    private readonly Action<HttpRequestHeaders, string?> _authorize;

    public ProviderHttp(HttpProviderOptions options, Action<HttpRequestHeaders, string?>? authorize = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = options.ConnectTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            AutomaticDecompression = System.Net.DecompressionMethods.All,
            // A response disposed unfinished (a cancelled or abandoned stream) closes its connection at once. The
            // default drains up to 1 MiB for 2 s to reuse the connection, which keeps the provider generating (and
            // billing) tokens nobody reads.
            MaxResponseDrainSize = 0,
        };
        _client = new HttpClient(handler) { BaseAddress = options.BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
        foreach (var (k, v) in options.Headers)
            _client.DefaultRequestHeaders.TryAddWithoutValidation(k, v);
        _authorize = authorize ?? BearerAuth;
        _authorize(_client.DefaultRequestHeaders, options.ApiKey);
    }

    public string Provider => _options.Name;
    public HttpProviderOptions Options => _options;

    public static void BearerAuth(HttpRequestHeaders headers, string? apiKey)
    {
        ArgumentNullException.ThrowIfNull(headers);
        if (!string.IsNullOrEmpty(apiKey))
            headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    // Sends and returns a successful response (headers read; the body is the caller's, to dispose). Error statuses
    // are read and classified here; readError(status, body) may return the code the provider's body names and its
    // message. Cancellation by the caller's token surfaces as OperationCanceledException, untouched.
    // apiKey: a per-request credential (ChatRequest.ApiKey, from an agent's credentialRefs) sent in place of the
    // configured one: HttpClient adds a default header only when the request does not carry it already.
    public async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken,
        Func<int, string, (ErrorCode Code, string? Message)>? readError = null, string? apiKey = null)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!string.IsNullOrEmpty(apiKey))
            _authorize(request.Headers, apiKey);
        HttpResponseMessage response;
        try
        {
            response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (TaskCanceledException ex) when (ex.InnerException is TimeoutException || ex.InnerException is SocketException)
        {
            // SocketsHttpHandler's ConnectTimeout.
            throw InferenceErrors.Timeout(Provider, "connect", _options.ConnectTimeout);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            throw InferenceErrors.FromException(Provider, ex);
        }
        if (response.IsSuccessStatusCode)
            return response;
        using (response)
        {
            string body;
            try
            {
                body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException)
            {
                body = "";
            }
            var (code, message) = readError?.Invoke((int)response.StatusCode, body) ?? (ErrorCode.None, null);
            throw InferenceErrors.FromHttpStatus(Provider, response.StatusCode, body, response.Headers, code, message);
        }
    }

    public void Dispose() => _client.Dispose();
}
