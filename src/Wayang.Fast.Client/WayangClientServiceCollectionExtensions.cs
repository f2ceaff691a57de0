using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Wayang.Fast.Discovery;

namespace Wayang.Fast.Client;

public static class WayangClientServiceCollectionExtensions
{
    // Binds WayangClientOptions from configuration (e.g. configuration.GetSection("Wayang:Client")) and registers
    // a singleton WayangClient that connects on its first call; the container disposes it.
    // A "Discovery" subsection sets the client's Resolver (README "Service discovery"): "Discovery:Static"
    // (StaticServiceResolverOptions: Services name -> "host:port,..."), "Discovery:Consul"
    // (ConsulServiceResolverOptions; with both, the static list is Consul's fallback). The resolver is a singleton
    // the container disposes.
    public static IServiceCollection AddWayangClient(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        var options = services.AddOptions<WayangClientOptions>().Bind(configuration);
        var discovery = configuration.GetSection("Discovery");
        if (discovery.Exists())
        {
            services.TryAddSingleton(_ => CreateResolver(discovery));
            options.Configure<IServiceResolver>((o, resolver) => o.Resolver ??= resolver);
        }
        return AddCore(services);
    }

    // Fails at first use with the section named when neither resolver is configured or a static list is malformed.
    internal static IServiceResolver CreateResolver(IConfigurationSection discovery)
    {
        var staticSection = discovery.GetSection("Static");
        var consulSection = discovery.GetSection("Consul");
        StaticServiceResolver? fixedList = null;
        if (staticSection.Exists())
            fixedList = new StaticServiceResolver(staticSection.Get<StaticServiceResolverOptions>() ?? new StaticServiceResolverOptions());
        if (!consulSection.Exists())
        {
            return fixedList ?? throw new InvalidOperationException(
                $"Configuration section '{discovery.Path}' needs 'Static' or 'Consul' (see README \"Service discovery\").");
        }
        var consul = consulSection.Get<ConsulServiceResolverOptions>() ?? new ConsulServiceResolverOptions();
        consul.Fallback ??= fixedList;
        return new ConsulServiceResolver(consul);
    }

    public static IServiceCollection AddWayangClient(this IServiceCollection services, Action<WayangClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<WayangClientOptions>().Configure(configure);
        return AddCore(services);
    }

    private static IServiceCollection AddCore(IServiceCollection services)
    {
        services.TryAddSingleton(sp => new WayangClient(sp.GetRequiredService<IOptions<WayangClientOptions>>().Value));
        // The inference gateway through this client; AddWayangInference registers the in-process one instead.
        services.TryAddSingleton<Protocol.IInferenceClient>(sp => sp.GetRequiredService<WayangClient>());
        return services;
    }
}
