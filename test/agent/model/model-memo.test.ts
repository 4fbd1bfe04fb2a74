/**
 * The incremental rebuild (ModelMemo + BuildMemo kept from build to build, as
 * the data plane does) must give exactly what a full rebuild from scratch
 * gives: the same model, problems and skipped counts, the same snapshot
 * (resources, per-resource versions, version). Checked on random edits of
 * every input: catalog instances (added, removed, changed, an equal view in a
 * new object, a service gone), workloads and their upstreams, SVIDs, policy
 * documents (secure naming, traffic routes with subsets and mirrors, traffic
 * policies, tracing, the same document parsed again), zone, access log and the
 * certificates; with and without transparent capture. And it must really be
 * incremental: after a one-service change every other upstream and its
 * resources are the very objects of the previous build.
 */
import t, { type Test } from 'tap';
import { type CatalogInstance, type CatalogView, makeView, type ServiceView } from '../../../agent/discovery/catalog-view.js';
import { type BuiltModel, buildModel, type ModelInput } from '../../../agent/model/build-model.js';
import type { CaptureInput } from '../../../agent/model/capture.js';
import { ModelMemo } from '../../../agent/model/model-memo.js';
import type { Workload } from '../../../agent/workloads/workload.js';
import { BuildMemo } from '../../../agent/xds/build-memo.js';
import { checkSnapshot } from '../../../agent/xds/check-snapshot.js';
import { type Identities, RESOURCE_KINDS, type Snapshot } from '../../../agent/xds/snapshot.js';
import { buildSnapshot } from '../../../agent/xds/snapshot-build.js';
import { parsePolicyDocument } from '../../../lib/policy/parse.js';
import type { PolicyDocument } from '../../../lib/policy/schema.js';
import { stableJson } from '../../../lib/stable-json.js';
import { mulberry32 } from '../../support/prng.js';
import { CAPTURE, meshInstance } from '../xds/fixtures/capture-model.js';
import { fixtureIdentities } from '../xds/fixtures/model.js';
import { fixtureWorkload, TRAFFIC_POLICIES, trafficIdentities } from '../xds/fixtures/traffic-model.js';

const TD = 'example.org';
const id = (sa: string) => `spiffe://${TD}/ns/default/sa/${sa}`;
const SERVICES = ['api', 'cache', 'db', 'orders', 'shadow', 'legacy', 'search'];

function doc(source: unknown): PolicyDocument {
  const parsed = parsePolicyDocument(source);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return parsed.document;
}

/** Secure naming for db, the traffic golden fixture's routes and policies (subsets, a mirror to shadow, locality), mesh-wide tracing. */
const POLICY_SOURCES: unknown[] = [
  {
    apiVersion: 'mesh.v1',
    kind: 'ServiceIdentity',
    metadata: { name: 'db-ids' },
    spec: { service: 'db', namespace: 'default', allowedIdentities: [id('db'), id('evil')] },
  },
  ...TRAFFIC_POLICIES,
  {
    apiVersion: 'mesh.v1',
    kind: 'MeshTelemetry',
    metadata: { name: 'tracing' },
    spec: { tracing: { provider: 'zipkin', address: '10.9.9.9:9411', samplingPercent: 10 } },
  },
];

/** One input state, edited in place by the steps; the build reads it through inputOf. */
interface State {
  services: Map<string, ServiceView>;
  upstreams: { web: string[]; admin: string[] };
  adminSvid: boolean;
  policies: (PolicyDocument | undefined)[];
  zone: string | undefined;
  accessLogDefault: boolean;
  /** agent.yaml tracing (wins over MeshTelemetry). */
  tracing: boolean;
  identities: Identities;
}

