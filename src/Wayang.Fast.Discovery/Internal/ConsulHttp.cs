using System.Globalization;
using System.Net.Http.Headers;

namespace Wayang.Fast.Discovery.Internal;

internal static class ConsulHttp
{
    public const string TokenHeader = "X-Consul-Token";
    public const string IndexHeader = "X-Consul-Index";

    // An HttpClient of our own: no overall timeout (each request carries its own, longer than a blocking wait),
    // and pooled connections recycled now and then so a moved agent address (DNS) is picked up.
    public static HttpClient CreateClient() =>
        new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = Timeout.InfiniteTimeSpan };

    public static Uri BaseAddress(Uri address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (!address.IsAbsoluteUri || (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps))
            throw new ArgumentException($"The Consul address '{address}' must be an absolute http:// or https:// URI.", nameof(address));
        // Keep a path prefix (a proxy in front of the agent) and make relative paths append to it.
        var text = address.GetLeftPart(UriPartial.Path);
        return new Uri(text.EndsWith('/') ? text : text + "/");
    }

    // Sends one request with its own deadline. A non-success status becomes ConsulHttpException (Consul puts the
    // reason in a plain-text body); the caller disposes the response.
    public static async Task<HttpResponseMessage> SendAsync(
        HttpClient http, HttpMethod method, Uri uri, string? token, HttpContent? content, TimeSpan timeout, TimeProvider time, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, uri) { Content = content };
        if (!string.IsNullOrEmpty(token))
            request.Headers.TryAddWithoutValidation(TokenHeader, token);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));

        using var deadline = new CancellationTokenSource(timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, deadline.Token);
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"Consul did not answer {method} {uri.AbsolutePath} within {timeout}.", e);
        }
        if (response.IsSuccessStatusCode)
            return response;

        using (response)
        {
            string body;
            try
            {
                body = await response.Content.ReadAsStringAsync(linked.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                body = "";
            }
            body = body.Trim();
            if (body.Length > 300)
                body = body[..300] + "...";
            throw new ConsulHttpException((int)response.StatusCode,
                $"Consul answered {method} {uri.AbsolutePath} with {(int)response.StatusCode} {response.ReasonPhrase}{(body.Length > 0 ? ": " + body : "")}");
        }
    }

    public static ulong ReadIndex(HttpResponseMessage response) =>
        response.Headers.TryGetValues(IndexHeader, out var values)
        && ulong.TryParse(values.FirstOrDefault(), NumberStyles.None, CultureInfo.InvariantCulture, out var index)
            ? index
            : 0;
}
