using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Runs;

namespace Wayang.Fast.Execution.Tests;

public class RunStateMachineTests
{
    // The whole table, written out: a change to the allowed transitions is a reviewed change here.
    public static TheoryData<RunStatus, RunStatus> AllowedTransitions => new()
    {
        { RunStatus.Created, RunStatus.Pending },
        { RunStatus.Created, RunStatus.Cancelled },
        { RunStatus.Pending, RunStatus.Running },
        { RunStatus.Pending, RunStatus.Suspended },
        { RunStatus.Pending, RunStatus.Cancelled },
        { RunStatus.Running, RunStatus.Suspended },
        { RunStatus.Running, RunStatus.Completed },
        { RunStatus.Running, RunStatus.Failed },
        { RunStatus.Running, RunStatus.Cancelled },
        { RunStatus.Suspended, RunStatus.Running },
        { RunStatus.Suspended, RunStatus.Cancelled },
        { RunStatus.Failed, RunStatus.Running },
    };

    public static TheoryData<RunStatus, RunStatus> IllegalSamples => new()
    {
        { RunStatus.Completed, RunStatus.Running },
        { RunStatus.Completed, RunStatus.Cancelled },
        { RunStatus.Cancelled, RunStatus.Cancelled },
        { RunStatus.Cancelled, RunStatus.Running },
        { RunStatus.Running, RunStatus.Running },
        { RunStatus.Running, RunStatus.Created },
        { RunStatus.Running, RunStatus.Pending },
        { RunStatus.Suspended, RunStatus.Completed },
        { RunStatus.Suspended, RunStatus.Suspended },
        { RunStatus.Created, RunStatus.Running },
        { RunStatus.Created, RunStatus.Completed },
        { RunStatus.Failed, RunStatus.Completed },
        { RunStatus.Failed, RunStatus.Cancelled },
        { RunStatus.Unspecified, RunStatus.Created },
        { RunStatus.Pending, RunStatus.Completed },
    };

    [Theory]
    [MemberData(nameof(AllowedTransitions))]
    public void Allowed_transitions_change_the_status(RunStatus from, RunStatus to)
    {
        Assert.True(RunStateMachine.CanTransition(from, to));
        var run = new RunState { RunId = "r", Status = from };
        RunStateMachine.Transition(run, to);
        Assert.Equal(to, run.Status);
    }

    [Theory]
    [MemberData(nameof(IllegalSamples))]
    public void Illegal_transitions_are_a_state_conflict_and_change_nothing(RunStatus from, RunStatus to)
    {
        Assert.False(RunStateMachine.CanTransition(from, to));
        var run = new RunState { RunId = "run-9", Status = from };
        var ex = Assert.Throws<WayangException>(() => RunStateMachine.Transition(run, to));
        Assert.Equal(ErrorCode.RunStateConflict, ex.Code);
        Assert.Contains("run-9", ex.Message, StringComparison.Ordinal);
        Assert.Contains(RunStateMachine.Name(from), ex.Error.Message, StringComparison.Ordinal);
        Assert.Equal(from, run.Status);
    }

    [Fact]
    public void The_table_is_exactly_the_allowed_list()
    {
        var expected = AllowedTransitions.Select(row => ((RunStatus)row[0], (RunStatus)row[1])).ToHashSet();
        Assert.Equal(expected.Count, RunStateMachine.Table.Count());
        Assert.All(RunStateMachine.Table, t => Assert.Contains(t, expected));
        foreach (var from in Enum.GetValues<RunStatus>())
        {
            foreach (var to in Enum.GetValues<RunStatus>())
                Assert.Equal(expected.Contains((from, to)), RunStateMachine.CanTransition(from, to));
        }
    }

    [Fact]
    public void Terminal_statuses_are_completed_failed_and_cancelled()
    {
        foreach (var status in Enum.GetValues<RunStatus>())
            Assert.Equal(status is RunStatus.Completed or RunStatus.Failed or RunStatus.Cancelled, new RunState { Status = status }.IsTerminal);
    }

    [Fact]
    public void Names_are_upper_case() => Assert.Equal("SUSPENDED", RunStateMachine.Name(RunStatus.Suspended));
}
