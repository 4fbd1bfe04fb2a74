/**
 * Validation of one apply (pure): every document against its kind's schema
 * (lib/policy/parse.ts), then the rules that need the whole resulting set:
 * no kind+name twice in one apply, references that resolve (route subsets),
 * one resource of a kind per service or target (one MeshTelemetry in the
 * whole mesh: it has no target), SPIFFE IDs in the control
 * plane's trust domain, and a TrafficRoute that is HTTP or TCP, not both.
 * Every problem names the document index, kind, name and field path.
 */
import { MeshError } from '../../lib/errors.js';
import { parsePolicyDocument } from '../../lib/policy/parse.js';
import type { PolicyDocument, PolicyKind, PolicyTarget } from '../../lib/policy/schema.js';
import { POLICY_SCHEMAS } from './policy-schemas.js';

export interface PolicyProblem {
  /** 0-based position of the document in the apply (messages count from 1). */
  readonly index: number;
  readonly kind: string;
  readonly name: string;
  /** Field path inside the document (`spec.http[0].destinations[1].subset`); "" for the whole document. */
  readonly path: string;
  readonly message: string;
}

export type ValidatedApply =
  | { readonly ok: true; readonly documents: readonly PolicyDocument[] }
  | { readonly ok: false; readonly problems: readonly PolicyProblem[] };

/** `document 3 (TrafficRoute api): spec.http[0].destinations[0].subset: message` */
export function formatProblem(p: PolicyProblem): string {
  return `document ${p.index + 1} (${p.kind || 'unknown kind'} ${p.name || 'unnamed'}): ${p.path === '' ? '(document)' : p.path}: ${p.message}`;
}

export function invalidPolicies(problems: readonly PolicyProblem[]): MeshError {
  const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
  return new MeshError(
    'MESH_E_POLICY_INVALID',
    `the policy documents are invalid (${count}); nothing was stored:\n${problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`,
    { details: { problems } },
  );
}

const key = (kind: string, name: string) => `${kind}/${name}`;

function targetKey(t: PolicyTarget): string {
  return t.spiffeId !== undefined ? `spiffeId ${t.spiffeId}` : `service ${t.service}`;
}

/** What a resource claims: two resources of one kind may not claim the same thing. */
export function claimOf(doc: PolicyDocument): string {
  switch (doc.kind) {
    case 'ServiceIdentity':
      return `service ${doc.spec.service} in namespace ${doc.spec.namespace}`;
    case 'TrafficRoute':
    case 'TrafficPolicy':
      return `service ${doc.spec.service}`;
    case 'MeshTelemetry':
      return 'the whole mesh';
    default:
      return targetKey(doc.spec.target);
  }
}

function claimPath(doc: PolicyDocument): string {
  switch (doc.kind) {
    case 'ServiceIdentity':
    case 'TrafficRoute':
    case 'TrafficPolicy':
      return 'spec.service';
    case 'MeshTelemetry':
      return 'metadata.name';
    default:
      return doc.spec.target.spiffeId !== undefined ? 'spec.target.spiffeId' : 'spec.target.service';
  }
}

/** SPIFFE IDs and prefixes a document names, with their field paths. */
function spiffeRefs(doc: PolicyDocument): Array<{ path: string; value: string }> {
  const refs: Array<{ path: string; value: string }> = [];
  if (doc.kind === 'ServiceIdentity') {
    doc.spec.allowedIdentities.forEach((value, i) => {
      refs.push({ path: `spec.allowedIdentities[${i}]`, value });
    });
    return refs;
  }
  if (doc.kind === 'TrafficRoute' || doc.kind === 'TrafficPolicy' || doc.kind === 'MeshTelemetry') return refs;
  if (doc.spec.target.spiffeId !== undefined) refs.push({ path: 'spec.target.spiffeId', value: doc.spec.target.spiffeId });
  if (doc.kind === 'AuthorizationPolicy') {
    doc.spec.rules.forEach((rule, r) => {
      rule.from?.ids.forEach((value, i) => {
        refs.push({ path: `spec.rules[${r}].from.ids[${i}]`, value });
      });
      rule.from?.idPrefixes.forEach((value, i) => {
        refs.push({ path: `spec.rules[${r}].from.idPrefixes[${i}]`, value });
      });
    });
  }
  return refs;
}

function duplicateNames(names: readonly string[], path: (i: number) => string, what: string): Array<{ path: string; message: string }> {
  const seen = new Map<string, number>();
  const out: Array<{ path: string; message: string }> = [];
  names.forEach((name, i) => {
    const first = seen.get(name);
    if (first === undefined) seen.set(name, i);
    else out.push({ path: path(i), message: `${what} "${name}" is already used at ${path(first)}` });
  });
  return out;
}

