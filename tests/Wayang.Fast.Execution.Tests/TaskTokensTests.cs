using System.Text;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Execution.Tokens;

namespace Wayang.Fast.Execution.Tests;

public class TaskTokensTests
{
    private static readonly byte[] Key = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
    private static readonly byte[] OtherKey = Enumerable.Range(2, 32).Select(i => (byte)i).ToArray();
    private const long Expiry = 1_700_000_000_000;

    private static (bool Ok, TaskTokenClaims Claims, ErrorCode Error) Verify(TaskTokens tokens, string token, long nowMs = Expiry - 1)
    {
        bool ok = tokens.TryVerify(token, nowMs, out var claims, out var error);
        return (ok, claims, error);
    }

    [Fact]
    public void Round_trip_gives_back_the_claims()
    {
        var tokens = new TaskTokens(Key);
        var token = tokens.Issue("run_abc123", "charge-card", 3, Expiry);

        Assert.StartsWith("v1.", token, StringComparison.Ordinal);
        Assert.Equal(3, token.Split('.').Length);
        var (ok, claims, error) = Verify(tokens, token);
        Assert.True(ok);
        Assert.Equal(ErrorCode.None, error);
        Assert.Equal(new TaskTokenClaims("run_abc123", "charge-card", 3, Expiry), claims);
        Assert.Equal("run_abc123:charge-card:3", claims.TaskId);
    }

    // The HMAC contexts are pooled and reused: every token, from any thread, still carries exactly the one-shot
    // HMAC-SHA256 of its own payload (a context not reset between uses would carry the previous payload into the next).
    [Fact]
    public void Concurrent_tokens_carry_the_standard_HMAC_of_their_own_payload()
    {
        var tokens = new TaskTokens(Key);
        Parallel.For(0, 8, worker =>
        {
            for (int i = 0; i < 500; i++)
            {
                string runId = $"run_{worker}_{i}";
                var token = tokens.Issue(runId, "n", 1 + i % 3, Expiry);
                var parts = token.Split('.');
                var payload = System.Buffers.Text.Base64Url.DecodeFromChars(parts[1]);
                Assert.Equal($"{runId}\nn\n{1 + i % 3}\n{Expiry}", Encoding.UTF8.GetString(payload));
                Assert.Equal(System.Security.Cryptography.HMACSHA256.HashData(Key, payload), System.Buffers.Text.Base64Url.DecodeFromChars(parts[2]));
                Assert.False(tokens.TryVerify(token[..^1] + (token[^1] == 'A' ? 'B' : 'A'), Expiry - 1, out _, out _));
                Assert.True(Verify(tokens, token).Ok);
            }
        });
    }

