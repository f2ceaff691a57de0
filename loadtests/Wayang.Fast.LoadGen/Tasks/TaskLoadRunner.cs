using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using HdrHistogram;
using MessagePack;
using Wayang.Fast.LoadGen.Engine;
using Wayang.Fast.LoadGen.Reporting;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.LoadGen.Tasks;

// Scenario "tasks": the execution plane end to end. Submitter connections send RunSubmit for a one-node workflow;
// executor connections (run by this process, over loopback like any executor) register, take each TASK, and answer
// with a TaskResult at once. Every run's input carries its submit timestamp, so the same clock measures
// submit -> ack (the run is durable), submit -> dispatch (the TASK frame reached an executor) and
// submit -> complete (the result's ack: the run is COMPLETED and durable).
internal static class TaskLoadRunner
{
    public const string WorkflowId = "loadgen-one";
    public const string ExecutorType = "loadgen";

    public static async Task<int> RunAsync(LoadOptions options, IPEndPoint endPoint, string apiKey, TextWriter log, CancellationToken cancellationToken)
    {
        using var connectCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        connectCts.CancelAfter(options.ConnectTimeout);
        await RegisterWorkflowAsync(endPoint, apiKey, connectCts.Token);
        var window = Window.StartingNow(options);

        // Closed model: a submitter's slot is free again when its run completes (the executor that completed it hands
        // the slot back), so `pipeline` bounds runs in flight end to end, not only submissions awaiting their ack.
        var submitters = new List<LoadSubmitter>();
        var executors = await ConnectExecutorsAsync(options, endPoint, apiKey, window, trackTenant: null, connectCts.Token,
            onRunCompleted: submitter => submitters[submitter].RunCompleted());
        double perConnectionRate = options.Model == LoadModel.Open ? options.Rate / options.Connections : 0;
        for (int i = 0; i < options.Connections; i++)
        {
            var connection = await LoadConnection.ConnectAsync(endPoint, apiKey, "loadgen-submitter", connectCts.Token);
            submitters.Add(new LoadSubmitter(connection, window, options.Pipeline, perConnectionRate, options.MaxInFlight, index: i, untilComplete: true));
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var executorTasks = executors.Select(e => e.RunAsync(stop.Token)).ToArray();
        var submitterTasks = submitters.Select(s => s.RunAsync(stop.Token)).ToArray();
        log.WriteLine($"tasks: {options.Connections} submitter connection(s) ({(options.Model == LoadModel.Open ? $"open, {options.Rate:0} runs/s" : $"closed, {options.Pipeline} runs in flight each")}), {options.Executors} executor(s) x {options.Slots} slots, warmup {options.Warmup.TotalSeconds:0.#} s, measured {options.Duration.TotalSeconds:0.#} s");

        // Submitters stop on their own at the end of the window; then executors get the drain time to finish.
        await Task.WhenAll(submitterTasks).WaitAsync(options.Warmup + options.Duration + options.DrainTimeout + TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        long submitted = submitters.Sum(s => s.MeasuredAcked);
        await DrainAsync(() => executors.Sum(e => e.MeasuredCompleted) >= submitted, options.DrainTimeout, cancellationToken).ConfigureAwait(false);
        stop.Cancel();
        await Task.WhenAll(executorTasks.Select(t => t.ContinueWith(static _ => { }, TaskScheduler.Default))).ConfigureAwait(false);

        var ack = Merge(submitters.Select(s => s.AckLatency));
        var dispatch = Merge(executors.Select(e => e.DispatchLatency));
        var complete = Merge(executors.Select(e => e.CompleteLatency));
        long completedInWindow = executors.Sum(e => e.CompletedInWindow);
        long failed = submitters.Sum(s => s.Failed) + executors.Sum(e => e.Failed);
        long queueFull = submitters.Sum(s => s.QueueFull);
        double seconds = options.Duration.TotalSeconds;

        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"scenario tasks ({options.Label ?? "unlabelled"}): one-node workflow, submit -> dispatch -> result -> run complete");
        text.AppendLine(CultureInfo.InvariantCulture, $"  completed tasks/s (completions inside the window): {completedInWindow / seconds:0}");
        text.AppendLine(CultureInfo.InvariantCulture, $"  submissions acked in window: {submitted}, completed of those: {executors.Sum(e => e.MeasuredCompleted)}, failed: {failed}, QUEUE_FULL: {queueFull}");
        text.AppendLine(Line("submit -> ack", ack));
        text.AppendLine(Line("submit -> dispatch", dispatch));
        text.AppendLine(Line("submit -> complete", complete));
        Console.Write(text.ToString());

        if (options.JsonOut is not null)
        {
            using var stream = File.Create(options.JsonOut);
            using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
            json.WriteStartObject();
            json.WriteString("scenario", "tasks");
            json.WriteString("label", options.Label);
            json.WriteString("model", options.Model == LoadModel.Open ? "open" : "closed");
            json.WriteNumber("connections", options.Connections);
            json.WriteNumber("pipeline", options.Pipeline);
            json.WriteNumber("rate", options.Rate);
            json.WriteNumber("executors", options.Executors);
            json.WriteNumber("slots", options.Slots);
            json.WriteNumber("durationSeconds", seconds);
            json.WriteNumber("tasksPerSecond", completedInWindow / seconds);
            json.WriteNumber("failed", failed);
            json.WriteNumber("queueFull", queueFull);
            WriteSummary(json, "submitToAck", ack);
            WriteSummary(json, "submitToDispatch", dispatch);
            WriteSummary(json, "submitToComplete", complete);
            json.WriteEndObject();
        }
        return failed == 0 ? 0 : 2;
    }

    // Registers the one-node load workflow in the key's tenant (a new version each time).
    internal static async Task RegisterWorkflowAsync(IPEndPoint endPoint, string apiKey, CancellationToken cancellationToken)
    {
        await using var setup = await LoadConnection.ConnectAsync(endPoint, apiKey, "loadgen-setup", cancellationToken);
        var definition = Encoding.UTF8.GetBytes($$"""{"id":"{{WorkflowId}}","nodes":[{"id":"work","type":"TASK","executorType":"{{ExecutorType}}"}]}""");
        var body = MessagePackSerializer.Serialize(new WorkflowRegisterRequest { DefinitionJson = definition }, WireOptions.Trusted);
        var (type, reply) = await setup.CallAsync(Opcode.WorkflowRegister, body, cancellationToken);
        if (type != FrameType.Response)
            throw new InvalidOperationException("registering the load workflow failed: " + LoadConnection.DescribeError(reply));
    }

    // --executors connections, each registering one executor of --slots slots (with the key's tenant; shared when
    // that is the system tenant).
    internal static async Task<List<LoadExecutor>> ConnectExecutorsAsync(LoadOptions options, IPEndPoint endPoint, string apiKey, Window window,
        string? trackTenant, CancellationToken cancellationToken, Action<int>? onRunCompleted = null)
    {
        var executors = new List<LoadExecutor>();
        for (int i = 0; i < options.Executors; i++)
        {
            var connection = await LoadConnection.ConnectAsync(endPoint, apiKey, "loadgen-executor", cancellationToken);
            executors.Add(new LoadExecutor(connection, $"loadgen-{Environment.ProcessId}-{i}", options.Slots, window, trackTenant, onRunCompleted));
        }
        return executors;
    }

    // Polls until done() or the drain time is up (after the window, the executors finish what was acknowledged in it).
    internal static async Task DrainAsync(Func<bool> done, TimeSpan drainTimeout, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(drainTimeout.TotalSeconds * Stopwatch.Frequency);
        while (!done() && Stopwatch.GetTimestamp() < deadline)
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
    }

    internal static LongHistogram Merge(IEnumerable<LongHistogram> histograms)
    {
        var merged = new LongHistogram(WorkerStats.HighestTicks, 3);
        foreach (var h in histograms)
            merged.Add(h);
        return merged;
    }

    internal static string Line(string name, LongHistogram h)
    {
        var s = LatencySummary.From(h);
        return string.Create(CultureInfo.InvariantCulture, $"  {name,-20} n={s.Count,-9} p50 {s.P50Ms:0.000} ms  p99 {s.P99Ms:0.000} ms  p99.9 {s.P999Ms:0.000} ms  max {s.MaxMs:0.000} ms");
    }

    internal static void WriteSummary(Utf8JsonWriter json, string name, LongHistogram h)
    {
        var s = LatencySummary.From(h);
        json.WriteStartObject(name);
        json.WriteNumber("count", s.Count);
        json.WriteNumber("p50Ms", s.P50Ms);
        json.WriteNumber("p99Ms", s.P99Ms);
        json.WriteNumber("p999Ms", s.P999Ms);
        json.WriteNumber("maxMs", s.MaxMs);
        json.WriteEndObject();
    }

    internal static void Record(LongHistogram histogram, long elapsedTimestamps)
    {
        long ticks = (long)(elapsedTimestamps * ((double)TimeSpan.TicksPerSecond / Stopwatch.Frequency));
        histogram.RecordValue(Math.Clamp(ticks, 0, WorkerStats.HighestTicks));
    }

    // Input JSON {"t":<Stopwatch timestamp at submit>,"s":<submitter index>}.
    internal static byte[] InputFor(long timestamp, int submitter = -1)
    {
        var bytes = new byte[48];
        "{\"t\":"u8.CopyTo(bytes);
        System.Buffers.Text.Utf8Formatter.TryFormat(timestamp, bytes.AsSpan(5), out int written);
        int at = 5 + written;
        ",\"s\":"u8.CopyTo(bytes.AsSpan(at));
        at += 5;
        System.Buffers.Text.Utf8Formatter.TryFormat(submitter, bytes.AsSpan(at), out written);
        at += written;
        bytes[at] = (byte)'}';
        return bytes.AsSpan(0, at + 1).ToArray();
    }

    internal static long TimestampOf(byte[] inputJson) => ReadInput(inputJson).Timestamp;

    internal static (long Timestamp, int Submitter) ReadInput(byte[] inputJson)
    {
        long timestamp = 0;
        int submitter = -1;
        var reader = new Utf8JsonReader(inputJson);
        while (reader.Read())
        {
            if (reader.TokenType != JsonTokenType.PropertyName)
                continue;
            if (reader.ValueTextEquals("t"u8) && reader.Read())
                timestamp = reader.GetInt64();
            else if (reader.ValueTextEquals("s"u8) && reader.Read())
                submitter = reader.GetInt32();
        }
        return (timestamp, submitter);
    }
}

internal sealed record Window(long MeasureStart, long MeasureEnd)
{
    // Warmup from now, then the measured duration.
    public static Window StartingNow(LoadOptions options)
    {
        long start = Stopwatch.GetTimestamp();
        return new Window(
            start + (long)(options.Warmup.TotalSeconds * Stopwatch.Frequency),
            start + (long)((options.Warmup + options.Duration).TotalSeconds * Stopwatch.Frequency));
    }

