using System.Globalization;
using System.Text;
using System.Text.Json;
using MessagePack;
using Wayang.Fast.Common.Definitions;
using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Definitions;
using Wayang.Fast.Execution.Definitions;
using Wayang.Fast.Execution.Engine;
using Wayang.Fast.Protocol;
using Wayang.Fast.Protocol.Framing;
using Wayang.Fast.Protocol.Messages;

namespace Wayang.Fast.Server.Sessions;

// Definition opcodes (0x0120-0x0124) for both kinds: workflows live in the execution plane's registry, agents in the
// control plane's. Every definition, JSON or MessagePack, passes the JSON Schema of its kind first, then the kind's
// semantic checks; every change is audited. Everything acts in the caller's own tenant.
internal sealed partial class Session
{
    private void DispatchDefinitions(in Frame frame, uint streamId, Opcode opcode, long start)
    {
        if (_server.Execution is null || _server.Agents is null)
        {
            _writer.WriteError(streamId, opcode, new WayangError(ErrorCode.Unavailable, "Definitions need the execution plane, which is not running on this server."), start);
            return;
        }
        try
        {
            switch (opcode)
            {
                case Opcode.DefinitionValidate:
                case Opcode.DefinitionCreate:
                {
                    if (!TryDecode(frame.Body, out DefinitionRequest? req))
                    {
                        _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                        return;
                    }
                    var kind = KindOf(req.Kind);
                    var json = DefinitionJson(req);
                    if (opcode == Opcode.DefinitionValidate)
                    {
                        // Pure: the checks run on the read loop and nothing is stored or recorded.
                        _writer.WriteMessage(FrameType.Response, opcode, streamId, Validate(kind, json), start);
                        return;
                    }
                    StartAudited(streamId, opcode, start, (Kind: kind, Json: json), $"{DefinitionKinds.NameOf(kind)}:{PeekId(json)}", Tenant, static async (s, r, ct) =>
                        r.Kind == DefinitionKind.Workflow
                            ? ToDto(await s.Engine.CreateWorkflowAsync(s.Tenant, ParseWorkflow(r.Json), ct).ConfigureAwait(false))
                            : ToDto(await s._server.Agents!.Agents.CreateAsync(s.Tenant, r.Json, ct).ConfigureAwait(false)));
                    return;
                }

                case Opcode.DefinitionTransition:
                {
                    if (!TryDecode(frame.Body, out DefinitionTransitionRequest? req))
                    {
                        _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                        return;
                    }
                    var kind = KindOf(req.Kind);
                    if (req.Target is not ((byte)DefinitionState.Validated or (byte)DefinitionState.Published or (byte)DefinitionState.Archived))
                        throw new WayangException(ErrorCode.InvalidArgument, "Target must be 2 (VALIDATED), 3 (PUBLISHED) or 4 (ARCHIVED).");
                    if (req.Version < 1)
                        throw new WayangException(ErrorCode.InvalidArgument, "Version must be 1 or more.");
                    var resource = $"{DefinitionKinds.NameOf(kind)}:{req.Id}@{req.Version.ToString(CultureInfo.InvariantCulture)}->{DefinitionLifecycle.NameOf((DefinitionState)req.Target)}";
                    StartAudited(streamId, opcode, start, (Kind: kind, Request: req), resource, Tenant, static async (s, r, ct) =>
                    {
                        var target = (DefinitionState)r.Request.Target;
                        if (r.Kind == DefinitionKind.Workflow)
                            return ToDto(await s.Engine.TransitionWorkflowAsync(s.Tenant, r.Request.Id ?? "", r.Request.Version, target, ct).ConfigureAwait(false));
                        var catalog = s._server.Agents!;
                        return ToDto(await catalog.Agents.TransitionAsync(s.Tenant, r.Request.Id ?? "", r.Request.Version, target, catalog.IsUsed, ct).ConfigureAwait(false));
                    });
                    return;
                }

                case Opcode.DefinitionList:
                {
                    if (!TryDecode(frame.Body, out DefinitionListRequest? req, allowEmpty: true))
                    {
                        _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                        return;
                    }
                    var list = new List<DefinitionSummaryDto>();
                    if (req.Kind is 0 or (byte)DefinitionKind.Workflow)
                    {
                        foreach (var w in Engine.ListWorkflows(Tenant))
                        {
                            list.Add(new DefinitionSummaryDto
                            {
                                Kind = (byte)DefinitionKind.Workflow, Id = w.WorkflowId, LatestVersion = w.LatestVersion, PublishedVersion = w.LatestPublishedVersion,
                                Versions = [.. w.Versions], States = [.. w.States.Select(st => (byte)st)], UpdatedAtMs = w.UpdatedAtMs,
                            });
                        }
                    }
                    if (req.Kind is 0 or (byte)DefinitionKind.Agent)
                    {
                        foreach (var a in _server.Agents.Agents.List(Tenant))
                        {
                            list.Add(new DefinitionSummaryDto
                            {
                                Kind = (byte)DefinitionKind.Agent, Id = a.AgentId, LatestVersion = a.LatestVersion, PublishedVersion = a.PublishedVersion,
                                Versions = [.. a.Versions.Select(v => v.Version)], States = [.. a.Versions.Select(v => (byte)v.State)], UpdatedAtMs = a.UpdatedAtMs,
                            });
                        }
                    }
                    if (req.Kind > (byte)DefinitionKind.Agent)
                        throw new WayangException(ErrorCode.InvalidArgument, "Kind must be 0 (both), 1 (workflow) or 2 (agent).");
                    _writer.WriteMessage(FrameType.Response, opcode, streamId, new DefinitionListResponse { Definitions = [.. list] }, start);
                    return;
                }

                case Opcode.DefinitionGet:
                {
                    if (!TryDecode(frame.Body, out DefinitionGetRequest? req))
                    {
                        _writer.WriteError(streamId, opcode, ErrorCode.BadBody, start);
                        return;
                    }
                    var kind = KindOf(req.Kind);
                    if (req.Version < 0)
                        throw new WayangException(ErrorCode.InvalidArgument, "Version must be 0 (the newest) or more.");
                    DefinitionVersionDto dto;
                    if (kind == DefinitionKind.Workflow)
                    {
                        var found = Engine.GetWorkflowVersion(Tenant, req.Id ?? "", req.Version)
                            ?? throw new WayangException(ErrorCode.WorkflowNotFound, $"Workflow '{req.Id}' version {req.Version} does not exist.");
                        dto = ToDto(found);
                    }
                    else
                    {
                        var agents = _server.Agents.Agents;
                        int version = req.Version;
                        if (version == 0)
                            version = agents.List(Tenant).FirstOrDefault(a => a.AgentId == req.Id)?.LatestVersion ?? 0;
                        if (!agents.TryGet(Tenant, req.Id ?? "", version, out var agent) || version == 0)
                            throw new WayangException(ErrorCode.AgentNotFound, $"Agent '{req.Id}' version {req.Version} does not exist.");
                        dto = ToDto(agent);
                    }
                    _writer.WriteMessage(FrameType.Response, opcode, streamId, dto, start);
                    return;
                }

                default:
                    _writer.WriteError(streamId, opcode, ErrorCode.UnknownOpcode, start);
                    return;
            }
        }
        catch (WayangException ex)
        {
            _writer.WriteError(streamId, opcode, ex.Error, start);
        }
    }

