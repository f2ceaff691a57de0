using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Wayang.Fast.Host;

// Structured logs to stderr (stdout carries the few lines an operator or script reads: endpoint, bootstrap key).
internal static class HostLogging
{
    public static ILoggerFactory Create(string format, LogLevel? level, IConfiguration loggingSection) =>
        LoggerFactory.Create(builder =>
        {
            builder.SetMinimumLevel(LogLevel.Information);
            builder.AddConfiguration(loggingSection);
            if (level is { } flagLevel)
                builder.AddFilter((string?)null, flagLevel); // added last: the flag beats the file and the environment
            if (string.Equals(format, "json", StringComparison.OrdinalIgnoreCase))
            {
                builder.AddJsonConsole(o =>
                {
                    o.UseUtcTimestamp = true;
                    o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                    o.IncludeScopes = true;
                });
            }
            else
            {
                builder.AddSimpleConsole(o =>
                {
                    o.SingleLine = true;
                    o.UseUtcTimestamp = true;
                    o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                });
            }
            builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        });
}
