using System.Text;
using NSec.Cryptography;
using Wayang.Fast.Control.Plugins;

namespace Wayang.Fast.Control.Tests.Plugins;

// Persisted enums are frozen; SemVer order and ranges; the exact signed payload, key ids and digests.
public sealed class PluginPrimitivesTests
{
    [Fact]
    public void Verification_levels_are_frozen()
    {
        (string, byte)[] golden = [("Strict", 0), ("Audit", 1)];
        Assert.Equal(golden, Enum.GetValues<VerificationLevel>().Select(v => (v.ToString(), (byte)v)));
        Assert.Equal(typeof(byte), Enum.GetUnderlyingType(typeof(VerificationLevel)));
    }

    [Fact]
    public void Version_states_are_frozen()
    {
        (string, byte)[] golden = [("Enabled", 0), ("Disabled", 1)];
        Assert.Equal(golden, Enum.GetValues<PluginVersionState>().Select(v => (v.ToString(), (byte)v)));
        Assert.Equal(typeof(byte), Enum.GetUnderlyingType(typeof(PluginVersionState)));
    }

    [Fact]
    public void Versions_follow_semver_precedence()
    {
        // SemVer 2.0 §11's own example, in ascending order.
        string[] ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0"];
        var parsed = ordered.Select(SemanticVersion.Parse).ToList();

        Assert.Equal(ordered, Enumerable.Reverse(parsed).Order().Select(v => v.Text));
        for (int i = 1; i < parsed.Count; i++)
            Assert.True(parsed[i - 1] < parsed[i], $"{parsed[i - 1]} < {parsed[i]}");
        Assert.All(["1", "1.0", "1.0.0.0", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+b", "v1.0.0", "1.0.0-a..b"], t => Assert.False(SemanticVersion.TryParse(t, out _), t));
    }

    [Theory]
    [InlineData(">=0.1.0 <1.0.0", "0.5.0", true)]
    [InlineData(">=0.1.0 <1.0.0", "1.0.0", false)]
    [InlineData(">0.5.0", "0.5.0", false)]
    [InlineData("<=0.5.0", "0.5.0", true)]
    [InlineData("=0.5.0", "0.5.0", true)]
    [InlineData("<1.0.0", "1.0.0-rc.1", true)]
    public void Ranges_hold_when_every_comparator_does(string range, string version, bool holds)
    {
        Assert.True(VersionRange.TryParse(range, out var parsed));
        Assert.Equal(holds, parsed.Contains(SemanticVersion.Parse(version)));
    }

    [Fact]
    public void The_signature_covers_the_prefixed_manifest()
    {
        var (privateKey, publicKey) = PluginSigning.GenerateKeyPair();
        var manifest = """{"id":"acme.x"}"""u8.ToArray();
        using var key = Key.Import(SignatureAlgorithm.Ed25519, privateKey, KeyBlobFormat.RawPrivateKey);
        var byHand = SignatureAlgorithm.Ed25519.Sign(key, [.. "wayang-plugin-v1\n"u8, .. manifest]);

        Assert.Equal((32, 32), (privateKey.Length, publicKey.Length));
        // Ed25519 is deterministic: the library signs exactly the documented payload.
        Assert.Equal(byHand, PluginSigning.Sign(privateKey, manifest));
        Assert.True(PluginSigning.Verify(publicKey, manifest, byHand));
        Assert.False(PluginSigning.Verify(publicKey, [.. manifest, (byte)' '], byHand));
        Assert.False(PluginSigning.Verify(publicKey, manifest, byHand.AsSpan(1)));
        Assert.False(PluginSigning.Verify(new byte[31], manifest, byHand));
    }

    [Fact]
    public void Key_ids_and_digests_have_their_documented_form()
    {
        Assert.Equal("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", PluginSigning.DigestOf(Encoding.ASCII.GetBytes("abc")));
        // SHA-256 of 32 zero bytes starts 66687aadf862bd77.
        Assert.Equal("66687aadf862bd77", PluginSigning.KeyIdOf(new byte[32]));
    }
}
