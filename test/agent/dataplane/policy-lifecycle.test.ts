/**
 * The policy lifecycle of the data plane without gRPC: snapshots made by
 * hand, what Envoy acknowledged given as data, NACKs as calls. A NACK of a
 * snapshot that changed a policy resource rolls that resource back to the
 * version of the last fully acknowledged snapshot and asks for a rebuild;
 * status shows rolled-back with the NACK detail; a newer version is applied.
 */
import t from 'tap';
import { fullyAcked, PolicyLifecycle } from '../../../agent/dataplane/policy-lifecycle.js';
import { makeView } from '../../../agent/discovery/catalog-view.js';
import type { AckedResources } from '../../../agent/xds/cache/acked-resources.js';
import { RESOURCE_KINDS, type Snapshot } from '../../../agent/xds/snapshot.js';
import { createLogger } from '../../../lib/logger.js';
import { FakePolicySource } from '../../fakes/policy-source.js';
import { snapshotOf } from '../xds/fixtures/streams.js';
import { apiInstance, web } from './policy-fixtures.js';

const view = makeView(1, [{ name: 'api', source: 'consul', instances: [apiInstance('api-1')] }]);

const trafficPolicy = (connectTimeout: string) => ({
  apiVersion: 'mesh.v1',
  kind: 'TrafficPolicy',
  metadata: { name: 'api-defaults' },
  spec: { service: 'api', connectTimeout },
});
const authz = {
  apiVersion: 'mesh.v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'web-open' },
  spec: { target: { service: 'web' }, defaultAction: 'allow' },
};

/** Everything in the snapshot acknowledged at its version. */
const ackedAll = (s: Snapshot): AckedResources =>
  Object.fromEntries(RESOURCE_KINDS.map((k) => [k, new Map(s.versions[k])])) as unknown as AckedResources;

t.test('fullyAcked: every resource at the snapshot version', async (t) => {
  const s = snapshotOf({ clusters: { a: '1', b: '2' } });
  t.ok(fullyAcked(s, ackedAll(s)));
  const older = snapshotOf({ clusters: { a: '1', b: '3' } });
  t.notOk(fullyAcked(s, ackedAll(older)), 'one cluster at another version');
});

