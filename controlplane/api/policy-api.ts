/**
 * The Admin API's policy RPCs (on the admin socket, like the other admin
 * calls): ApplyPolicies (dry_run: the diff), GetPolicy, ListPolicies,
 * DeletePolicy. Documents travel as JSON text; the store validates them.
 */
import type * as grpc from '@grpc/grpc-js';
import { MeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { POLICY_KINDS, type PolicyKind } from '../../lib/policy/schema.js';
import { isPolicyKind } from '../policy/policy-repo.js';
import type { ApplyResult, PolicyRecord, PolicyStore } from '../policy/policy-store.js';
import { invalidPolicies } from '../policy/policy-validate.js';
import { unary } from './handlers.js';

/** Who the audit log names for admin-socket calls (as the other admin operations do). */
export const ADMIN_ACTOR = 'admin';

export function policyResourceMessage(r: PolicyRecord) {
  return {
    kind: r.kind,
    name: r.name,
    version: r.version,
    revision: r.revision,
    json: JSON.stringify(r.source),
    updated_at_ms: r.updatedAtMs,
    updated_by: r.updatedBy,
  };
}

function applyMessage(result: ApplyResult) {
  return {
    revision: result.revision,
    changes: result.changes.map((c) => ({
      kind: c.kind,
      name: c.name,
      action: c.action,
      before_json: c.before === undefined ? '' : JSON.stringify(c.before),
      after_json: c.after === undefined ? '' : JSON.stringify(c.after),
    })),
  };
}

function kindOf(kind: string): PolicyKind {
  if (isPolicyKind(kind)) return kind;
  throw new MeshError('MESH_E_USAGE', `unknown policy kind ${JSON.stringify(kind)}; the kinds are ${POLICY_KINDS.join(', ')}`, {
    details: { kind },
  });
}

/** Each document's JSON text parsed; text that is not JSON is a problem of that document. */
function parseDocuments(texts: readonly string[]): unknown[] {
  const problems: Array<{ index: number; kind: string; name: string; path: string; message: string }> = [];
  const documents = texts.map((text, index) => {
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      problems.push({ index, kind: '', name: '', path: '', message: `not JSON: ${(err as Error).message}` });
      return undefined;
    }
  });
  if (problems.length > 0) throw invalidPolicies(problems);
  return documents;
}

export function policyHandlers(deps: { policies: PolicyStore; logger: Logger }): grpc.UntypedServiceImplementation {
  const { policies, logger } = deps;
  return {
    ApplyPolicies: unary(logger, 'ApplyPolicies', (req: { documents_json: string[]; dry_run: boolean }) => {
      const result = policies.apply(parseDocuments(req.documents_json ?? []), ADMIN_ACTOR, { dryRun: req.dry_run === true });
      if (!req.dry_run)
        logger.info('policies applied', {
          revision: result.revision,
          changed: result.changes.filter((c) => c.action !== 'unchanged').length,
          documents: result.changes.length,
        });
      return applyMessage(result);
    }),
    GetPolicy: unary(logger, 'GetPolicy', (req: { kind: string; name: string }) => {
      const kind = kindOf(req.kind);
      const found = policies.get(kind, req.name);
      if (found === undefined)
        throw new MeshError(
          'MESH_E_POLICY_NOT_FOUND',
          `no ${kind} named ${req.name}; meshctl policy list --kind ${kind} shows what exists`,
          {
            details: { kind, name: req.name },
          },
        );
      return policyResourceMessage(found);
    }),
    ListPolicies: unary(logger, 'ListPolicies', (req: { kind: string }) => ({
      revision: policies.revision(),
      resources: policies.list(req.kind ? kindOf(req.kind) : undefined).map(policyResourceMessage),
    })),
    DeletePolicy: unary(logger, 'DeletePolicy', (req: { kind: string; name: string }) => {
      const result = policies.delete(kindOf(req.kind), req.name, ADMIN_ACTOR);
      logger.info('policy deleted', { kind: req.kind, name: req.name, revision: result.revision });
      return applyMessage(result);
    }),
  };
}
