namespace Wayang.Fast.Inference.Models;

public sealed class ModelWarmerOptions
{
    // Loaded by StartAsync: registry ids or aliases, or "provider/model" for a model the registry does not name.
    public List<string> WarmAtStart { get; set; } = [];
    // How many of the most requested local models each rebalance keeps loaded (0: no popularity prefetch).
    public int PopularCount { get; set; } = 2;
    // A model is popular from this decayed request count on: one stray request does not load a model.
    public double PopularMinScore { get; set; } = 2;
    // Request counts halve over this time, so popularity follows what is asked for now.
    public TimeSpan PopularityHalfLife { get; set; } = TimeSpan.FromMinutes(30);
    // How often the timer started by StartAsync re-evaluates popularity and the budget (zero or negative: never).
    public TimeSpan RebalanceInterval { get; set; } = TimeSpan.FromMinutes(1);
    // Bytes the loaded local models may take together; 0: unlimited.
    public long MemoryBudgetBytes { get; set; }
}
