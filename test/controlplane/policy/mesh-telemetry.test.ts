/**
 * MeshTelemetry at the control plane: its spec validates like agent.yaml
 * `tracing` (errors name the field path), one per mesh (a second is refused
 * at apply, whether stored or in the same apply; the same name updates it),
 * and the policy filter sends it to every subscriber, whatever its interest.
 */
import t from 'tap';
import { PolicyIndex, policySubjects } from '../../../controlplane/policy/policy-filter.js';
import { formatProblem, validateApply } from '../../../controlplane/policy/policy-validate.js';
import { parsePolicyDocument } from '../../../lib/policy/parse.js';
import type { PolicyDocument } from '../../../lib/policy/schema.js';
import { MemoryPolicyStore } from '../../fakes/policy-store.js';
import { authorization, meshTelemetry, rateLimit, TD, trafficPolicy } from './policy-docs.js';

const parsed = (input: unknown): PolicyDocument => {
  const r = parsePolicyDocument(input);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.document;
};

t.test('a valid MeshTelemetry parses; samplingPercent defaults to 100 as in agent.yaml', async (t) => {
  const doc = parsed(meshTelemetry('mesh'));
  t.same(doc, {
    apiVersion: 'mesh.v1',
    kind: 'MeshTelemetry',
    name: 'mesh',
    spec: { tracing: { provider: 'zipkin', address: '127.0.0.1:9411', samplingPercent: 100 } },
  });
  const otel = parsed(meshTelemetry('mesh', { provider: 'opentelemetry', address: 'otel.internal:4317', samplingPercent: 2.5 }));
  t.match(otel.spec, { tracing: { provider: 'opentelemetry', samplingPercent: 2.5 } });
});

t.test('bad values are refused with the field path', async (t) => {
  const cases: Array<[unknown, string]> = [
    [meshTelemetry('m', { provider: 'jaeger', address: 'a:1' }), 'spec.tracing.provider'],
    [meshTelemetry('m', { provider: 'zipkin' }), 'spec.tracing.address'],
    [meshTelemetry('m', { provider: 'zipkin', address: 'nohost' }), 'spec.tracing.address'],
    [meshTelemetry('m', { provider: 'zipkin', address: 'a:1', samplingPercent: 101 }), 'spec.tracing.samplingPercent'],
    [meshTelemetry('m', { provider: 'zipkin', address: 'a:1', samplingPercent: -1 }), 'spec.tracing.samplingPercent'],
    [meshTelemetry('m', { provider: 'zipkin', address: 'a:1', sampling: 5 }), 'spec.tracing'],
    [{ apiVersion: 'mesh.v1', kind: 'MeshTelemetry', metadata: { name: 'm' }, spec: {} }, 'spec.tracing'],
    [{ apiVersion: 'mesh.v1', kind: 'MeshTelemetry', metadata: { name: 'm' }, spec: { tracing: {}, target: {} } }, 'spec'],
  ];
  for (const [input, path] of cases) {
    const result = validateApply([input], [], 'example.org');
    t.notOk(result.ok, `${JSON.stringify(input)} is refused`);
    if (result.ok) continue;
    t.ok(
      result.problems.some((p) => p.path === path && p.kind === 'MeshTelemetry' && p.name === 'm'),
      `${path}: ${result.problems.map(formatProblem).join('; ')}`,
    );
  }
});

t.test('one MeshTelemetry per mesh: a second one is refused, in the same apply or against the stored one', async (t) => {
  const same = validateApply([meshTelemetry('a'), meshTelemetry('b')], [], 'example.org');
  t.notOk(same.ok);
  if (!same.ok) {
    t.equal(same.problems.length, 1);
    t.equal(
      formatProblem(same.problems[0] as never),
      'document 2 (MeshTelemetry b): metadata.name: conflicts with MeshTelemetry a (document 1 of this apply): both are for the whole mesh; one MeshTelemetry per mesh (change it by applying under its name, or delete it first)',
    );
  }
  const stored = [parsed(meshTelemetry('a'))];
  const second = validateApply([meshTelemetry('b')], stored, 'example.org');
  t.notOk(second.ok);
  if (!second.ok) t.match(formatProblem(second.problems[0] as never), /conflicts with MeshTelemetry a \(stored\)/);
  const update = validateApply(
    [meshTelemetry('a', { provider: 'opentelemetry', address: '127.0.0.1:4317', samplingPercent: 10 })],
    stored,
    'example.org',
  );
  t.ok(update.ok, 'the same name updates the stored one');
  t.ok(validateApply([meshTelemetry('a'), trafficPolicy('tp', 'api')], stored, 'example.org').ok, 'other kinds do not conflict with it');
});

t.test('the filter sends the MeshTelemetry to every subscriber, even one with no interest', async (t) => {
  const store = new MemoryPolicyStore(() => 1);
  store.apply(
    [
      meshTelemetry('mesh'),
      trafficPolicy('db-policy', 'db'),
      authorization('api-authz', { service: 'api' }),
      rateLimit('web-rl', { service: 'web' }),
    ],
    'test',
  );
  t.same(policySubjects({ kind: 'MeshTelemetry', source: meshTelemetry('mesh') }), { services: [], spiffeIds: [] }, 'no target');
  const index = new PolicyIndex(store.list());
  const names = (interest: { services: string[]; spiffeIds: string[] }) => index.filter(interest).map((r) => `${r.kind}/${r.name}`);
  t.same(names({ services: ['api'], spiffeIds: [] }), ['AuthorizationPolicy/api-authz', 'MeshTelemetry/mesh']);
  t.same(names({ services: ['db', 'web'], spiffeIds: [] }), ['MeshTelemetry/mesh', 'RateLimit/web-rl', 'TrafficPolicy/db-policy']);
  t.same(names({ services: [], spiffeIds: [`${TD}/ns/x/sa/y`] }), ['MeshTelemetry/mesh'], 'an identity-only interest');
  t.same(names({ services: ['unrelated'], spiffeIds: [] }), ['MeshTelemetry/mesh'], 'an unrelated node');
  t.same(names({ services: [], spiffeIds: [] }), ['MeshTelemetry/mesh'], 'a node with no workload yet');
  store.delete('MeshTelemetry', 'mesh', 'test');
  t.same(new PolicyIndex(store.list()).filter({ services: ['unrelated'], spiffeIds: [] }), [], 'deleted: nobody gets it');
});