function instanceOf(rand: () => number, service: string, n: number): CatalogInstance {
  const tags = [['v1'], ['v2'], ['blue'], ['green'], []][Math.floor(rand() * 5)] as string[];
  return {
    id: `${service}-${n}`,
    node: `node-${n}`,
    address: `10.0.${SERVICES.indexOf(service)}.${n}`,
    appPort: 9000 + (n % 3),
    meshPort: 19000,
    spiffeId: service === 'legacy' ? '' : rand() < 0.1 ? id('evil') : id(service),
    protocol: service === 'cache' ? 'tcp' : rand() < 0.1 ? 'http2' : 'http',
    tags,
    meta: { version: tags[0] ?? '' },
    weight: 1 + Math.floor(rand() * 3),
    datacenter: 'dc1',
    zone: rand() < 0.5 ? 'zone-a' : 'zone-b',
    health: rand() < 0.8 ? 'passing' : 'warning',
  };
}

function edit(rand: () => number, s: State): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;
  const service = pick(SERVICES);
  const r = rand();
  const view = s.services.get(service);
  if (r < 0.45) {
    // The most common edit: a service's instances change (a health flip, a deploy).
    const instances = [...(view?.instances ?? [])];
    const n = 1 + Math.floor(rand() * 5);
    const at = instances.findIndex((i) => i.id === `${service}-${n}`);
    if (at >= 0 && rand() < 0.5) instances.splice(at, 1);
    else if (at >= 0) instances[at] = instanceOf(rand, service, n);
    else instances.push(instanceOf(rand, service, n));
    s.services.set(service, { name: service, source: 'consul', instances: instances.sort((a, b) => (a.id < b.id ? -1 : 1)) });
    return `instances of ${service}`;
  }
  if (r < 0.5 && view !== undefined) {
    s.services.set(service, { ...view, instances: [...view.instances] });
    return `${service}: an equal view in a new object`;
  }
  if (r < 0.55) {
    s.services.delete(service);
    return `${service} gone from the view`;
  }
  if (r < 0.65) {
    const who = rand() < 0.6 ? 'web' : 'admin';
    const list = s.upstreams[who];
    s.upstreams[who] = list.includes(service) ? list.filter((x) => x !== service) : [...list, service];
    return `${who} calls ${s.upstreams[who].join(',')}`;
  }
  if (r < 0.8) {
    const i = Math.floor(rand() * POLICY_SOURCES.length);
    const mode = rand();
    // Present or absent; or parsed again (an equal document in a new object, as after a policy stream reconnect).
    s.policies[i] = mode < 0.4 ? undefined : mode < 0.7 && s.policies[i] !== undefined ? s.policies[i] : doc(POLICY_SOURCES[i]);
    return `policy ${i} ${s.policies[i] === undefined ? 'off' : 'on'}`;
  }
  if (r < 0.85) {
    s.zone = s.zone === undefined ? 'zone-a' : undefined;
    return `zone ${s.zone}`;
  }
  if (r < 0.9) {
    s.adminSvid = !s.adminSvid;
    return `admin SVID ${s.adminSvid}`;
  }
  if (r < 0.93) {
    s.accessLogDefault = !s.accessLogDefault;
    return `access log default ${s.accessLogDefault}`;
  }
  if (r < 0.96) {
    s.tracing = !s.tracing;
    return `agent.yaml tracing ${s.tracing}`;
  }
  s.identities = s.identities.certs.has(id('admin')) ? fixtureIdentities() : trafficIdentities();
  return 'certificates';
}

function workloadsOf(s: State): Workload[] {
  const port = (service: string, base: number) => base + SERVICES.indexOf(service);
  return [
    fixtureWorkload(
      'web',
      8080,
      s.upstreams.web.map((service) => ({ service, localPort: port(service, 9100) })),
    ),
    fixtureWorkload(
      'admin',
      8081,
      s.upstreams.admin.map((service) => ({ service, localPort: port(service, 9200) })),
    ),
  ];
}

