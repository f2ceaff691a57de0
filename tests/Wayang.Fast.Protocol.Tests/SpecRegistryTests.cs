using System.Globalization;
using System.Text.RegularExpressions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.Protocol.Tests;

// The Markdown registries in protocol-spec/ and the enums in code must say the same thing.
public partial class SpecRegistryTests
{
    // | 1004 | UNKNOWN_OPCODE | no | ... |
    [GeneratedRegex(@"^\|\s*(\d+)\s*\|\s*([A-Z0-9_]+)\s*\|\s*(yes|no)\s*\|", RegexOptions.Multiline)]
    private static partial Regex ErrorRow();

    // | 0x0103 | KeyCreate | control | unary | ... |
    [GeneratedRegex(@"^\|\s*0x([0-9a-fA-F]{4})\s*\|\s*(\w+)\s*\|\s*(\w+)\s*\|\s*([\w-]+)\s*\|", RegexOptions.Multiline)]
    private static partial Regex OpcodeRow();

    [Fact]
    public void Errors_md_and_ErrorRegistry_agree_exactly()
    {
        var doc = ErrorRow().Matches(SpecFiles.ReadAllText("errors.md"))
            .Select(m => (Code: int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), Name: m.Groups[2].Value, Retryable: m.Groups[3].Value == "yes"))
            .ToList();
        // The "fatal errors" table repeats some codes without a retryable column, so it does not match the pattern.
        Assert.Equal(doc.Count, doc.Select(d => d.Code).Distinct().Count());

        var registry = ErrorRegistry.All.Select(e => (Code: (int)e.Code, e.Name, e.Retryable)).ToList();
        Assert.Equal(registry.OrderBy(r => r.Code), doc.OrderBy(d => d.Code));

        var enumCodes = Enum.GetValues<ErrorCode>().Where(c => c != ErrorCode.None).Select(c => (int)c).Order();
        Assert.Equal(enumCodes, doc.Select(d => d.Code).Order());
    }

    [Fact]
    public void Errors_md_puts_each_code_under_its_range_heading()
    {
        var text = SpecFiles.ReadAllText("errors.md");
        var headings = new (string Heading, int Low, int High)[]
        {
            ("## General (1-999)", 1, 999), ("## Protocol (1000-1999)", 1000, 1999), ("## Control (2000-2999)", 2000, 2999),
            ("## Execution (3000-3999)", 3000, 3999), ("## Inference (4000-4999)", 4000, 4999),
            ("## Storage and server (5000-5999)", 5000, 5999), ("## SDK (6000-6999)", 6000, 6999),
        };
        for (int i = 0; i < headings.Length; i++)
        {
            int start = text.IndexOf(headings[i].Heading, StringComparison.Ordinal);
            Assert.True(start >= 0, "missing heading " + headings[i].Heading);
            int end = i + 1 < headings.Length ? text.IndexOf(headings[i + 1].Heading, StringComparison.Ordinal) : text.IndexOf("## Fatal", StringComparison.Ordinal);
            foreach (Match m in ErrorRow().Matches(text[start..end]))
                Assert.InRange(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), headings[i].Low, headings[i].High);
        }
    }

    [Fact]
    public void Errors_md_fatal_table_names_registered_codes()
    {
        var text = SpecFiles.ReadAllText("errors.md");
        var fatal = text[text.IndexOf("## Fatal protocol errors", StringComparison.Ordinal)..];
        var rows = Regex.Matches(fatal, @"^\|\s*(\d+)\s*\|\s*([A-Z0-9_]+)\s*\|", RegexOptions.Multiline);
        Assert.NotEmpty(rows);
        foreach (Match m in rows)
            Assert.Equal(m.Groups[2].Value, ErrorRegistry.NameOf((ErrorCode)int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)));
    }

    [Fact]
    public void Opcodes_md_lists_exactly_the_Opcode_members()
    {
        var doc = OpcodeRow().Matches(SpecFiles.ReadAllText("opcodes.md"))
            .Select(m => (Value: ushort.Parse(m.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture), Name: m.Groups[2].Value, Plane: m.Groups[3].Value, Kind: m.Groups[4].Value))
            .ToList();
        var members = Enum.GetValues<Opcode>().Select(o => (Value: (ushort)o, Name: o.ToString())).OrderBy(o => o.Value);
        Assert.Equal(members, doc.Select(d => (d.Value, d.Name)).OrderBy(d => d.Value));

        foreach (var d in doc)
        {
            var expectedPlane = (d.Value >> 8) switch { 0 => "system", 1 => "control", 2 => "execution", 3 => "inference", _ => "?" };
            Assert.Equal(expectedPlane, d.Plane);
            if (d.Value != 0)
                Assert.Contains(d.Kind, new[] { "unary", "stream" });
        }
    }

    [Fact]
    public void Frame_types_in_framing_md_match_the_enum()
    {
        var rows = Regex.Matches(SpecFiles.ReadAllText("framing.md"), @"^\|\s*(\d+)\s*\|\s*([A-Z]+)\s*\|\s*(client -> server|server -> client|either)\s*\|", RegexOptions.Multiline)
            .Select(m => (Value: byte.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), Name: m.Groups[2].Value));
        var expected = Enum.GetValues<FrameType>().Select(t => ((byte)t, GoldenVectors.FrameTypeName(t)));
        Assert.Equal(expected, rows);
    }
}
