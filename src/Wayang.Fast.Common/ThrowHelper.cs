using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Wayang.Fast.Common.Errors;

namespace Wayang.Fast.Common;

// Throw sites live out of line so the hot methods that call them stay small and inlinable.
public static class ThrowHelper
{
    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowWayang(ErrorCode code, string? message = null) => throw new WayangException(code, message);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static T ThrowWayang<T>(ErrorCode code, string? message = null) => throw new WayangException(code, message);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowArgument(string paramName, string message) => throw new ArgumentException(message, paramName);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowInvalidOperation(string message) => throw new InvalidOperationException(message);
}
