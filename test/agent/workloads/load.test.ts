import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { isWorkloadFileName, loadWorkloads, parseWorkload } from '../../../agent/workloads/load.js';
import { upstreamServices, type Workload } from '../../../agent/workloads/workload.js';
import { tempDir } from '../../support/temp-dir.js';

const ctx = { trustDomain: 'example.org', inboundPortOffset: 10000 };

const WEB = `name: web
port: 8080
protocol: http
namespace: default
serviceAccount: web
tags: [v1]
meta: { version: v1 }
check: { http: "http://127.0.0.1:8080/healthz", interval: 5s, timeout: 2s }
upstreams:
  - { service: api, localPort: 9001 }
`;

async function dirWith(t: Test, files: Record<string, string>): Promise<string> {
  const dir = await tempDir(t, 'workloads-');
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  return dir;
}

t.test('the issue example parses into a workload', async (t) => {
  const w = parseWorkload('/w/web.yaml', WEB, ctx) as Workload;
  t.notOk(Array.isArray(w));
  t.equal(w.spiffeId, 'spiffe://example.org/ns/default/sa/web');
  t.equal(w.meshPort, 18080, 'port + offset');
  t.equal(w.protocol, 'http');
  t.same(w.check, {
    kind: 'http',
    target: 'http://127.0.0.1:8080/healthz',
    interval: '5s',
    timeout: '2s',
    intervalMs: 5000,
    timeoutMs: 2000,
  });
  t.same(w.upstreams, [{ service: 'api', localPort: 9001, namespace: 'default' }]);
  t.same(upstreamServices([w, w]), ['api']);
});

t.test('defaults: serviceAccount = name, namespace default, explicit meshPort wins', async (t) => {
  const w = parseWorkload(
    '/w/a.json',
    JSON.stringify({ name: 'api', port: 7000, meshPort: 15001, check: { tcp: '127.0.0.1:7000' } }),
    ctx,
  ) as Workload;
  t.equal(w.spiffeId, 'spiffe://example.org/ns/default/sa/api');
  t.equal(w.meshPort, 15001);
  t.equal(w.protocol, 'tcp');
  t.equal(w.check?.intervalMs, 10000);
  t.equal(w.check?.timeoutMs, 5000);
  const e = parseWorkload('/w/x.yaml', 'name: x\nport: 60000\n', ctx);
  t.match(e, [{ field: 'port', reason: /above 65535; set meshPort/ }]);
});

t.test('each kind of bad file gives a named error', async (t) => {
  const cases: Array<[string, string, string, RegExp]> = [
    ['bad yaml', 'name: [web\nport: 1', '', /line \d+/],
    ['unknown key', 'name: web\nport: 8080\nprot: http\n', 'prot', /unknown field/],
    ['port out of range', 'name: web\nport: 70000\n', 'port', /65535/],
    ['bad spiffe chars', 'name: web\nport: 8080\nserviceAccount: "we b"\n', 'serviceAccount', /service account/],
    ['bad namespace', 'name: web\nport: 8080\nnamespace: "a/b"\n', 'namespace', /namespace/],
    ['two check kinds', 'name: web\nport: 8080\ncheck: { tcp: "a:1", ttl: 5s }\n', 'check', /exactly one/],
    ['bad protocol', 'name: web\nport: 8080\nprotocol: udp\n', 'protocol', /./],
    ['reserved meta', 'name: web\nport: 8080\nmeta: { mesh_port: "1" }\n', 'meta.mesh_port', /set by the agent/],
    ['bad meta key', 'name: web\nport: 8080\nmeta: { "a b": "1" }\n', 'meta.a b', /letters/],
    ['bad upstream', 'name: web\nport: 8080\nupstreams: [{ service: api, localPort: 0 }]\n', 'upstreams[0].localPort', /./],
    ['bad name', 'name: Web_1\nport: 8080\n', 'name', /DNS label/],
  ];
  for (const [what, text, field, reason] of cases) {
    const result = parseWorkload('/w/f.yaml', text, ctx);
    t.ok(Array.isArray(result), what);
    t.match(result, [{ file: '/w/f.yaml', field, reason }], what);
  }
});

t.test('a directory: bad files are reported, the others load', async (t) => {
  const dir = await dirWith(t, {
    '10-web.yaml': WEB,
    '20-api.yml': 'name: api\nport: 9090\n',
    '30-dup.yaml': 'name: web\nport: 8181\n',
    '40-badyaml.yaml': 'name: [\n',
    '50-port-clash.json': JSON.stringify({ name: 'db', port: 9090 }),
    '60-upstream-clash.yaml': 'name: cache\nport: 6379\nupstreams: [{ service: web, localPort: 9001 }]\n',
    '70-self-clash.yaml': 'name: q\nport: 7777\nmeshPort: 7777\n',
    'README.md': 'not a workload',
    '.hidden.yaml': 'garbage: [',
  });
  await mkdir(path.join(dir, 'sub.yaml'));
  const loaded = await loadWorkloads(dir, ctx);
  t.same(
    loaded.workloads.map((w) => w.name),
    ['web', 'api'],
  );
  const byFile = Object.fromEntries(loaded.errors.map((e) => [path.basename(e.file), e]));
  t.match(byFile['30-dup.yaml'], { field: 'name', reason: /duplicate workload name "web"/ });
  t.match(byFile['40-badyaml.yaml'], { field: '' });
  t.match(byFile['50-port-clash.json'], { field: 'port', reason: /9090 is already used/ });
  t.match(byFile['60-upstream-clash.yaml'], { field: 'upstreams[0].localPort' });
  t.match(byFile['70-self-clash.yaml'], { field: 'meshPort', reason: /in this file/ });
  t.match(byFile['sub.yaml'], { reason: /cannot read/ });
  t.equal(loaded.errors.length, 6);
  t.ok(Object.isFrozen(loaded.workloads));
});

t.test('a missing directory has no workloads; an unreadable one is an error', async (t) => {
  t.same(await loadWorkloads('/nonexistent/workloads.d', ctx), { workloads: [], errors: [] });
  const dir = await dirWith(t, { 'file.yaml': 'x' });
  const notDir = await loadWorkloads(path.join(dir, 'file.yaml'), ctx);
  t.match(notDir.errors, [{ reason: /cannot read workloadsDir/ }]);
  t.ok(isWorkloadFileName('a.yaml') && isWorkloadFileName('a.json') && !isWorkloadFileName('a.txt') && !isWorkloadFileName('.a.yaml'));
});
