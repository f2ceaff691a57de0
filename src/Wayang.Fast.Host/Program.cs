using Wayang.Fast.Host;

return await WayangCli.RunAsync(args);