    private static DefinitionKind KindOf(byte kind) => kind switch
    {
        (byte)DefinitionKind.Workflow => DefinitionKind.Workflow,
        (byte)DefinitionKind.Agent => DefinitionKind.Agent,
        _ => throw new WayangException(ErrorCode.InvalidArgument, "Kind must be 1 (workflow) or 2 (agent)."),
    };

    // JSON as sent, or the MessagePack map converted to JSON so that both forms pass exactly the same checks.
    private static byte[] DefinitionJson(DefinitionRequest req)
    {
        bool hasJson = req.DefinitionJson is { Length: > 0 };
        bool hasMsgPack = req.DefinitionMsgPack is { Length: > 0 };
        if (hasJson == hasMsgPack)
            throw new WayangException(ErrorCode.InvalidArgument, "Exactly one of DefinitionJson and DefinitionMsgPack must be set.");
        if (hasJson)
            return req.DefinitionJson;
        try
        {
            return Encoding.UTF8.GetBytes(MessagePackSerializer.ConvertToJson(req.DefinitionMsgPack, WireOptions.Untrusted));
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or InvalidOperationException or ArgumentException)
        {
            throw new WayangException(ErrorCode.InvalidArgument, "DefinitionMsgPack is not one valid MessagePack value.");
        }
    }

