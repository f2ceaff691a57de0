using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;

namespace Wayang.Fast.Execution.Runs;

// The explicit run transition table. Every status change of a run goes through Transition, so an illegal one
// (resuming a completed run, cancelling a cancelled one) is refused with RUN_STATE_CONFLICT and changes nothing.
public static class RunStateMachine
{
    private static readonly HashSet<(RunStatus From, RunStatus To)> Allowed =
    [
        (RunStatus.Created, RunStatus.Pending),
        (RunStatus.Created, RunStatus.Cancelled),
        (RunStatus.Pending, RunStatus.Running),
        (RunStatus.Pending, RunStatus.Suspended),
        (RunStatus.Pending, RunStatus.Cancelled),
        (RunStatus.Running, RunStatus.Suspended),
        (RunStatus.Running, RunStatus.Completed),
        (RunStatus.Running, RunStatus.Failed),
        (RunStatus.Running, RunStatus.Cancelled),
        (RunStatus.Suspended, RunStatus.Running),
        (RunStatus.Suspended, RunStatus.Cancelled),
        // Only a dead-letter replay reopens a failed run: the replayed node gets a new attempt.
        (RunStatus.Failed, RunStatus.Running),
    ];

    public static bool CanTransition(RunStatus from, RunStatus to) => Allowed.Contains((from, to));

    public static void Transition(RunState run, RunStatus to)
    {
        if (!Allowed.Contains((run.Status, to)))
            throw new WayangException(ErrorCode.RunStateConflict, $"Run '{run.RunId}' is {Name(run.Status)} and cannot become {Name(to)}.");
        run.Status = to;
    }

    public static string Name(RunStatus status) => status.ToString().ToUpperInvariant();

    public static IEnumerable<(RunStatus From, RunStatus To)> Table => Allowed;
}
