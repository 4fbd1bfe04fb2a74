/**
 * Golden tests of the xDS builders for a fixed model; the JSON files under
 * test/golden/xds are the spec (UPDATE_GOLDEN=1 rewrites them). Every resource
 * must also be a valid Envoy v3 message.
 */
import t from 'tap';
import { checkSnapshot } from '../../../agent/xds/check-snapshot.js';
import { RESOURCE_KINDS, type ResourceKind } from '../../../agent/xds/snapshot.js';
import { buildSnapshot } from '../../../agent/xds/snapshot-build.js';
import { checkMessage, fromAny, toAny } from '../../../lib/envoy/protos.js';
import { TypeUrl } from '../../../lib/envoy/type-urls.js';
import { matchGolden } from '../../support/golden.js';
import { fixtureIdentities, fixtureModel } from './fixtures/model.js';

const TYPE_OF: Record<ResourceKind, string> = {
  listeners: TypeUrl.Listener,
  clusters: TypeUrl.Cluster,
  endpoints: TypeUrl.ClusterLoadAssignment,
  routes: TypeUrl.RouteConfiguration,
  secrets: TypeUrl.Secret,
};

const snapshot = buildSnapshot(fixtureModel(), fixtureIdentities());

t.test('the fixture snapshot is consistent', async (t) => {
  t.strictSame(checkSnapshot(snapshot), []);
});

t.test('resource names', async (t) => {
  const names = Object.fromEntries(RESOURCE_KINDS.map((k) => [k, [...snapshot.resources[k].keys()].sort()]));
  t.strictSame(names, {
    listeners: ['inbound:api', 'inbound:cache', 'inbound:web', 'outbound:api:9001', 'outbound:cache:6380'],
    clusters: ['inbound:api:app', 'inbound:cache:app', 'inbound:web:app', 'outbound:api@web', 'outbound:cache@web'],
    endpoints: ['outbound:api', 'outbound:cache'],
    routes: ['outbound:api@web'],
    secrets: [
      'ROOTCA',
      'spiffe://example.org/ns/default/sa/api',
      'spiffe://example.org/ns/default/sa/cache',
      'spiffe://example.org/ns/default/sa/web',
    ],
  });
});

for (const kind of RESOURCE_KINDS) {
  t.test(`${kind} match test/golden/xds/${kind}.json`, async (t) => {
    const byName = Object.fromEntries([...snapshot.resources[kind].entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    matchGolden(t, `xds/${kind}.json`, byName);
  });

  t.test(`${kind} are valid Envoy v3 messages`, async (t) => {
    for (const [name, resource] of snapshot.resources[kind]) {
      t.doesNotThrow(() => checkMessage(TYPE_OF[kind], resource), `${name} passes checkMessage`);
      const any = toAny(TYPE_OF[kind], resource);
      t.equal(fromAny(any).typeUrl, TYPE_OF[kind], `${name} encodes as ${TYPE_OF[kind]}`);
    }
  });
}