    private DefinitionValidateResponse Validate(DefinitionKind kind, byte[] json)
    {
        var violations = kind == DefinitionKind.Workflow ? DefinitionSchemas.ValidateWorkflow(json) : AgentValidator.Validate(json);
        if (violations.Count == 0 && kind == DefinitionKind.Workflow)
        {
            // Schema-valid: the graph and its references (agents published in this tenant, executor types) next.
            try
            {
                Engine.ValidateWorkflow(Tenant, WorkflowRegistry.ParseDefinition(json));
            }
            catch (WayangException ex)
            {
                violations = SemanticViolations(ex.Error);
            }
        }
        return new DefinitionValidateResponse
        {
            Valid = violations.Count == 0,
            Violations = [.. violations.Select(v => new ViolationDto { Pointer = v.Pointer, Reason = v.Reason })],
        };
    }

    // Schema first (every violation, with pointers), then the execution plane's strict parse.
    private static WorkflowDefinition ParseWorkflow(byte[] json)
    {
        DefinitionSchemas.ThrowIfInvalid(DefinitionKind.Workflow, json);
        return WorkflowRegistry.ParseDefinition(json);
    }

    // Every problem the validator reported (Details["violations"] when there are several), as pointer and reason.
    private static IReadOnlyList<SchemaViolation> SemanticViolations(WayangError error)
    {
        if (error.Details.TryGetValue("violations", out var json))
        {
            try
            {
                using var doc = JsonDocument.Parse(json);
                return [.. doc.RootElement.EnumerateArray().Select(v => new SchemaViolation(v.GetProperty("pointer").GetString() ?? "", v.GetProperty("reason").GetString() ?? ""))];
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or KeyNotFoundException)
            {
                // Fall back to the first problem below.
            }
        }
        error.Details.TryGetValue("path", out var path);
        return [new SchemaViolation(JsonPointer.FromJsonPath(path), error.Details.TryGetValue("reason", out var reason) ? reason : error.Message ?? ErrorRegistry.NameOf(error.Code))];
    }

    // The id for the audit resource of a create, read leniently (the definition may be invalid).
    private static string PeekId(byte[] json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String
                ? id.GetString() ?? ""
                : "";
        }
        catch (JsonException)
        {
            return "";
        }
    }

    private static DefinitionVersionDto ToDto(WorkflowVersionInfo w) => new()
    {
        Kind = (byte)DefinitionKind.Workflow,
        Id = w.WorkflowId,
        Version = w.Version,
        State = (byte)w.State,
        DefinitionJson = JsonSerializer.SerializeToUtf8Bytes(w.Definition, ExecutionJsonContext.Default.WorkflowDefinition),
        CreatedAtMs = w.CreatedAtMs,
        UpdatedAtMs = w.ArchivedAtMs ?? w.PublishedAtMs ?? w.ValidatedAtMs ?? w.CreatedAtMs,
    };

    private static DefinitionVersionDto ToDto(AgentVersion a) => new()
    {
        Kind = (byte)DefinitionKind.Agent,
        Id = a.AgentId,
        Version = a.Version,
        State = (byte)a.State,
        DefinitionJson = JsonSerializer.SerializeToUtf8Bytes(a.Definition, AgentJsonContext.Default.AgentDefinition),
        CreatedAtMs = a.CreatedAtMs,
        UpdatedAtMs = a.UpdatedAtMs,
    };
}
