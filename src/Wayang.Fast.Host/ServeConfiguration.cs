using Microsoft.Extensions.Configuration;
using Wayang.Fast.Server;

namespace Wayang.Fast.Host;

// `wayang serve` configuration, lowest to highest precedence:
//   1. WayangServerOptions defaults
//   2. the JSON file: --config <path>, else ./appsettings.json when it exists (section "Wayang:Server")
//   3. environment variables WAYANG_<Section>__<Key>, e.g. WAYANG_Server__Port=7500 -> Wayang:Server:Port
//      (WAYANG_Logging__LogLevel__Default maps to the top-level Logging section)
//   4. command-line flags (--data-dir, --listen, --port, --http-port, --durability)
internal static class ServeConfiguration
{
    public const string EnvironmentPrefix = "WAYANG_";
    public const string DefaultFileName = "appsettings.json";

    public static IConfigurationRoot Build(
        string? configPath,
        IEnumerable<KeyValuePair<string, string?>> environment,
        IReadOnlyDictionary<string, string?> flags,
        string? workingDirectory = null)
    {
        var builder = new ConfigurationBuilder();
        if (configPath is not null)
        {
            var full = Path.GetFullPath(configPath, workingDirectory ?? Directory.GetCurrentDirectory());
            if (!File.Exists(full))
                throw new UsageException($"The configuration file '{full}' does not exist.");
            builder.AddJsonFile(full, optional: false, reloadOnChange: false);
        }
        else
        {
            var local = Path.Combine(workingDirectory ?? Directory.GetCurrentDirectory(), DefaultFileName);
            if (File.Exists(local))
                builder.AddJsonFile(local, optional: true, reloadOnChange: false);
        }
        builder.AddInMemoryCollection(MapEnvironment(environment));
        builder.AddInMemoryCollection(flags);
        return builder.Build();
    }

    public static IEnumerable<KeyValuePair<string, string?>> MapEnvironment(IEnumerable<KeyValuePair<string, string?>> environment)
    {
        foreach (var (name, value) in environment)
        {
            if (!name.StartsWith(EnvironmentPrefix, StringComparison.OrdinalIgnoreCase) || !name.Contains("__", StringComparison.Ordinal))
                continue;
            var path = name[EnvironmentPrefix.Length..].Replace("__", ConfigurationPath.KeyDelimiter, StringComparison.Ordinal);
            yield return path.StartsWith("Logging:", StringComparison.OrdinalIgnoreCase)
                ? new(path, value)
                : new("Wayang:" + path, value);
        }
    }

    public static WayangServerOptions BindServerOptions(IConfiguration configuration) =>
        BindSection<WayangServerOptions>(configuration.GetSection(WayangServerOptions.SectionName), "server");

    // Section "Wayang:Inference": Providers (ProviderConfig: Name, Kind, BaseAddress, ApiKey, ...), Models (ModelEntry)
    // and Gateway (InferenceGatewayOptions: timeouts, circuit breaker). No providers: no inference plane.
    public static void BindInference(IConfiguration configuration, WayangServerOptions options, string? workingDirectory = null)
    {
        var section = configuration.GetSection("Wayang:Inference");
        var providers = BindSection<List<Wayang.Fast.Inference.Providers.ProviderConfig>>(section.GetSection("Providers"), "inference provider");
        var created = new List<Wayang.Fast.Inference.Providers.IInferenceProvider>();
        try
        {
            foreach (var p in providers)
            {
                if (p.ModelsDirectory is not null)
                    p.ModelsDirectory = Path.GetFullPath(p.ModelsDirectory, workingDirectory ?? Directory.GetCurrentDirectory());
                created.Add(Wayang.Fast.Inference.Providers.ProviderFactory.Create(p));
            }
        }
        catch (ArgumentException e)
        {
            foreach (var p in created.OfType<IDisposable>())
                p.Dispose();
            throw new UsageException("Invalid inference configuration: " + e.Message);
        }
        options.InferenceProviders = created;
        options.InferenceModels = BindSection<List<Wayang.Fast.Inference.Models.ModelEntry>>(section.GetSection("Models"), "inference model");
        options.InferenceGateway = BindSection<Wayang.Fast.Inference.Gateway.InferenceGatewayOptions>(section.GetSection("Gateway"), "inference gateway");
        options.InferenceWarming = BindSection<Wayang.Fast.Inference.Models.ModelWarmerOptions>(section.GetSection("Warming"), "inference warming");
    }

    // A value the binder cannot convert is the operator's input: a usage error naming what was being configured.
    public static T BindSection<T>(IConfigurationSection section, string what) where T : new()
    {
        var options = new T();
        try
        {
            section.Bind(options);
        }
        catch (InvalidOperationException e)
        {
            throw new UsageException($"Invalid {what} configuration: " + (e.InnerException?.Message ?? e.Message));
        }
        return options;
    }

    public static IEnumerable<KeyValuePair<string, string?>> ProcessEnvironment()
    {
        foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
            yield return new((string)entry.Key, (string?)entry.Value);
    }
}

internal sealed class UsageException(string message) : Exception(message);
