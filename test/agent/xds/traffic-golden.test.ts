/**
 * Golden tests of the traffic-management builders (TrafficRoute,
 * TrafficPolicy, several callers per service) for the fixed model of
 * fixtures/traffic-model.ts; test/golden/xds-traffic/*.json are the spec
 * (UPDATE_GOLDEN=1 rewrites them). Every resource must be a valid Envoy v3
 * message and survive the proto encoding the ADS server uses.
 */
import t from 'tap';
import { checkSnapshot } from '../../../agent/xds/check-snapshot.js';
import { RESOURCE_KINDS, type ResourceKind } from '../../../agent/xds/snapshot.js';
import { buildSnapshot } from '../../../agent/xds/snapshot-build.js';
import { XDS_TYPES } from '../../../agent/xds/xds-types.js';
import { checkMessage, fromAny, toAny } from '../../../lib/envoy/protos.js';
import { matchGolden } from '../../support/golden.js';
import { TD, trafficIdentities, trafficModel } from './fixtures/traffic-model.js';

/** The type URL of each snapshot kind, from the xDS type table. */
const TYPE_OF = Object.fromEntries(XDS_TYPES.map((x) => [x.kind, x.typeUrl])) as Record<ResourceKind, string>;

const built = trafficModel();
const snapshot = buildSnapshot(built.model, trafficIdentities());

t.test('the traffic model has no problems and the snapshot is consistent', async (t) => {
  t.strictSame(built.problems, []);
  t.strictSame(checkSnapshot(snapshot), []);
});

t.test('resource names: per caller clusters and routes, per subset clusters, shared endpoints', async (t) => {
  const names = Object.fromEntries(RESOURCE_KINDS.filter((k) => k !== 'secrets').map((k) => [k, [...snapshot.resources[k].keys()].sort()]));
  t.strictSame(names, {
    listeners: ['inbound:admin', 'inbound:web', 'outbound:api:9001', 'outbound:api:9002', 'outbound:cache:6380'],
    clusters: [
      'inbound:admin:app',
      'inbound:web:app',
      'outbound:api:v1@admin',
      'outbound:api:v1@web',
      'outbound:api:v2@admin',
      'outbound:api:v2@web',
      'outbound:api@admin',
      'outbound:api@web',
      'outbound:cache:blue@web',
      'outbound:cache:green@web',
      'outbound:cache@web',
      'outbound:shadow@admin',
      'outbound:shadow@web',
    ],
    endpoints: [
      'outbound:api',
      'outbound:api:v1',
      'outbound:api:v2',
      'outbound:cache',
      'outbound:cache:blue',
      'outbound:cache:green',
      'outbound:shadow',
    ],
    routes: ['outbound:api@admin', 'outbound:api@web'],
  });
});

t.test('each caller presents its own SVID on its own clusters', async (t) => {
  const secretOf = (name: string) =>
    JSON.stringify(snapshot.resources.clusters.get(name)).match(/"tls_certificate_sds_secret_configs":\[\{"name":"([^"]+)"/)?.[1];
  t.equal(secretOf('outbound:api@web'), `spiffe://${TD}/ns/default/sa/web`);
  t.equal(secretOf('outbound:api:v2@admin'), `spiffe://${TD}/ns/default/sa/admin`);
});

for (const kind of RESOURCE_KINDS) {
  t.test(`${kind} match test/golden/xds-traffic/${kind}.json`, async (t) => {
    const byName = Object.fromEntries([...snapshot.resources[kind].entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    matchGolden(t, `xds-traffic/${kind}.json`, byName);
  });

  t.test(`${kind} are valid Envoy v3 messages that survive encoding`, async (t) => {
    for (const [name, resource] of snapshot.resources[kind]) {
      t.doesNotThrow(() => checkMessage(TYPE_OF[kind], resource), `${name} passes checkMessage`);
      const decoded = fromAny(toAny(TYPE_OF[kind], resource));
      t.equal(decoded.typeUrl, TYPE_OF[kind], `${name} encodes as ${TYPE_OF[kind]}`);
      t.strictSame(decoded.value, JSON.parse(JSON.stringify(resource)), `${name}: every field survives the encoding`);
    }
  });
}
