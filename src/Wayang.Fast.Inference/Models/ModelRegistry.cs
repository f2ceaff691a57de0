using System.Collections.Concurrent;

namespace Wayang.Fast.Inference.Models;

// A model the gateway knows: the id requests use, its aliases, the provider instance that serves it and under which
// name (RemoteName: an Ollama tag, an OpenAI model id, a GGUF file name for llama.cpp), and what routing and cost
// ceilings need (context length, prices).
public sealed class ModelEntry
{
    public string Id { get; set; } = "";
    public List<string> Aliases { get; set; } = [];
    public string Provider { get; set; } = "";
    // The provider-side name; null: Id.
    public string? RemoteName { get; set; }
    // "gguf" for local files, "api" for remote models, or what the provider reports.
    public string Format { get; set; } = "api";
    public int ContextLength { get; set; }
    // US dollars per million tokens.
    public double InputCostPerMillion { get; set; }
    public double OutputCostPerMillion { get; set; }
    // Local runtimes: the file (or directory) the model loads from.
    public string? LocalPath { get; set; }

    public string ProviderModel => RemoteName ?? Id;
}

// Ids and aliases share one namespace (case-insensitive); registering a model replaces the previous entry of that
// id and its aliases. Reads are lock-free (a request resolves its model on the hot path).
public sealed class ModelRegistry
{
    private readonly ConcurrentDictionary<string, ModelEntry> _byName = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, ModelEntry> _byId = new(StringComparer.OrdinalIgnoreCase);
    private readonly Lock _gate = new();

    public void Register(ModelEntry model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (string.IsNullOrWhiteSpace(model.Id) || string.IsNullOrWhiteSpace(model.Provider))
            throw new ArgumentException("A model needs an id and a provider.", nameof(model));
        lock (_gate)
        {
            if (_byId.TryGetValue(model.Id, out var previous))
            {
                foreach (var alias in previous.Aliases)
                    _byName.TryRemove(new KeyValuePair<string, ModelEntry>(alias, previous));
            }
            foreach (var name in model.Aliases.Append(model.Id))
            {
                if (_byName.TryGetValue(name, out var other) && !string.Equals(other.Id, model.Id, StringComparison.OrdinalIgnoreCase))
                    throw new ArgumentException($"'{name}' already names model '{other.Id}'.", nameof(model));
            }
            _byId[model.Id] = model;
            foreach (var name in model.Aliases.Append(model.Id))
                _byName[name] = model;
        }
    }

    public bool TryResolve(string idOrAlias, out ModelEntry model) => _byName.TryGetValue(idOrAlias, out model!);

    public IReadOnlyList<ModelEntry> All => [.. _byId.Values.OrderBy(m => m.Id, StringComparer.Ordinal)];
}