    public bool Contains(long timestamp) => timestamp >= MeasureStart && timestamp < MeasureEnd;
}

// One executor connection: registers Slots, answers every TASK with a success result at once, and returns one credit
// per acknowledged result (a freed slot). Reading and writing happen on this one loop. trackTenant: tasks of that
// tenant also go into TrackedDispatchLatency (the fairness scenario's quiet tenant). onRunCompleted: told the
// submitter index (from the run's input) once a result is answered, so a closed-model submitter gets its slot back.
internal sealed class LoadExecutor(LoadConnection connection, string executorId, int slots, Window window, string? trackTenant = null,
    Action<int>? onRunCompleted = null)
{
    private const uint RegisterStream = 1;
    private readonly Dictionary<uint, (long SubmittedAt, int Submitter)> _pending = [];
    private readonly ArrayBufferWriter<byte> _scratch = new(512);
    private uint _nextStream = RegisterStream;

    public LongHistogram DispatchLatency { get; } = new(WorkerStats.HighestTicks, 3);
    public LongHistogram TrackedDispatchLatency { get; } = new(WorkerStats.HighestTicks, 3);
    public LongHistogram CompleteLatency { get; } = new(WorkerStats.HighestTicks, 3);
    public long MeasuredCompleted;
    public long CompletedInWindow;
    public long Failed;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        await using var owned = connection;
        var register = new ExecutorRegisterRequest { ExecutorId = executorId, ExecutorTypes = [TaskLoadRunner.ExecutorType], Slots = slots };
        FrameWriter.WriteMessage(connection.Output, _scratch, FrameType.Request, Opcode.ExecutorRegister, RegisterStream, register, WireOptions.Trusted);
        await connection.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
        var input = connection.Input;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
                var buffer = result.Buffer;
                uint credits = 0;
                try
                {
                    while (FrameReader.TryReadFrame(ref buffer, connection.MaxBody, out var frame, out _) == FrameReadStatus.Complete)
                        credits += Handle(in frame);
                }
                finally
                {
                    input.AdvanceTo(buffer.Start, buffer.End);
                }
                if (credits > 0)
                    FrameWriter.WriteMessage(connection.Output, _scratch, FrameType.Credit, Opcode.None, RegisterStream, new CreditBody { Credits = credits }, WireOptions.Trusted);
                await connection.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
                if (result.IsCompleted)
                    return;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private uint Handle(in Frame frame)
    {
        long now = Stopwatch.GetTimestamp();
        var header = frame.Header;
        if (header.Type == FrameType.Stream && header.Opcode == Opcode.ExecutorRegister)
        {
            var task = MessagePackSerializer.Deserialize<TaskAssignmentDto>(frame.Body, WireOptions.Untrusted);
            var (submittedAt, submitter) = TaskLoadRunner.ReadInput(task.InputJson);
            if (window.Contains(submittedAt))
            {
                TaskLoadRunner.Record(DispatchLatency, now - submittedAt);
                if (trackTenant is not null && string.Equals(task.TenantId, trackTenant, StringComparison.Ordinal))
                    TaskLoadRunner.Record(TrackedDispatchLatency, now - submittedAt);
            }
            uint stream = NextStream();
            _pending[stream] = (submittedAt, submitter);
            FrameWriter.WriteMessage(connection.Output, _scratch, FrameType.Request, Opcode.TaskResult, stream, new TaskResultRequest { Token = task.Token, Success = true }, WireOptions.Trusted);
            return 0;
        }
        if (header.Opcode == Opcode.TaskResult && _pending.Remove(header.StreamId, out var pending))
        {
            long submitted = pending.SubmittedAt;
            if (pending.Submitter >= 0)
                onRunCompleted?.Invoke(pending.Submitter);
            if (header.Type == FrameType.Response)
            {
                if (window.Contains(submitted))
                {
                    TaskLoadRunner.Record(CompleteLatency, now - submitted);
                    MeasuredCompleted++;
                }
                if (window.Contains(now))
                    CompletedInWindow++;
            }
            else
            {
                Failed++;
            }
            return 1;
        }
        if (header.Type == FrameType.Error)
            throw new InvalidOperationException($"executor {executorId}: stream {header.StreamId} failed: {LoadConnection.DescribeError(frame.Body.ToArray())}");
        return 0;
    }

    private uint NextStream()
    {
        do
        {
            _nextStream = _nextStream == uint.MaxValue ? RegisterStream + 1 : _nextStream + 1;
        }
        while (_pending.ContainsKey(_nextStream));
        return _nextStream;
    }
}

// One submitter connection. Closed model: keeps `pipeline` RunSubmit requests in flight until the window ends; with
// untilComplete, `pipeline` runs in flight end to end instead (a slot returns through RunCompleted when an executor
// has completed the run, or with a refusal), so the server's queue stays short and no refusal storm is measured.
// Open model: sends at its share of the rate (catching up in bursts when the timer is late), up to maxInFlight.
// index: written into each run's input, for the executor to say whose run completed.
internal sealed class LoadSubmitter(LoadConnection connection, Window window, int pipeline, double rate, int maxInFlight,
    int index = -1, bool untilComplete = false)
{
    private readonly Dictionary<uint, long> _sent = [];
    private readonly SemaphoreSlim _slots = new(untilComplete ? pipeline : 0);
    // Only the ack-bounded closed model sends from the read loop; the others send from RunAsync alone.
    private readonly bool _sendOnReply = rate <= 0 && !untilComplete;
    private readonly ArrayBufferWriter<byte> _scratch = new(256);
    private readonly Lock _writeLock = new();
    private uint _nextStream;
    private long _issued;

    public LongHistogram AckLatency { get; } = new(WorkerStats.HighestTicks, 3);
    public long MeasuredAcked;
    public long Failed;
    public long QueueFull;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        await using var owned = connection;
        var reader = ReadLoopAsync(cancellationToken);
        if (rate > 0)
        {
            long start = Stopwatch.GetTimestamp();
            while (Stopwatch.GetTimestamp() < window.MeasureEnd && !cancellationToken.IsCancellationRequested)
            {
                long due = (long)((Stopwatch.GetTimestamp() - start) * rate / Stopwatch.Frequency);
                lock (_writeLock)
                {
                    while (_issued < due && _sent.Count < maxInFlight)
                        Send();
                }
                await connection.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
                await Task.Delay(1, cancellationToken).ConfigureAwait(false);
            }
            await ReleaseReaderAsync(cancellationToken).ConfigureAwait(false);
        }
        else if (untilComplete)
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                long left = window.MeasureEnd - Stopwatch.GetTimestamp();
                if (left <= 0 || !await _slots.WaitAsync(TimeSpan.FromSeconds((double)left / Stopwatch.Frequency), cancellationToken).ConfigureAwait(false))
                    break;
                lock (_writeLock)
                {
                    Send();
                    while (_slots.Wait(0))
                        Send();
                }
                await connection.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            await ReleaseReaderAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            lock (_writeLock)
            {
                for (int i = 0; i < pipeline; i++)
                    Send();
            }
            await connection.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        await reader.ConfigureAwait(false);
    }

