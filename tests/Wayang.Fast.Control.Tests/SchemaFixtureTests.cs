using System.Text;
using Wayang.Fast.Control.Definitions;

namespace Wayang.Fast.Control.Tests;

// The schemas' rules, one fixture per rule (see Fixtures/Schemas/README.md for the .expect format).
public sealed class SchemaFixtureTests
{
    private static readonly string Root = Path.Combine(AppContext.BaseDirectory, "Fixtures", "Schemas");

    public static TheoryData<string> WorkflowValid() => Names("workflow", "valid");
    public static TheoryData<string> WorkflowInvalid() => Names("workflow", "invalid");
    public static TheoryData<string> AgentValid() => Names("agent", "valid");
    public static TheoryData<string> AgentInvalid() => Names("agent", "invalid");

    [Theory]
    [MemberData(nameof(WorkflowValid))]
    public void Valid_workflow_fixture_has_no_violation(string name) =>
        Assert.Empty(DefinitionSchemas.ValidateWorkflow(Read("workflow", "valid", name)));

    [Theory]
    [MemberData(nameof(WorkflowInvalid))]
    public void Invalid_workflow_fixture_reports_exactly_the_expected_violations(string name) =>
        AssertExpected(DefinitionSchemas.ValidateWorkflow(Read("workflow", "invalid", name)), "workflow", name);

    [Theory]
    [MemberData(nameof(AgentValid))]
    public void Valid_agent_fixture_passes_schema_and_semantic_checks(string name)
    {
        var json = Read("agent", "valid", name);
        Assert.Empty(AgentValidator.Validate(json));
        Assert.Empty(DefinitionSchemas.ValidateAgent(json));
    }

    [Theory]
    [MemberData(nameof(AgentInvalid))]
    public void Invalid_agent_fixture_reports_exactly_the_expected_violations(string name) =>
        AssertExpected(AgentValidator.Validate(Read("agent", "invalid", name)), "agent", name);

    [Fact]
    public void Every_invalid_fixture_has_an_expectation_and_every_expectation_a_fixture()
    {
        foreach (var kind in new[] { "workflow", "agent" })
        {
            var dir = Path.Combine(Root, kind, "invalid");
            var fixtures = Directory.GetFiles(dir, "*.json").Select(Path.GetFileNameWithoutExtension).Order().ToList();
            var expectations = Directory.GetFiles(dir, "*.expect").Select(Path.GetFileNameWithoutExtension).Order().ToList();
            Assert.Equal(fixtures, expectations);
            Assert.NotEmpty(fixtures);
        }
    }

    [Fact]
    public void Violations_come_sorted_by_pointer_with_array_indexes_in_numeric_order()
    {
        var nodes = string.Join(",", Enumerable.Range(0, 12).Select(i => $$"""{"id":"n{{i}}","type":"BAD"}"""));
        var violations = DefinitionSchemas.ValidateWorkflow(Encoding.UTF8.GetBytes($$"""{"id":"wf","nodes":[{{nodes}}]}"""));

        Assert.Equal(Enumerable.Range(0, 12).Select(i => $"/nodes/{i}/type"), violations.Select(v => v.Pointer));
    }

    private static void AssertExpected(IReadOnlyList<SchemaViolation> actual, string kind, string name)
    {
        var expected = File.ReadAllLines(Path.Combine(Root, kind, "invalid", name + ".expect"))
            .Where(line => line.Length > 0)
            .Select(line =>
            {
                int split = line.IndexOf(" :: ", StringComparison.Ordinal);
                Assert.True(split >= 0, $"{name}.expect: '{line}' is not '<pointer> :: <reason>'");
                return (Pointer: line[..split], Reason: line[(split + 4)..]);
            })
            .ToList();
        var listing = string.Join("\n", actual.Select(v => v.ToString()));
        var unmatched = actual.ToList();
        foreach (var (pointer, reason) in expected)
        {
            int at = unmatched.FindIndex(v => v.Pointer == pointer && v.Reason.Contains(reason, StringComparison.Ordinal));
            Assert.True(at >= 0, $"{name}: expected '{pointer}: ...{reason}...' among:\n{listing}");
            unmatched.RemoveAt(at);
        }
        Assert.True(unmatched.Count == 0, $"{name}: unexpected violations:\n{string.Join("\n", unmatched)}");
    }

    private static byte[] Read(string kind, string validity, string name) => File.ReadAllBytes(Path.Combine(Root, kind, validity, name + ".json"));

    private static TheoryData<string> Names(string kind, string validity)
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(Path.Combine(Root, kind, validity), "*.json").Order(StringComparer.Ordinal))
            data.Add(Path.GetFileNameWithoutExtension(file));
        return data;
    }
}