function inputOf(s: State, version: number, capture: CaptureInput | undefined): ModelInput {
  const view: CatalogView = makeView(version, s.services.values());
  return {
    nodeName: 'vm-1',
    trustDomain: TD,
    workloads: workloadsOf(s),
    view,
    svids: new Set(s.adminSvid ? [id('web'), id('admin')] : [id('web')]),
    policies: s.policies.filter((p): p is PolicyDocument => p !== undefined),
    ...(s.zone === undefined ? {} : { zone: s.zone }),
    accessLogPath: '/var/log/mesh/access.log',
    ...(s.accessLogDefault ? { accessLogDefault: true } : {}),
    ...(s.tracing ? { tracing: { provider: 'opentelemetry' as const, host: 'otel.local', port: 4317, samplingPercent: 50 } } : {}),
    ...(capture === undefined ? {} : { capture }),
  };
}

/** Whether both builds are the same; the first difference of a run is reported whole (later ones only counted). */
function same(
  t: Test,
  step: string,
  incremental: { built: BuiltModel; snapshot: Snapshot },
  full: { built: BuiltModel; snapshot: Snapshot },
  report: boolean,
): boolean {
  const describe = (x: { built: BuiltModel; snapshot: Snapshot }) =>
    stableJson({
      model: x.built.model,
      problems: x.built.problems,
      skipped: x.built.skippedInstances,
      tracingSource: x.built.tracingSource ?? null,
      version: x.snapshot.version,
      versions: RESOURCE_KINDS.map((k) => [...x.snapshot.versions[k]]),
      resources: RESOURCE_KINDS.map((k) => [...x.snapshot.resources[k]]),
      buildProblems: x.snapshot.buildProblems,
      check: checkSnapshot(x.snapshot),
    });
  const a = describe(incremental);
  const b = describe(full);
  if (a !== b && report) t.equal(a, b, `${step}: incremental and full rebuild differ`);
  return a === b;
}

function run(t: Test, seed: number, capture: CaptureInput | undefined, steps: number) {
  const rand = mulberry32(seed);
  const s: State = {
    services: new Map(),
    upstreams: { web: ['api', 'cache', 'db'], admin: ['api', 'orders'] },
    adminSvid: true,
    policies: POLICY_SOURCES.map((p) => doc(p)),
    zone: 'zone-a',
    accessLogDefault: false,
    tracing: false,
    identities: trafficIdentities(),
  };
  for (const service of SERVICES)
    s.services.set(service, {
      name: service,
      source: 'consul',
      instances: [1, 2, 3].map((n) => instanceOf(rand, service, n)),
    });
  const modelMemo = new ModelMemo();
  const buildMemo = new BuildMemo();
  let agreed = 0;
  /** The latest incremental snapshot that passed the check: what the snapshot cache serves and checks the next one against. */
  let served: Snapshot | undefined;
  let checkedAgainstServed = 0;
  let checkAgreed = 0;
  for (let step = 0; step < steps; step++) {
    const what = step === 0 ? 'first build' : edit(rand, s);
    const input = inputOf(s, step + 1, capture);
    const builtIncremental = buildModel({ ...input, memo: modelMemo });
    const incremental = { built: builtIncremental, snapshot: buildSnapshot(builtIncremental.model, s.identities, buildMemo) };
    const builtFull = buildModel(input);
    const full = { built: builtFull, snapshot: buildSnapshot(builtFull.model, s.identities) };
    if (same(t, `seed ${seed}, step ${step} (${what})`, incremental, full, agreed === step)) agreed++;
    // Checked against the served snapshot (only the kinds that changed), the answer is the full check's.
    const whole = checkSnapshot(incremental.snapshot);
    if (served !== undefined) {
      checkedAgainstServed++;
      const against = checkSnapshot(incremental.snapshot, served);
      if (stableJson(against) === stableJson(whole)) checkAgreed++;
      else if (checkAgreed === checkedAgainstServed - 1)
        t.same(against, whole, `seed ${seed}, step ${step} (${what}): check against the served one`);
    }
    if (whole.length === 0) served = incremental.snapshot;
  }
  t.equal(agreed, steps, `seed ${seed}: every step agrees`);
  t.ok(checkedAgainstServed > steps / 2, `seed ${seed}: ${checkedAgainstServed} steps checked against a served snapshot`);
  t.equal(checkAgreed, checkedAgainstServed, `seed ${seed}: each of them agrees with the full check`);
  t.equal(buildMemo.builds.full + buildMemo.builds.patched, steps);
  // Without capture, the instance edits go by the patch path; with capture every build is a full one.
  if (capture === undefined) t.ok(buildMemo.builds.patched >= steps / 5, `seed ${seed}: ${buildMemo.builds.patched} builds patched`);
  else t.equal(buildMemo.builds.patched, 0, `seed ${seed}: capture builds in full`);
}