    // The last replies may all be in before the window ends, leaving the read loop parked on a read that no reply
    // will complete: wait for them here, then release it.
    private async Task ReleaseReaderAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested && InFlight() > 0)
            await Task.Delay(5, cancellationToken).ConfigureAwait(false);
        connection.Input.CancelPendingRead();
    }

    public void RunCompleted() => _slots.Release();

    private async Task ReadLoopAsync(CancellationToken cancellationToken)
    {
        var input = connection.Input;
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            bool more = true;
            lock (_writeLock)
            {
                try
                {
                    while (FrameReader.TryReadFrame(ref buffer, connection.MaxBody, out var frame, out _) == FrameReadStatus.Complete)
                        Handle(in frame);
                }
                finally
                {
                    input.AdvanceTo(buffer.Start, buffer.End);
                }
                if (_sendOnReply && Stopwatch.GetTimestamp() < window.MeasureEnd)
                {
                    while (_sent.Count < pipeline)
                        Send();
                }
                more = _sent.Count > 0 || (_sendOnReply && Stopwatch.GetTimestamp() < window.MeasureEnd);
            }
            // Otherwise only the send loop writes and flushes (a PipeWriter takes one flush at a time).
            if (_sendOnReply)
                await connection.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
            // Where RunAsync sends, it ends this loop (ReleaseReaderAsync) once every reply is in: deciding here could
            // race with its last send.
            if (result.IsCompleted || result.IsCanceled || (_sendOnReply && !more && Stopwatch.GetTimestamp() >= window.MeasureEnd))
                return;
        }
    }

    private int InFlight()
    {
        lock (_writeLock)
            return _sent.Count;
    }

    private void Handle(in Frame frame)
    {
        long now = Stopwatch.GetTimestamp();
        if (!_sent.Remove(frame.Header.StreamId, out long sentAt))
            return;
        if (frame.Header.Type == FrameType.Response)
        {
            if (window.Contains(sentAt))
            {
                TaskLoadRunner.Record(AckLatency, now - sentAt);
                MeasuredAcked++;
            }
        }
        else
        {
            if (LoadConnection.ReadErrorCode(frame.Body) == (int)Common.Errors.ErrorCode.QueueFull)
                QueueFull++;
            else
                Failed++;
            // No run: its slot is free again.
            if (untilComplete)
                _slots.Release();
        }
    }

    private void Send()
    {
        long now = Stopwatch.GetTimestamp();
        uint stream = ++_nextStream;
        _sent[stream] = now;
        _issued++;
        var request = new RunSubmitRequest { WorkflowId = TaskLoadRunner.WorkflowId, InputJson = TaskLoadRunner.InputFor(now, index) };
        FrameWriter.WriteMessage(connection.Output, _scratch, FrameType.Request, Opcode.RunSubmit, stream, request, WireOptions.Trusted);
    }
}
