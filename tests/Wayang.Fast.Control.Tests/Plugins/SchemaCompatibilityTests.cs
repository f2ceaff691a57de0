using System.Text.Json;
using Wayang.Fast.Control.Plugins;
using static Wayang.Fast.Control.Plugins.PluginProblemCodes;

namespace Wayang.Fast.Control.Tests.Plugins;

public sealed class SchemaCompatibilityTests
{
    // old schema, new schema, the one problem expected (code and path).
    public static TheoryData<string, string, string, string> Incompatible => new()
    {
        { """{"properties":{"a":{}}}""", """{"properties":{"a":{}},"required":["a"]}""", RequiredAdded, "/required/0" },
        { """{"properties":{"a":{"type":["string","null"]}}}""", """{"properties":{"a":{"type":"string"}}}""", TypeNarrowed, "/properties/a/type" },
        { """{"properties":{"a":{"type":"number"}}}""", """{"properties":{"a":{"type":"integer"}}}""", TypeNarrowed, "/properties/a/type" },
        { """{"properties":{"a":{}}}""", """{"properties":{"a":{"type":"string"}}}""", TypeNarrowed, "/properties/a/type" },
        { """{"properties":{"a":{"enum":["x","y"]}}}""", """{"properties":{"a":{"enum":["x"]}}}""", EnumNarrowed, "/properties/a/enum" },
        { """{"properties":{"a":{"const":"x"}}}""", """{"properties":{"a":{"const":"y"}}}""", EnumNarrowed, "/properties/a/const" },
        { """{"properties":{"a":{}}}""", """{"properties":{"a":{"enum":[1]}}}""", EnumNarrowed, "/properties/a/enum" },
        { """{"properties":{"a":{},"b":{}},"additionalProperties":false}""", """{"properties":{"a":{}},"additionalProperties":false}""", PropertyRemoved, "/properties/b" },
        { """{"properties":{"a":{"minimum":1}}}""", """{"properties":{"a":{"minimum":2}}}""", ConstraintTightened, "/properties/a/minimum" },
        { """{"properties":{"a":{"maximum":10}}}""", """{"properties":{"a":{"maximum":9.5}}}""", ConstraintTightened, "/properties/a/maximum" },
        { """{"properties":{"a":{}}}""", """{"properties":{"a":{"exclusiveMinimum":0}}}""", ConstraintTightened, "/properties/a/exclusiveMinimum" },
        { """{"properties":{"a":{"minLength":1}}}""", """{"properties":{"a":{"minLength":3}}}""", ConstraintTightened, "/properties/a/minLength" },
        { """{"properties":{"a":{"maxLength":64}}}""", """{"properties":{"a":{"maxLength":32}}}""", ConstraintTightened, "/properties/a/maxLength" },
        { """{"properties":{"a":{"minItems":0}}}""", """{"properties":{"a":{"minItems":1}}}""", ConstraintTightened, "/properties/a/minItems" },
        { """{"properties":{"a":{}}}""", """{"properties":{"a":{"maxItems":4}}}""", ConstraintTightened, "/properties/a/maxItems" },
        { """{"properties":{"a":{"pattern":"^a"}}}""", """{"properties":{"a":{"pattern":"^ab"}}}""", ConstraintTightened, "/properties/a/pattern" },
        { """{"properties":{"a":{"multipleOf":10}}}""", """{"properties":{"a":{"multipleOf":3}}}""", ConstraintTightened, "/properties/a/multipleOf" },
        { """{"properties":{"a":{}}}""", """{"properties":{"a":{"uniqueItems":true}}}""", ConstraintTightened, "/properties/a/uniqueItems" },
        { """{"maxProperties":5}""", """{"maxProperties":4}""", ConstraintTightened, "/maxProperties" },
        { """{"additionalProperties":true}""", """{"additionalProperties":false}""", AdditionalPropertiesClosed, "/additionalProperties" },
        { """{}""", """{"additionalProperties":false}""", AdditionalPropertiesClosed, "/additionalProperties" },
        { """{"properties":{"o":{"properties":{"deep":{"type":"integer"}}}}}""", """{"properties":{"o":{"properties":{"deep":{"type":"boolean"}}}}}""", TypeNarrowed, "/properties/o/properties/deep/type" },
        { """{"properties":{"l":{"items":{"enum":[1,2]}}}}""", """{"properties":{"l":{"items":{"enum":[2]}}}}""", EnumNarrowed, "/properties/l/items/enum" },
        { """{"additionalProperties":{"type":"string"}}""", """{"additionalProperties":{"type":"string","maxLength":3}}""", ConstraintTightened, "/additionalProperties/maxLength" },
        { """{"properties":{"a":{"$ref":"#/$defs/x"}}}""", """{"properties":{"a":{"$ref":"#/$defs/y"}}}""", SchemaUnanalyzable, "/properties/a/$ref" },
        { """{"anyOf":[{"type":"string"}]}""", """{"anyOf":[{"type":"integer"}]}""", SchemaUnanalyzable, "/anyOf" },
        { """{}""", """{"oneOf":[{"type":"string"},{"type":"integer"}]}""", SchemaUnanalyzable, "/oneOf" },
        { """{"properties":{"a":true}}""", """{"properties":{"a":false}}""", ConstraintTightened, "/properties/a" },
    };