t.test('random edits: the incremental rebuild equals a full rebuild', async (t) => {
  for (const seed of [1, 2, 3]) run(t, seed, undefined, 100);
});

t.test('random edits with transparent capture: the incremental rebuild equals a full rebuild', async (t) => {
  for (const seed of [11, 12]) run(t, seed, CAPTURE, 80);
});

t.test('a one-service change remakes only that upstream: the others and their resources are the same objects', async (t) => {
  const instances = (service: string, n: number) =>
    Array.from({ length: n }, (_, i) => meshInstance(service, i, `10.0.${SERVICES.indexOf(service)}.${i}`, 9000, 'http'));
  const views = new Map(
    ['api', 'orders', 'search'].map((name) => [name, { name, source: 'consul' as const, instances: instances(name, 3) }]),
  );
  const workloads = [
    fixtureWorkload('web', 8080, [
      { service: 'api', localPort: 9001 },
      { service: 'orders', localPort: 9002 },
      { service: 'search', localPort: 9003 },
    ]),
  ];
  const modelMemo = new ModelMemo();
  const buildMemo = new BuildMemo();
  const build = (version: number) => {
    const built = buildModel({
      nodeName: 'vm-1',
      trustDomain: TD,
      workloads,
      view: makeView(version, views.values()),
      svids: new Set([id('web')]),
      policies: [],
      memo: modelMemo,
    });
    return { built, snapshot: buildSnapshot(built.model, fixtureIdentities(), buildMemo) };
  };
  const first = build(1);
  views.set('orders', { name: 'orders', source: 'consul', instances: instances('orders', 2) });
  const second = build(2);
  const upstream = (b: typeof first, service: string) => b.built.model.upstreams.find((u) => u.service === service);
  t.equal(upstream(second, 'api'), upstream(first, 'api'), 'api: the same upstream object');
  t.equal(upstream(second, 'search'), upstream(first, 'search'), 'search: the same upstream object');
  t.not(upstream(second, 'orders'), upstream(first, 'orders'), 'orders: made again');
  t.equal(upstream(second, 'orders')?.instances.length, 2);
  for (const kind of RESOURCE_KINDS) {
    for (const [name, resource] of second.snapshot.resources[kind]) {
      if (kind === 'endpoints' && name === 'outbound:orders') {
        t.not(resource, first.snapshot.resources[kind].get(name), 'the changed endpoints are new');
        continue;
      }
      t.equal(resource, first.snapshot.resources[kind].get(name), `${kind} ${name}: the same object`);
    }
  }
  t.strictSame(
    [...second.snapshot.versions.endpoints.keys()].filter(
      (name) => second.snapshot.versions.endpoints.get(name) !== first.snapshot.versions.endpoints.get(name),
    ),
    ['outbound:orders'],
  );
  for (const kind of RESOURCE_KINDS) {
    if (kind === 'endpoints') continue;
    t.equal(second.snapshot.resources[kind], first.snapshot.resources[kind], `${kind}: the previous map taken over whole`);
    t.equal(second.snapshot.versions[kind], first.snapshot.versions[kind], `${kind}: its versions too`);
  }
  t.not(second.snapshot.versions.endpoints, first.snapshot.versions.endpoints, 'endpoints: new versions');
  const plain = buildSnapshot(second.built.model, fixtureIdentities());
  t.equal(second.snapshot.version, plain.version, 'the version is the one a build from scratch gives');
  t.same(checkSnapshot(second.snapshot, first.snapshot), [], 'checked against the first: passes');
});
