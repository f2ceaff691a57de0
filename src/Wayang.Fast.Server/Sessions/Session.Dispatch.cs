using System.Buffers;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Tenancy;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Sessions;

// The opcode dispatcher: frames in, domain calls, frames out. Permission was checked (Authorization.Check)
// before we get here; tenant scoping for tenant admins is checked here, before any plane sees the request.
// The planes never see MessagePack: this file owns the DTO mapping.
internal sealed partial class Session
{
    private void Dispatch(in Frame frame, uint streamId, Opcode opcode, long start)
    {
        switch (opcode)
        {
            case Opcode.Ping:
                // The benchmarked request path: no decode, no allocation, reply written unflushed.
                _writer.WriteReply(FrameType.Response, Opcode.Ping, streamId, default, start);
                return;

            case Opcode.Tick:
            {
                if (!TryDecode(frame.Body, out TickRequest? tick))
                {
                    _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                    return;
                }
                if (tick.Count is < 0 or > Limits.MaxTickCount || tick.IntervalMs is < 0 or > Limits.MaxTickIntervalMs)
                {
                    _writer.WriteError(streamId, opcode, new WayangError(ErrorCode.InvalidArgument, $"Tick needs 0 <= Count <= {Limits.MaxTickCount} and 0 <= IntervalMs <= {Limits.MaxTickIntervalMs}."), start);
                    return;
                }
                var request = Register(streamId, opcode, start, stream: true);
                _ = RunTickAsync(request, tick.Count, tick.IntervalMs);
                return;
            }

            case Opcode.TenantCreate:
            {
                if (!TryDecode(frame.Body, out TenantCreateRequest? create))
                {
                    _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                    return;
                }
                StartAudited(streamId, opcode, start, create, $"tenant:{create.TenantId}", create.TenantId ?? "", static async (s, req, ct) =>
                    ToDto(await s._server.Tenants.CreateTenantAsync(req.TenantId ?? "", req.DisplayName ?? "", ct).ConfigureAwait(false)));
                return;
            }

            case Opcode.TenantList:
            {
                var tenants = _server.Tenants.ListTenants();
                var dtos = new TenantInfoDto[tenants.Count];
                for (int i = 0; i < dtos.Length; i++)
                    dtos[i] = ToDto(tenants[i]);
                _writer.WriteMessage(FrameType.Response, opcode, streamId, new TenantListResponse { Tenants = dtos }, start);
                return;
            }

            case Opcode.KeyCreate:
            {
                if (!TryDecode(frame.Body, out KeyCreateRequest? create))
                {
                    _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                    return;
                }
                var principal = _principal!;
                if (string.IsNullOrEmpty(create.TenantId))
                    create.TenantId = principal.TenantId;
                if (!principal.CanActIn(create.TenantId))
                {
                    DenyForeignTenant(streamId, opcode, start, create.TenantId);
                    return;
                }
                StartAudited(streamId, opcode, start, create, $"key:{create.TenantId}/{create.Name}", create.TenantId, static async (s, req, ct) =>
                {
                    var created = await s._server.Tenants.CreateKeyAsync(req.TenantId, req.Name ?? "", req.Roles ?? [], ct).ConfigureAwait(false);
                    return new KeyCreateResponse { Secret = created.Secret, Key = ToDto(created.Info) };
                });
                return;
            }

            case Opcode.KeyList:
            {
                if (!TryDecode(frame.Body, out KeyListRequest? list, allowEmpty: true))
                {
                    _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                    return;
                }
                if (!TryScopeTenant(list.TenantId, streamId, opcode, start, out var tenantId))
                    return;
                var keys = _server.Tenants.ListKeys(tenantId);
                var dtos = new ApiKeyInfoDto[keys.Count];
                for (int i = 0; i < dtos.Length; i++)
                    dtos[i] = ToDto(keys[i]);
                _writer.WriteMessage(FrameType.Response, opcode, streamId, new KeyListResponse { Keys = dtos }, start);
                return;
            }

            case Opcode.KeyRevoke:
            {
                if (!TryDecode(frame.Body, out KeyRevokeRequest? revoke))
                {
                    _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                    return;
                }
                // A key of another tenant answers exactly like a missing one: ids do not leak across tenants.
                if (string.IsNullOrEmpty(revoke.KeyId)
                    || !_server.Tenants.TryGetKey(revoke.KeyId, out var info)
                    || !_principal!.CanActIn(info.TenantId))
                {
                    _writer.WriteError(streamId, opcode, ErrorCode.KeyNotFound, start);
                    return;
                }
                StartAudited(streamId, opcode, start, revoke, $"key:{info.TenantId}/{revoke.KeyId}", info.TenantId, static async (s, req, ct) =>
                {
                    var revoked = await s._server.Tenants.RevokeKeyAsync(req.KeyId, ct).ConfigureAwait(false);
                    // A revoked key stops working now, not at its next connect: its open connections get KEY_REVOKED.
                    // The caller's own connection (revoking its own key) is closed only after this reply is out.
                    s._server.CloseSessionsOfKey(req.KeyId, except: s);
                    if (s.KeyId == req.KeyId)
                        s._closeAfterReply = ErrorCode.KeyRevoked;
                    return ToDto(revoked);
                });
                return;
            }

            case >= Opcode.RoleList and <= Opcode.BindingRevoke:
                DispatchRbac(in frame, streamId, opcode, start);
                return;

            case >= Opcode.AuditQuery and <= Opcode.AuditHead:
                DispatchAudit(in frame, streamId, opcode, start);
                return;

            case >= Opcode.DefinitionValidate and <= Opcode.DefinitionGet:
                DispatchDefinitions(in frame, streamId, opcode, start);
                return;

            case >= Opcode.SecretPut and <= Opcode.MasterKeyRotate:
                DispatchSecrets(in frame, streamId, opcode, start);
                return;

            case >= Opcode.PluginUpload and <= Opcode.PluginPolicySet:
                DispatchPlugins(in frame, streamId, opcode, start);
                return;

            case >= Opcode.WorkflowRegister and <= (Opcode)0x02ff:
                DispatchExecution(in frame, streamId, opcode, start);
                return;

            case >= Opcode.InferenceChat and <= (Opcode)0x03ff:
                DispatchInference(in frame, streamId, opcode, start);
                return;

            default:
                _writer.WriteError(streamId, opcode, ErrorCode.UnknownOpcode, start);
                return;
        }
    }

