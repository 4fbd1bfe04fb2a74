import t from 'tap';
import { makeView } from '../../../agent/discovery/catalog-view.js';
import { buildStatus } from '../../../agent/status/status.js';
import { startStatusServer } from '../../../agent/status/status-server.js';
import { parseWorkload } from '../../../agent/workloads/load.js';
import type { Workload } from '../../../agent/workloads/workload.js';
import { isMeshError } from '../../../lib/errors.js';
import { statusInput } from '../../support/status-input.js';
import { httpGet } from '../../support/wait.js';

const web = parseWorkload(
  '/w/web.yaml',
  'name: web\nport: 8080\nupstreams: [{ service: api, localPort: 9001 }, { service: db, localPort: 9002 }]\n',
  {
    trustDomain: 'example.org',
    inboundPortOffset: 10000,
  },
) as Workload;

t.test('the status document', async (t) => {
  const doc = buildStatus({
    ...statusInput({ consulMode: 'catalog', consulAddress: '127.0.0.1:8500' }),
    workloads: [web],
    fileErrors: [{ file: '/w/bad.yaml', field: 'port', reason: 'too big' }],
    registrations: [{ id: 'web-vm1', name: 'web', state: 'rejected', error: 'HTTP 400' }],
    checks: new Map([['web', { status: 'passing' as const, output: '' }]]),
    view: makeView(4, [{ name: 'api', instances: [], source: 'disk' }]),
    watches: [
      { service: 'api', index: 0, healthy: false, error: 'down' },
      { service: 'db', index: 5, healthy: true },
    ],
  });
  t.same(doc, {
    node: 'vm1',
    consul: { mode: 'catalog', address: '127.0.0.1:8500', state: 'connected' },
    workloads: [
      {
        name: 'web',
        file: '/w/web.yaml',
        spiffeId: 'spiffe://example.org/ns/default/sa/web',
        port: 8080,
        meshPort: 18080,
        registration: 'rejected',
        error: 'HTTP 400',
        check: 'passing',
      },
    ],
    workloadErrors: [{ file: '/w/bad.yaml', field: 'port', reason: 'too big', code: 'MESH_E_WORKLOAD_INVALID' }],
    upstreams: [
      { service: 'api', instances: 0, source: 'disk', watch: 'failing', error: 'down' },
      { service: 'db', instances: 0, source: 'none', watch: 'ok' },
    ],
    catalogVersion: 4,
    healthy: false,
    problems: [
      'workload file /w/bad.yaml: port: too big',
      'workload web: Consul rejected its registration: HTTP 400',
      'upstream api: catalog watch failing: down',
    ],
  });
});

t.test("upstreamRows 'failing' (the sync report's document): only failing watches' rows, the same problems", async (t) => {
  const input = {
    ...statusInput({ consulMode: 'catalog', consulAddress: '127.0.0.1:8500' }),
    workloads: [web],
    view: makeView(4, [{ name: 'api', instances: [], source: 'disk' as const }]),
    watches: [
      { service: 'api', index: 0, healthy: false, error: 'down' },
      { service: 'db', index: 5, healthy: true },
    ],
  };
  const all = buildStatus(input);
  const lean = buildStatus({ ...input, upstreamRows: 'failing' });
  t.same(lean.upstreams, [{ service: 'api', instances: 0, source: 'disk', watch: 'failing', error: 'down' }]);
  t.same(lean.problems, all.problems, 'the failing watch is still a problem');
  t.same({ ...lean, upstreams: [] }, { ...all, upstreams: [] }, 'the rest of the document is the same');
});

t.test('GET /status serves JSON; other paths 404; a busy port is a named error', async (t) => {
  const server = await startStatusServer('127.0.0.1:0', () => ({ hello: 'world' }));
  t.teardown(() => server.close());
  const ok = await httpGet(`http://${server.address}/status`);
  t.equal(ok.status, 200);
  t.same(JSON.parse(ok.body), { hello: 'world' });
  t.equal((await httpGet(`http://${server.address}/other`)).status, 404);
  t.equal((await httpGet(`http://${server.address}/status/xds`)).status, 404, 'no /status/xds without its route');
  const withXds = await startStatusServer('127.0.0.1:0', () => ({ hello: 'world' }), { xds: () => ({ xds: { socket: '/run/x' } }) });
  t.teardown(() => withXds.close());
  const xds = await httpGet(`http://${withXds.address}/status/xds`);
  t.equal(xds.status, 200);
  t.same(JSON.parse(xds.body), { xds: { socket: '/run/x' } }, 'the xds section alone');
  const err = await startStatusServer(server.address, () => ({})).catch((e) => e);
  t.ok(isMeshError(err, 'MESH_E_CONFIG_INVALID'));
  t.match(err.message, /status\.listen/);
});
