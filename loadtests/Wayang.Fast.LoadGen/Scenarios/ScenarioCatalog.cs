namespace Wayang.Fast.LoadGen.Scenarios;

public static class ScenarioCatalog
{
    // Later issues add their scenarios here (key-create, run-submit, inference, ...).
    private static readonly Func<IScenario>[] Factories =
    [
        static () => new PingScenario(),
    ];

    public static IReadOnlyList<IScenario> All => [.. Factories.Select(static f => f())];

    public static IScenario? Find(string name)
        => All.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase));
}