t.test('NACK: roll back the changed resource, keep the rest, no loop, newer version applied', async (t) => {
  const lines: string[] = [];
  const source = new FakePolicySource();
  const life = new PolicyLifecycle(source, createLogger({ level: 'debug', sink: { write: (l) => lines.push(l) } }));
  const states = () => life.status([web], view).resources.map((r) => `${r.kind}/${r.name}@${r.version}:${r.state}`);

  source.set([trafficPolicy('1s'), authz]);
  t.equal(life.build().length, 2);
  const s1 = snapshotOf({ clusters: { api: '1' } });
  life.servedAs(s1.version);
  life.acknowledged(s1, ackedAll(snapshotOf({})));
  t.same(states(), ['AuthorizationPolicy/web-open@1:applied', 'TrafficPolicy/api-defaults@1:applied']);
  life.acknowledged(s1, ackedAll(s1));

  source.set([trafficPolicy('2s'), authz]);
  const docs = life.build();
  t.same(
    docs.map((d) => (d.kind === 'TrafficPolicy' ? d.spec.connectTimeout : d.name)),
    [2000, 'web-open'],
    'version 2 is built',
  );
  const s2 = snapshotOf({ clusters: { api: '2' } });
  life.servedAs(s2.version);
  t.ok(life.nacked('cluster api: bad connect_timeout', 1000), 'a NACK of a snapshot that changed policy asks for a rebuild');
  t.ok(lines.some((l) => l.includes('rolled back') && l.includes('TrafficPolicy/api-defaults')));
  const rebuilt = life.build();
  t.same(
    rebuilt.map((d) => (d.kind === 'TrafficPolicy' ? d.spec.connectTimeout : d.name)),
    [1000, 'web-open'],
    'the last accepted version (1) is built instead; the other resource keeps its version',
  );
  t.same(
    life.inForce().map((r) => `${r.kind}/${r.name}@${r.version}`),
    ['TrafficPolicy/api-defaults@1', 'AuthorizationPolicy/web-open@1'],
  );
  const status = life.status([web], view).resources.find((r) => r.kind === 'TrafficPolicy');
  t.equal(status?.state, 'rolled-back');
  t.equal(status?.version, 2, 'status names the version received (the one rolled back)');
  t.equal(status?.servedVersion, 1);
  t.match(status?.reason, /bad connect_timeout.*serving version 1 instead/);

  life.servedAs(s1.version);
  life.acknowledged(s1, ackedAll(s1));
  t.notOk(life.nacked('another NACK', 1001), 'a NACK after the rollback finds nothing changed: no loop');
  t.same(states(), ['AuthorizationPolicy/web-open@1:applied', 'TrafficPolicy/api-defaults@2:rolled-back']);

  source.set([trafficPolicy('2s'), { ...authz, spec: { ...authz.spec, defaultAction: 'deny' } }]);
  life.build();
  t.same(states(), ['AuthorizationPolicy/web-open@2:applied', 'TrafficPolicy/api-defaults@2:rolled-back'], 'unchanged: stays rolled back');

  source.set([trafficPolicy('3s'), { ...authz, spec: { ...authz.spec, defaultAction: 'deny' } }]);
  t.same(
    life.build().map((d) => (d.kind === 'TrafficPolicy' ? d.spec.connectTimeout : d.name)),
    [3000, 'web-open'],
    'a newer version is built',
  );
  const s3 = snapshotOf({ clusters: { api: '3' } });
  life.servedAs(s3.version);
  life.acknowledged(s3, ackedAll(s3));
  t.same(states(), ['AuthorizationPolicy/web-open@2:applied', 'TrafficPolicy/api-defaults@3:applied']);
});

t.test('rejected: between a NACK and its rollback, and when the agent refuses the snapshot', async (t) => {
  const source = new FakePolicySource();
  const life = new PolicyLifecycle(source, createLogger({ level: 'error', sink: { write: () => undefined } }));
  source.set([trafficPolicy('1s')]);
  life.build();
  life.refused('snapshot abc not served: listeners: duplicate name');
  const refused = life.status([web], view).resources[0];
  t.equal(refused?.state, 'rejected');
  t.match(refused?.reason, /agent refused the snapshot.*duplicate name/);

  const s1 = snapshotOf({ clusters: { api: '1' } });
  life.servedAs(s1.version);
  t.equal(life.status([web], view).resources[0]?.state, 'applied', 'served: applied');
  t.ok(life.nacked('bad', 5), 'never accepted: the NACK rolls it back (left out)');
  t.same(life.build(), [], 'nothing was ever accepted: left out');
  const st = life.status([web], view).resources[0];
  t.equal(st?.state, 'rolled-back');
  t.equal(st?.servedVersion, undefined);
  t.match(st?.reason, /left out: no earlier version was accepted/);
});

t.test('a NACK not caused by policy (nothing changed since the accepted set) rolls nothing back', async (t) => {
  const source = new FakePolicySource();
  const life = new PolicyLifecycle(source, createLogger({ level: 'error', sink: { write: () => undefined } }));
  source.set([trafficPolicy('1s')]);
  life.build();
  const s1 = snapshotOf({ clusters: { api: '1' } });
  life.servedAs(s1.version);
  life.acknowledged(s1, ackedAll(s1));
  const s2 = snapshotOf({ clusters: { api: '1', other: '9' } });
  life.servedAs(s2.version);
  t.notOk(life.nacked('a catalog change made a bad cluster', 7));
  t.equal(life.status([web], view).resources[0]?.state, 'applied');
});
