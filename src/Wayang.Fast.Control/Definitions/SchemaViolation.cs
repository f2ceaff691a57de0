namespace Wayang.Fast.Control.Definitions;

// One reason a definition was refused. Pointer is an RFC 6901 JSON pointer into the client's document ("" is the
// whole document) that names the offending value itself: an unknown property's pointer ends with that property's
// name, a missing required property's pointer with the name it should have had.
public readonly record struct SchemaViolation(string Pointer, string Reason)
{
    public override string ToString() => $"{(Pointer.Length == 0 ? "(root)" : Pointer)}: {Reason}";
}