/** Lists whose entries' names must be unique within the resource (they appear in stats and logs). */
function namedLists(doc: PolicyDocument): Array<{ names: string[]; at: string; what: string }> {
  switch (doc.kind) {
    case 'TrafficRoute':
      return [
        { names: doc.spec.subsets.map((s) => s.name), at: 'spec.subsets', what: 'subset' },
        { names: (doc.spec.http ?? []).map((r) => r.name), at: 'spec.http', what: 'rule name' },
      ];
    case 'AuthorizationPolicy':
      return [{ names: doc.spec.rules.map((r) => r.name), at: 'spec.rules', what: 'rule name' }];
    case 'RateLimit':
      return [{ names: doc.spec.routes.map((r) => r.name), at: 'spec.routes', what: 'route name' }];
    default:
      return [];
  }
}

/** Problems inside one document that the schema cannot see: references, duplicates, trust domain, http vs tcp. */
export function documentProblems(doc: PolicyDocument, trustDomain: string): Array<{ path: string; message: string }> {
  const out: Array<{ path: string; message: string }> = [];
  const prefix = `spiffe://${trustDomain}/`;
  for (const ref of spiffeRefs(doc)) {
    if (!ref.value.startsWith(prefix))
      out.push({ path: ref.path, message: `${ref.value} is not in this mesh's trust domain ${trustDomain} (must start with ${prefix})` });
  }
  if (doc.kind === 'TrafficRoute') {
    const { spec } = doc;
    if (spec.http !== undefined && spec.tcp !== undefined)
      out.push({ path: 'spec.tcp', message: 'a TrafficRoute has http rules or tcp destinations, not both' });
    const subsets = new Set(spec.subsets.map((s) => s.name));
    const known = spec.subsets.length === 0 ? 'the route defines no subsets' : `defined: ${[...subsets].join(', ')}`;
    const check = (subset: string | undefined, path: string) => {
      if (subset !== undefined && !subsets.has(subset))
        out.push({ path, message: `subset "${subset}" is not defined in spec.subsets (${known})` });
    };
    spec.http?.forEach((rule, r) => {
      rule.destinations.forEach((d, i) => {
        check(d.subset, `spec.http[${r}].destinations[${i}].subset`);
      });
      check(rule.mirror?.subset, `spec.http[${r}].mirror.subset`);
    });
    spec.tcp?.destinations.forEach((d, i) => {
      check(d.subset, `spec.tcp.destinations[${i}].subset`);
    });
  }
  for (const list of namedLists(doc)) out.push(...duplicateNames(list.names, (i) => `${list.at}[${i}].name`, list.what));
  return out;
}

/**
 * Validates the documents of one apply against each other and against the
 * stored resources they do not replace. `stored` holds every stored resource;
 * those with the kind+name of an applied document are replaced by it.
 */
export function validateApply(inputs: readonly unknown[], stored: readonly PolicyDocument[], trustDomain: string): ValidatedApply {
  const problems: PolicyProblem[] = [];
  const parsed: Array<{ index: number; doc: PolicyDocument }> = [];
  const seen = new Map<string, number>();
  inputs.forEach((input, index) => {
    const result = parsePolicyDocument(input, POLICY_SCHEMAS);
    if (!result.ok) {
      for (const issue of result.issues)
        problems.push({ index, kind: result.kind ?? '', name: result.name ?? '', path: issue.path, message: issue.message });
      return;
    }
    const doc = result.document;
    const at = (path: string, message: string) => problems.push({ index, kind: doc.kind, name: doc.name, path, message });
    const first = seen.get(key(doc.kind, doc.name));
    if (first !== undefined) {
      at('metadata.name', `${doc.kind} ${doc.name} is also document ${first + 1} of this apply; each resource may appear once`);
      return;
    }
    seen.set(key(doc.kind, doc.name), index);
    for (const p of documentProblems(doc, trustDomain)) at(p.path, p.message);
    parsed.push({ index, doc });
  });

  // One resource of a kind per service or target, across the resulting set.
  const claims = new Map<string, { index?: number; doc: PolicyDocument }>();
  for (const doc of stored) {
    if (seen.has(key(doc.kind, doc.name))) continue;
    claims.set(`${doc.kind}|${claimOf(doc)}`, { doc });
  }
  for (const { index, doc } of parsed) {
    const claim = `${doc.kind}|${claimOf(doc)}`;
    const other = claims.get(claim);
    if (other !== undefined) {
      const where = other.index === undefined ? 'stored' : `document ${other.index + 1} of this apply`;
      problems.push({
        index,
        kind: doc.kind,
        name: doc.name,
        path: claimPath(doc),
        message: `conflicts with ${doc.kind} ${other.doc.name} (${where}): both are for ${claimOf(doc)}; one ${doc.kind} per ${kindClaimWord(doc.kind)}`,
      });
      continue;
    }
    claims.set(claim, { index, doc });
  }

  if (problems.length > 0) return { ok: false, problems: problems.sort((a, b) => a.index - b.index) };
  return { ok: true, documents: parsed.map((p) => p.doc) };
}

function kindClaimWord(kind: PolicyKind): string {
  switch (kind) {
    case 'ServiceIdentity':
      return 'service and namespace';
    case 'TrafficRoute':
    case 'TrafficPolicy':
      return 'service';
    case 'MeshTelemetry':
      return 'mesh (change it by applying under its name, or delete it first)';
    default:
      return 'target';
  }
}