    [Theory]
    [MemberData(nameof(Incompatible))]
    public void Each_narrowing_is_reported_at_its_pointer(string oldSchema, string newSchema, string code, string path)
    {
        var problems = Check(oldSchema, newSchema);

        Assert.Equal([(code, path)], problems.Select(p => (p.Code, p.Path)));
        Assert.All(problems, p => Assert.False(string.IsNullOrWhiteSpace(p.Message)));
    }

    public static TheoryData<string, string> Compatible => new()
    {
        { """{"type":"object","properties":{"a":{"type":"string"}}}""", """{"type":"object","properties":{"a":{"type":"string"}}}""" },
        { """{"properties":{"a":{"type":"integer"}}}""", """{"properties":{"a":{"type":"number"}}}""" },
        { """{"properties":{"a":{"type":"string"}}}""", """{"properties":{"a":{"type":["string","null"]}}}""" },
        { """{"properties":{"a":{}}}""", """{"properties":{"a":{"default":1}},"required":["a"]}""" },
        { """{"properties":{"a":{"enum":["x"]}}}""", """{"properties":{"a":{"enum":["x","y"]}}}""" },
        { """{"properties":{"a":{"const":"x"}}}""", """{"properties":{"a":{"enum":["x","y"]}}}""" },
        { """{"properties":{"a":{"minimum":2,"maxLength":3}}}""", """{"properties":{"a":{"minimum":1,"maxLength":4}}}""" },
        { """{"properties":{"a":{"pattern":"^a"}}}""", """{"properties":{"a":{}}}""" },
        { """{"properties":{"a":{"multipleOf":10}}}""", """{"properties":{"a":{"multipleOf":5}}}""" },
        { """{"required":["a"]}""", """{}""" },
        { """{"additionalProperties":false}""", """{"additionalProperties":true}""" },
        { """{"properties":{"a":{}}}""", """{"properties":{"a":{},"b":{"type":"string"}},"required":[]}""" },
        { """{"properties":{"a":{},"b":{}}}""", """{"properties":{"a":{}}}""" },
        { """{"title":"x","description":"old","format":"uri"}""", """{"title":"y","description":"new","examples":[1]}""" },
        { """{"$ref":"#/$defs/x","$defs":{"x":{"type":"string"}}}""", """{"$ref":"#/$defs/x","$defs":{"x":{"type":"string"}},"description":"same"}""" },
        { """{"type":"string"}""", """true""" },
    };

    [Theory]
    [MemberData(nameof(Compatible))]
    public void A_widening_or_unchanged_schema_is_compatible(string oldSchema, string newSchema) => Assert.Empty(Check(oldSchema, newSchema));

    [Fact]
    public void Every_problem_is_reported()
    {
        var problems = Check(
            """{"type":"object","properties":{"a":{"type":"string"},"b":{"enum":[1,2]}}}""",
            """{"type":"object","properties":{"a":{"type":"integer"},"b":{"enum":[1]}},"required":["c"],"additionalProperties":false}""");

        Assert.Equal(["/additionalProperties", "/properties/a/type", "/properties/b/enum", "/required/0"], problems.Select(p => p.Path).Order(StringComparer.Ordinal));
    }

    private static IReadOnlyList<PluginProblem> Check(string oldSchema, string newSchema)
    {
        using var old = JsonDocument.Parse(oldSchema);
        using var updated = JsonDocument.Parse(newSchema);
        return SchemaCompatibility.Check(old.RootElement, updated.RootElement);
    }
}
