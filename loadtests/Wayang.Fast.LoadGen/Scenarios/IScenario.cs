using Wayang.Fast.Protocol.Framing;

namespace Wayang.Fast.LoadGen.Scenarios;

// What a reply frame means for the request it answers.
public enum ReplyOutcome
{
    // More frames follow for this stream (a STREAM item); the request is still in flight.
    Continue,
    Ok,
    Failed,
}

// A load scenario, NBomber-style: one kind of request sent over and over. The engine owns sockets, pacing, stream ids
// and measurement; a scenario only says what bytes to send and how to judge the reply, so adding one (key-create,
// inference) is a small class plus a line in ScenarioCatalog.
//
// Request bodies are encoded ONCE: the engine pre-encodes one complete frame per (in-flight slot, body) pair and cycles
// through the bodies, so the send path is a memcpy and never serializes or allocates. A scenario that needs distinct
// requests (unique names, different prompts) returns several bodies; they are reused round-robin.
public interface IScenario
{
    string Name { get; }

    string Description { get; }

    Opcode Opcode { get; }

    IReadOnlyList<byte[]> CreateRequestBodies();

    // Runs once before the load starts, over its own authenticated connection (create a tenant, a model, ...).
    // Bounded by the caller's token.
    ValueTask SetupAsync(ScenarioSetupContext context, CancellationToken cancellationToken);

    // Called on the receive path for every RESPONSE/STREAM/END frame on a request's stream (ERROR frames are failures
    // and never reach here). Must not allocate or keep the frame: its body points into the pipe buffer.
    ReplyOutcome Classify(in Frame frame);
}