    // Set by a request whose success ends this connection (revoking the key it authenticated with).
    private ErrorCode _closeAfterReply;

    private void StartUnary<TRequest, TResponse>(uint streamId, Opcode opcode, long start, TRequest body, Func<Session, TRequest, CancellationToken, ValueTask<TResponse>> handler)
    {
        var request = Register(streamId, opcode, start, stream: false);
        _ = RunUnaryAsync(request, body, handler);
    }

    // Durable ops: the directory awaits the store's commit, so the RESPONSE is written only after the
    // write is durable.
    private async Task RunUnaryAsync<TRequest, TResponse>(AsyncRequest request, TRequest body, Func<Session, TRequest, CancellationToken, ValueTask<TResponse>> handler)
    {
        TResponse? response = default;
        WayangError? error = null;
        try
        {
            response = await handler(this, body, request.Token).ConfigureAwait(false);
        }
        catch (WayangException ex)
        {
            error = ex.Error;
        }
        catch (OperationCanceledException) when (request.Token.IsCancellationRequested)
        {
            error = CancelError(request);
        }
        catch (Exception ex)
        {
            Log.RequestFailed(_server.Logger, request.Opcode.ToString(), request.StreamId, ConnectionId, ex);
            error = new WayangError(ErrorCode.Internal);
        }

        Unregister(request);
        if (error is null)
        {
            if (request.CancelCode != ErrorCode.ConnectionClosed)
                _writer.WriteMessage(FrameType.Response, request.Opcode, request.StreamId, response, request.StartTimestamp);
        }
        else if (request.CancelCode != ErrorCode.ConnectionClosed)
        {
            _writer.WriteError(request.StreamId, request.Opcode, error, request.StartTimestamp);
        }
        if (_closeAfterReply != ErrorCode.None)
            RequestClose(_closeAfterReply, ErrorRegistry.NameOf(_closeAfterReply));
        await FinishAsync().ConfigureAwait(false);
    }

    // Opcode Tick: Count STREAM frames, each sent only while the stream holds credit, then END.
    private Task RunTickAsync(AsyncRequest request, int count, int intervalMs) =>
        RunServerStreamAsync(request, (Count: count, IntervalMs: intervalMs), static async (s, request, tick) =>
        {
            var item = new TickItem();
            for (int i = 0; i < tick.Count; i++)
            {
                await request.Credit!.WaitAsync(request.Token).ConfigureAwait(false);
                item.Sequence = i;
                item.UnixTimeMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                if (!s._writer.WriteMessage(FrameType.Stream, Opcode.Tick, request.StreamId, item))
                    return false;
                await s._writer.FlushAsync().ConfigureAwait(false);
                if (tick.IntervalMs > 0 && i + 1 < tick.Count)
                    await Task.Delay(tick.IntervalMs, request.Token).ConfigureAwait(false);
            }
            return true;
        });

    // A server stream around its body: the body runs off the read loop, sends STREAM frames under the stream's credit
    // and returns false when the connection closed under it (then nothing more is written); returning true ends the
    // stream with END, a CANCEL or a failure with the matching ERROR.
    private async Task RunServerStreamAsync<TState>(AsyncRequest request, TState state, Func<Session, AsyncRequest, TState, Task<bool>> body)
    {
        WayangError? error = null;
        bool closed = false;
        try
        {
            // Off the read loop: with ample credit and a fast reader every write and flush completes
            // synchronously, and the stream would otherwise run inside dispatch, starving the connection.
            await Task.Yield();
            closed = !await body(this, request, state).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (request.Token.IsCancellationRequested)
        {
            error = CancelError(request);
            closed = error is null;
        }
        catch (WayangException ex)
        {
            // The plane's answer (an inference stream that broke, timed out or found no target): its own code.
            error = ex.Error;
        }
        catch (Exception ex)
        {
            Log.RequestFailed(_server.Logger, request.Opcode.ToString(), request.StreamId, ConnectionId, ex);
            error = new WayangError(ErrorCode.Internal);
        }

        Unregister(request);
        if (!closed)
        {
            if (error is null)
                _writer.WriteReply(FrameType.End, request.Opcode, request.StreamId, default, request.StartTimestamp);
            else
                _writer.WriteError(request.StreamId, request.Opcode, error, request.StartTimestamp);
        }
        await FinishAsync().ConfigureAwait(false);
    }

    private static TenantInfoDto ToDto(Tenant t) => new() { TenantId = t.TenantId, DisplayName = t.DisplayName, CreatedAtMs = t.CreatedAtMs };

    private static ApiKeyInfoDto ToDto(ApiKeyInfo k) => new()
    {
        KeyId = k.KeyId,
        TenantId = k.TenantId,
        Name = k.Name,
        Roles = [.. k.Roles],
        CreatedAtMs = k.CreatedAtMs,
        Revoked = k.Revoked,
        RevokedAtMs = k.RevokedAtMs,
    };
}
