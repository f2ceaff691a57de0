using Wayang.Fast.Common.Errors;
using Wayang.Fast.Common.Runs;
using Wayang.Fast.Execution.Agents;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Engine;
using static Wayang.Fast.Execution.Tests.Workflows;

namespace Wayang.Fast.Execution.Tests;

public sealed class EngineAgentTests
{
    [Fact]
    public async Task AgentResultFeedsTheNextTask()
    {
        var gateway = new ScriptedGateway();
        gateway.Enqueue(ScriptedGateway.Ok("""{"summary":"short"}"""));
        await using var h = await EngineHarness.StartAsync(gateway: gateway);
        Assert.True(h.Engine.InferenceAvailable);
        var def = AgentFlow();
        def.Nodes[0].Config = Json("""{"temperature":0}""");
        await h.RegisterAsync(def);
        var executor = h.Connect();
        var run = await h.SubmitAsync("agentic", """{"text":"long"}""");

        var use = await executor.NextAsync("the task after the agent");
        Assert.Equal("use", use.NodeId);
        Assert.Equal("""{"ask":{"summary":"short"}}""", JsonText.Of(use.Upstream));
        var call = Assert.Single(gateway.Calls);
        Assert.Equal(new[] { EngineHarness.Tenant, run.RunId, "ask", "summarizer" }, new[] { call.TenantId, call.RunId, call.NodeId, call.Agent });
        Assert.Equal(1, call.Attempt);
        Assert.Equal("""{"text":"long"}""", JsonText.Of(call.Input));
        Assert.Equal("""{"temperature":0}""", JsonText.Of(call.Config));
        await h.SucceedAsync(executor, use);
        var done = await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        Assert.Equal("""{"summary":"short"}""", JsonText.Of(done.Nodes["ask"].Output));
    }

    [Fact]
    public async Task AgentFailureIsRetriedPerPolicy()
    {
        var gateway = new ScriptedGateway();
        gateway.Enqueue(ScriptedGateway.Fail());
        gateway.Enqueue(ScriptedGateway.Ok("""{"n":2}"""));
        await using var h = await EngineHarness.StartAsync(gateway: gateway);
        var def = AgentFlow();
        def.DefaultRetry = new RetryPolicy { MaxAttempts = 2, InitialDelayMs = 50, Jitter = 0 };
        await h.RegisterAsync(def);
        var executor = h.Connect();
        var run = await h.SubmitAsync("agentic");

        await h.WaitNodeAsync(run.RunId, "ask", NodeStatus.Retrying);
        h.AdvanceMs(50);
        var use = await executor.NextAsync("the task after the retried agent");
        Assert.Equal([1, 2], gateway.Calls.Select(c => c.Attempt));
        Assert.Equal("""{"ask":{"n":2}}""", JsonText.Of(use.Upstream));
        await h.SucceedAsync(executor, use);
        var done = await h.WaitStatusAsync(run.RunId, RunStatus.Completed);
        Assert.Equal("MODEL_ERROR", done.Nodes["ask"].Attempts[0].ErrorCode);
    }

    [Fact]
    public async Task AgentTimeoutFailsTheAttemptAndDeadLetters()
    {
        var hold = new TaskCompletionSource<AgentCallResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var gateway = new ScriptedGateway { Hold = hold };
        await using var h = await EngineHarness.StartAsync(gateway: gateway);
        var def = AgentFlow();
        def.Nodes[0].TimeoutMs = 1000;
        await h.RegisterAsync(def);
        var run = await h.SubmitAsync("agentic");
        await h.WaitNodeAsync(run.RunId, "ask", NodeStatus.Executing);

        h.AdvanceMs(1000);
        var failed = await h.WaitStatusAsync(run.RunId, RunStatus.Failed);
        Assert.Equal("TASK_TIMEOUT", failed.Nodes["ask"].ErrorCode);
        // The dead letter is recorded once the failure is durable, a moment after the run reads as failed.
        await h.WaitUntilAsync(() => h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()).Count > 0, "dead letter recorded");
        var dl = Assert.Single(h.Engine.ListDeadLetters(EngineHarness.Tenant, new DeadLetterFilter()));
        Assert.Equal("summarizer", dl.ExecutorType);
        // The call was cancelled; a late answer changes nothing.
        hold.TrySetResult(ScriptedGateway.Ok("{}"));
        Assert.Equal(RunStatus.Failed, (await h.GetRunAsync(run.RunId)).Status);
    }

    [Fact]
    public async Task AgentNodesAreRefusedWithoutAnInferencePlane()
    {
        await using var h = await EngineHarness.StartAsync();
        Assert.False(h.Engine.InferenceAvailable);
        await EngineHarness.ThrowsAsync(ErrorCode.AgentUnavailable, () => h.RegisterAsync(AgentFlow()));
        Assert.Empty(h.Engine.ListWorkflows(EngineHarness.Tenant));
    }
}
