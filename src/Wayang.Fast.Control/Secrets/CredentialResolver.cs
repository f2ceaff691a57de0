using Wayang.Fast.Common.Errors;
using Wayang.Fast.Control.Rbac;
using Wayang.Fast.Control.Tenancy;

namespace Wayang.Fast.Control.Secrets;

// Resolves credential references (`secret://path`, as in an agent definition's credentialRefs or a provider's
// settings) at use time, with the caller's tenant and permissions: the principal must be able to act in the tenant
// and hold secrets.read there. A forbidden, malformed or missing reference fails with a code whose message names the
// reference, never a value. The caller records denials in the audit log (it knows the operation they belong to).
public sealed class CredentialResolver(SecretStore secrets)
{
    public async Task<IReadOnlyDictionary<string, SecretValue>> ResolveAsync(Principal principal, string tenantId, IReadOnlyCollection<string> references,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(principal);
        ArgumentNullException.ThrowIfNull(references);
        if (!principal.CanActIn(tenantId) || !principal.Has(Permission.SecretsRead))
        {
            throw new WayangException(new WayangError(ErrorCode.PermissionDenied,
                $"The principal may not resolve secret references in tenant '{tenantId}' (secrets.read): {string.Join(", ", references)}.",
                details: new Dictionary<string, string>(StringComparer.Ordinal) { ["references"] = string.Join(",", references) }));
        }
        var values = new Dictionary<string, SecretValue>(references.Count, StringComparer.Ordinal);
        foreach (var reference in references)
            values[reference] = await secrets.ResolveAsync(tenantId, reference, ct).ConfigureAwait(false);
        return values;
    }
}
