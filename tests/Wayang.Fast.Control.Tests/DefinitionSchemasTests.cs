using System.Text;
using System.Text.Json;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Definitions;

namespace Wayang.Fast.Control.Tests;

public sealed class DefinitionSchemasTests
{
    [Fact]
    public void The_embedded_schemas_are_the_spec_files()
    {
        var spec = Path.Combine(RepositoryRoot(), "protocol-spec", "schemas");
        Assert.Equal(File.ReadAllText(Path.Combine(spec, "workflow-definition.schema.json")), DefinitionSchemas.WorkflowSchemaJson);
        Assert.Equal(File.ReadAllText(Path.Combine(spec, "agent-definition.schema.json")), DefinitionSchemas.AgentSchemaJson);
    }

    [Fact]
    public void A_fully_populated_agent_definition_serializes_to_json_the_schema_and_the_checks_accept()
    {
        var definition = new AgentDefinition
        {
            Id = "full",
            Version = 4,
            Description = "d",
            ModelAlias = "chat",
            ProviderPreference = ProviderPreference.Cloud,
            SystemPrompt = "s",
            PromptTemplate = "{{a}}",
            Variables = [new TemplateVariable { Name = "a", Required = true, Description = "x" }],
            Parameters = new ModelParameters { Temperature = 0.7, TopP = 0.9, MaxTokens = 256, Stop = ["\n"], Seed = 42 },
            Tools = [new ToolDefinition { Name = "t", Description = "d", Parameters = JsonDocument.Parse("""{"type":"object"}""").RootElement.Clone() }],
            CredentialRefs = ["secret://a/b"],
            Guardrails = new GuardrailSettings { RedactPii = true, BlockedTopics = ["x"], MaxInputChars = 100 },
            Redaction = new RedactionSettings { Prompts = true, Completions = true, Patterns = ["\\d+"], Replacement = "#" },
        };
        var json = JsonSerializer.SerializeToUtf8Bytes(definition, AgentJsonContext.Default.AgentDefinition);

        Assert.Empty(AgentValidator.Validate(json));
        // An empty definition's defaults (empty lists, AUTO) are accepted too, given the one required choice.
        Assert.Empty(AgentValidator.Validate(JsonSerializer.SerializeToUtf8Bytes(new AgentDefinition { Id = "a", Model = "m" }, AgentJsonContext.Default.AgentDefinition)));
    }

    [Fact]
    public void The_full_agent_fixture_round_trips_through_the_model_unchanged()
    {
        var json = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fixtures", "Schemas", "agent", "valid", "full.json"));
        var definition = AgentValidator.Parse(json);
        definition.Version = 3;
        var written = JsonSerializer.SerializeToElement(definition, AgentJsonContext.Default.AgentDefinition);

        Assert.True(JsonElement.DeepEquals(JsonDocument.Parse(json).RootElement, written), written.GetRawText());
    }

    [Fact]
    public void A_workflow_exception_lists_every_violation_and_keeps_the_details_existing_clients_read()
    {
        var json = """{"id":"wf","nodes":[{"id":"start","type":"TASK","executorType":"w"},{"id":"next","type":"NOPE","extra":1}]}"""u8.ToArray();
        var ex = Assert.Throws<WayangException>(() => DefinitionSchemas.ThrowIfInvalid(DefinitionKind.Workflow, json));

        Assert.Equal(ErrorCode.WorkflowInvalid, ex.Code);
        Assert.Equal("workflow: the definition is invalid (2 violations):\n/nodes/1/extra: unknown property 'extra'\n/nodes/1/type: must be one of TASK, DECISION, PARALLEL, JOIN, WAIT, AGENT (got \"NOPE\")", ex.Error.Message);
        Assert.Equal("next", ex.Error.Details["node"]);
        Assert.Equal("$.nodes[1].extra", ex.Error.Details["path"]);
        Assert.Equal("unknown property 'extra'", ex.Error.Details["reason"]);
        Assert.Equal("/nodes/1/extra", ex.Error.Details["pointer"]);
        Assert.Equal("2", ex.Error.Details["violationCount"]);
        Assert.Equal("""[{"pointer":"/nodes/1/extra","reason":"unknown property 'extra'"},{"pointer":"/nodes/1/type","reason":"must be one of TASK, DECISION, PARALLEL, JOIN, WAIT, AGENT (got \"NOPE\")"}]""",
            ex.Error.Details["violations"]);
    }

