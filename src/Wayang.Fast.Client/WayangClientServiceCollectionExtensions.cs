using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Wayang.Fast.Client;

public static class WayangClientServiceCollectionExtensions
{
    // Binds WayangClientOptions from configuration (e.g. configuration.GetSection("Wayang:Client")) and registers
    // a singleton WayangClient that connects on its first call; the container disposes it.
    public static IServiceCollection AddWayangClient(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<WayangClientOptions>().Bind(configuration);
        return AddCore(services);
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
        return services;
    }
}