    [Fact]
    public void Token_is_url_safe_and_deterministic()
    {
        var tokens = new TaskTokens(Key);
        var token = tokens.Issue("r", "n", 1, Expiry);
        Assert.Equal(token, tokens.Issue("r", "n", 1, Expiry));
        Assert.All(token, c => Assert.True(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'));
    }

    [Fact]
    public void Long_and_unicode_ids_round_trip()
    {
        var tokens = new TaskTokens(Key);
        var runId = new string('r', 600);
        var token = tokens.Issue(runId, "nœud-é", int.MaxValue, long.MaxValue);
        var (ok, claims, _) = Verify(tokens, token);
        Assert.True(ok);
        Assert.Equal(runId, claims.RunId);
        Assert.Equal("nœud-é", claims.NodeId);
        Assert.Equal(int.MaxValue, claims.Attempt);
    }

    [Fact]
    public void Expired_token_fails_with_expired_and_still_gives_the_claims()
    {
        var tokens = new TaskTokens(Key);
        var token = tokens.Issue("run1", "node1", 2, Expiry);
        Assert.True(Verify(tokens, token, Expiry).Ok);
        var (ok, claims, error) = Verify(tokens, token, Expiry + 1);
        Assert.False(ok);
        Assert.Equal(ErrorCode.TaskTokenExpired, error);
        Assert.Equal("run1:node1:2", claims.TaskId);
    }

    [Fact]
    public void Wrong_key_is_invalid()
    {
        var token = new TaskTokens(Key).Issue("run1", "node1", 1, Expiry);
        var (ok, _, error) = Verify(new TaskTokens(OtherKey), token);
        Assert.False(ok);
        Assert.Equal(ErrorCode.TaskTokenInvalid, error);
    }

    [Fact]
    public void Changing_any_single_character_is_detected()
    {
        var tokens = new TaskTokens(Key);
        var token = tokens.Issue("run1", "node1", 1, Expiry);
        for (int i = 0; i < token.Length; i++)
        {
            foreach (char replacement in "A_-.0z")
            {
                if (token[i] == replacement)
                    continue;
                var tampered = string.Concat(token.AsSpan(0, i), replacement.ToString(), token.AsSpan(i + 1));
                var (ok, _, error) = Verify(tokens, tampered);
                Assert.False(ok, $"position {i} -> '{replacement}' was accepted");
                Assert.Equal(ErrorCode.TaskTokenInvalid, error);
            }
        }
    }

    [Fact]
    public void Swapping_payloads_between_tokens_is_detected()
    {
        var tokens = new TaskTokens(Key);
        var a = tokens.Issue("run1", "node1", 1, Expiry).Split('.');
        var b = tokens.Issue("run1", "node1", 2, Expiry).Split('.');
        Assert.False(Verify(tokens, $"v1.{b[1]}.{a[2]}").Ok);
        Assert.False(Verify(tokens, $"v1.{a[1]}.{b[2]}").Ok);
    }

    [Fact]
    public void A_validly_signed_but_malformed_payload_is_invalid()
    {
        // Forged with the real key, as a bug elsewhere might: the payload shape itself is still checked.
        foreach (var payload in new[] { "run\nnode\n1", "run\nnode\nx\n5", "run\nnode\n0\n5", "\nnode\n1\n5", "run\n\n1\n5", "run\nnode\n1\n5\nextra", "run\nnode\n1\n" })
        {
            var bytes = Encoding.UTF8.GetBytes(payload);
            var mac = System.Security.Cryptography.HMACSHA256.HashData(Key, bytes);
            var token = $"v1.{System.Buffers.Text.Base64Url.EncodeToString(bytes)}.{System.Buffers.Text.Base64Url.EncodeToString(mac)}";
            var (ok, _, error) = Verify(new TaskTokens(Key), token);
            Assert.False(ok, payload);
            Assert.Equal(ErrorCode.TaskTokenInvalid, error);
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("v1")]
    [InlineData("v1.")]
    [InlineData("v1..")]
    [InlineData("v2.abc.def")]
    [InlineData("v1.abc")]
    [InlineData("v1.abc.def.ghi")]
    [InlineData("v1.!!!!.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("v1.AAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [InlineData("v1.AAAA=.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("v1.A.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("v1.AA AA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("v1.AAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("   ")]
    public void Garbage_is_invalid_and_never_throws(string? garbage)
    {
        var (ok, _, error) = Verify(new TaskTokens(Key), garbage!);
        Assert.False(ok);
        Assert.Equal(ErrorCode.TaskTokenInvalid, error);
    }

    [Fact]
    public void Oversized_token_is_invalid()
    {
        var tokens = new TaskTokens(Key);
        var valid = tokens.Issue(new string('r', 1500), "n", 1, Expiry);
        Assert.True(valid.Length > TaskTokens.MaxTokenLength);
        Assert.False(Verify(tokens, valid).Ok);
    }

    [Fact]
    public void Random_garbage_never_throws()
    {
        var tokens = new TaskTokens(Key);
        var random = new Random(42);
        var valid = tokens.Issue("run1", "node1", 1, Expiry);
        for (int i = 0; i < 2000; i++)
        {
            var chars = valid.ToCharArray();
            // Mutate a few characters to anything, including non-ASCII and separators.
            for (int m = 0; m < 1 + random.Next(4); m++)
                chars[random.Next(chars.Length)] = (char)random.Next(0, 0x3000);
            var candidate = new string(chars, 0, random.Next(chars.Length + 1));
            Assert.False(tokens.TryVerify(candidate, 0, out _, out var error) && candidate != valid);
            Assert.True(error is ErrorCode.TaskTokenInvalid or ErrorCode.TaskTokenExpired or ErrorCode.None);
        }
    }

    [Fact]
    public void Short_keys_are_rejected()
    {
        Assert.Throws<ArgumentException>(() => new TaskTokens(new byte[31]));
        Assert.Throws<ArgumentNullException>(() => new TaskTokens(null!));
        _ = new TaskTokens(new byte[64]);
    }

    [Fact]
    public void Key_is_copied_so_later_changes_do_not_affect_verification()
    {
        var key = (byte[])Key.Clone();
        var tokens = new TaskTokens(key);
        var token = tokens.Issue("r", "n", 1, Expiry);
        key[0] ^= 0xFF;
        Assert.True(Verify(tokens, token).Ok);
    }

    [Fact]
    public void Issue_rejects_ambiguous_fields()
    {
        var tokens = new TaskTokens(Key);
        Assert.ThrowsAny<ArgumentException>(() => tokens.Issue("a\nb", "n", 1, Expiry));
        Assert.ThrowsAny<ArgumentException>(() => tokens.Issue("r", "", 1, Expiry));
        Assert.ThrowsAny<ArgumentException>(() => tokens.Issue("r", "n", 0, Expiry));
    }
}