    [Fact]
    public void A_violation_outside_any_node_names_no_node_and_malformed_json_gives_one_violation()
    {
        var ex = Assert.Throws<WayangException>(() => DefinitionSchemas.ThrowIfInvalid(DefinitionKind.Workflow, """{"id":"wf","nodes":[{"id":"a","type":"TASK","executorType":"w"}],"x":1}"""u8));
        Assert.Equal("", ex.Error.Details["node"]);
        Assert.Equal("$.x", ex.Error.Details["path"]);

        var malformed = Assert.Throws<WayangException>(() => DefinitionSchemas.ThrowIfInvalid(DefinitionKind.Workflow, """{"id":"wf","nodes":[{"id":"a" "type":"TASK"}]}"""u8));
        Assert.Equal("1", malformed.Error.Details["violationCount"]);
        Assert.Equal("/nodes/0/id", malformed.Error.Details["pointer"]);
        Assert.StartsWith("invalid JSON at line 1, byte 31: ", malformed.Error.Details["reason"], StringComparison.Ordinal);
    }

    [Fact]
    public void The_message_is_capped_and_says_how_many_more_there_are()
    {
        var nodes = string.Join(",", Enumerable.Range(0, 30).Select(i => $$"""{"id":"n{{i}}","type":"TASK","executorType":"w","bad":true}"""));
        var ex = Assert.Throws<WayangException>(() => DefinitionSchemas.ThrowIfInvalid(DefinitionKind.Workflow, Encoding.UTF8.GetBytes($$"""{"id":"wf","nodes":[{{nodes}}]}""")));

        var lines = ex.Error.Message.Split('\n');
        Assert.Equal("workflow: the definition is invalid (30 violations):", lines[0]);
        Assert.Equal(DefinitionSchemas.MaxViolationsInMessage + 2, lines.Length);
        Assert.Equal("/nodes/19/bad: unknown property 'bad'", lines[^2]);
        Assert.Equal("... and 10 more", lines[^1]);
        Assert.Equal(30, JsonDocument.Parse(ex.Error.Details["violations"]).RootElement.GetArrayLength());
    }

    [Fact]
    public void An_agent_exception_is_AGENT_INVALID_and_lists_semantic_violations_with_schema_ones()
    {
        var json = """{"id":"bot","model":"m","promptTemplate":"{{who}}","parameters":{"topP":2}}"""u8.ToArray();
        var ex = Assert.Throws<WayangException>(() => AgentValidator.Parse(json));

        Assert.Equal(ErrorCode.AgentInvalid, ex.Code);
        Assert.Equal("agent: the definition is invalid (2 violations):\n/parameters/topP: must be between 0 and 1 (got 2)\n/promptTemplate: placeholder '{{who}}' is not declared in variables", ex.Error.Message);
        Assert.False(ex.Error.Details.ContainsKey("node"));
    }

    [Fact]
    public void Pointers_escape_slash_and_tilde_in_property_names()
    {
        var violations = DefinitionSchemas.ValidateWorkflow("""{"id":"wf","nodes":[{"id":"a","type":"TASK","executorType":"w"}],"a/b~c":1,"outputs":{"x/y":{"path":""}}}"""u8);

        Assert.Equal([new SchemaViolation("/a~1b~0c", "unknown property 'a/b~c'"), new SchemaViolation("/outputs/x~1y", "property name must be a field name: 1..64 of [A-Za-z0-9-_], starting with a letter, digit or '_' (got \"x/y\")"), new SchemaViolation("/outputs/x~1y/path", "must be at least 1 characters long (got \"\")")], violations);
        Assert.Equal("$['a/b~c']", DefinitionSchemas.ToJsonPath("/a~1b~0c"));
        Assert.Equal("$", DefinitionSchemas.ToJsonPath(""));
    }

    [Fact]
    public void Placeholders_are_listed_once_in_order()
    {
        Assert.Equal(["b", "a"], AgentValidator.Placeholders("{{b}} {{ a }} {{b}}"));
    }

    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Wayang.Fast.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("The repository root was not found above the test output.");
    }
}

public sealed class ProviderPreferenceGoldenTests
{
    // Persisted inside stored agent definitions and carried on the wire: a renumbering or a renamed JSON name breaks
    // every stored agent. Append only.
    [Fact]
    public void Provider_preference_values_and_names_are_frozen()
    {
        var expected = new (ProviderPreference Value, int Number, string Json)[]
        {
            (ProviderPreference.Auto, 0, "AUTO"),
            (ProviderPreference.Local, 1, "LOCAL"),
            (ProviderPreference.Cloud, 2, "CLOUD"),
        };
        Assert.Equal(expected.Length, Enum.GetValues<ProviderPreference>().Length);
        foreach (var (value, number, json) in expected)
        {
            Assert.Equal(number, (int)value);
            Assert.Equal($"\"{json}\"", JsonSerializer.Serialize(new AgentDefinition { ProviderPreference = value }, AgentJsonContext.Default.AgentDefinition).Split("\"providerPreference\":")[1].Split(',')[0]);
        }
        // The schema's enum is the same list, in the same order.
        var schemaEnum = JsonDocument.Parse(DefinitionSchemas.AgentSchemaJson).RootElement.GetProperty("properties").GetProperty("providerPreference").GetProperty("enum");
        Assert.Equal(expected.Select(e => e.Json), schemaEnum.EnumerateArray().Select(e => e.GetString()));
    }
}
