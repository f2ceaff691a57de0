using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Wayang.Fast.Control.Tests.Secrets;

// Vault's transit engine as documented (POST /v1/{mount}/encrypt/{key} and /decrypt/{key}, "vault:vN:" ciphertexts,
// base64 plaintext and associated_data, {"errors":[...]} bodies), with real AES-256-GCM and versioned keys, over a
// loopback HttpListener. Checks X-Vault-Token and X-Vault-Namespace like Vault does.
internal sealed class FakeVaultServer : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly List<byte[]> _versions = [RandomNumberGenerator.GetBytes(32)];
    private readonly Task _loop;

    public FakeVaultServer(string token, string? ns, string mount = "transit", string key = "wayang")
    {
        Token = token;
        Namespace = ns;
        Mount = mount;
        Key = key;
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Address = new Uri($"http://127.0.0.1:{port}/");
        _listener.Prefixes.Add(Address.ToString());
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public Uri Address { get; }
    public string Token { get; }
    public string? Namespace { get; }
    public string Mount { get; }
    public string Key { get; }
    // The next request answers this status with an errors body instead of being served.
    public HttpStatusCode? FailNext { get; set; }
    public int Requests;

    public void RotateKey()
    {
        lock (_versions)
            _versions.Add(RandomNumberGenerator.GetBytes(32));
    }

    public void Dispose()
    {
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException)
            {
                return;
            }
            Interlocked.Increment(ref Requests);
            var (status, body) = Serve(context.Request);
            context.Response.StatusCode = (int)status;
            context.Response.ContentType = "application/json";
            var bytes = Encoding.UTF8.GetBytes(body.ToJsonString());
            await context.Response.OutputStream.WriteAsync(bytes);
            context.Response.Close();
        }
    }

    private (HttpStatusCode, JsonNode) Serve(HttpListenerRequest request)
    {
        if (FailNext is { } failure)
        {
            FailNext = null;
            return Error(failure, "internal error");
        }
        if (request.Headers["X-Vault-Token"] != Token)
            return Error(HttpStatusCode.Forbidden, "permission denied");
        if (request.Headers["X-Vault-Namespace"] != Namespace)
            return Error(HttpStatusCode.NotFound, "no handler for route");
        using var reader = new StreamReader(request.InputStream);
        var input = JsonNode.Parse(reader.ReadToEnd())!;
        var ad = Convert.FromBase64String(input["associated_data"]?.GetValue<string>() ?? "");
        var path = request.Url!.AbsolutePath;
        if (request.HttpMethod == "POST" && path == $"/v1/{Mount}/encrypt/{Key}")
            return Encrypt(Convert.FromBase64String(input["plaintext"]!.GetValue<string>()), ad);
        if (request.HttpMethod == "POST" && path == $"/v1/{Mount}/decrypt/{Key}")
            return Decrypt(input["ciphertext"]!.GetValue<string>(), ad);
        return Error(HttpStatusCode.NotFound, "no handler for route");
    }

    private (HttpStatusCode, JsonNode) Encrypt(byte[] plaintext, byte[] ad)
    {
        int version;
        byte[] key;
        lock (_versions)
            (version, key) = (_versions.Count, _versions[^1]);
        var blob = new byte[12 + plaintext.Length + 16];
        RandomNumberGenerator.Fill(blob.AsSpan(0, 12));
        using (var aes = new AesGcm(key, 16))
            aes.Encrypt(blob.AsSpan(0, 12), plaintext, blob.AsSpan(12, plaintext.Length), blob.AsSpan(12 + plaintext.Length), ad);
        return (HttpStatusCode.OK, new JsonObject { ["data"] = new JsonObject { ["ciphertext"] = $"vault:v{version}:{Convert.ToBase64String(blob)}", ["key_version"] = version } });
    }

    private (HttpStatusCode, JsonNode) Decrypt(string ciphertext, byte[] ad)
    {
        var parts = ciphertext.Split(':');
        byte[] key;
        lock (_versions)
        {
            if (parts.Length != 3 || !int.TryParse(parts[1].AsSpan(1), out int version) || version < 1 || version > _versions.Count)
                return Error(HttpStatusCode.BadRequest, "invalid ciphertext");
            key = _versions[version - 1];
        }
        var blob = Convert.FromBase64String(parts[2]);
        var plaintext = new byte[blob.Length - 28];
        try
        {
            using var aes = new AesGcm(key, 16);
            aes.Decrypt(blob.AsSpan(0, 12), blob.AsSpan(12, plaintext.Length), blob.AsSpan(12 + plaintext.Length), plaintext, ad);
        }
        catch (AuthenticationTagMismatchException)
        {
            return Error(HttpStatusCode.BadRequest, "cipher: message authentication failed");
        }
        return (HttpStatusCode.OK, new JsonObject { ["data"] = new JsonObject { ["plaintext"] = Convert.ToBase64String(plaintext) } });
    }

    private static (HttpStatusCode, JsonNode) Error(HttpStatusCode status, string message) => (status, new JsonObject { ["errors"] = new JsonArray(message) });
}
