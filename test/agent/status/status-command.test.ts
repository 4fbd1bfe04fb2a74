import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { type StatusGet, statusCommand } from '../../../agent/commands/status-command.js';
import { renderStatus } from '../../../agent/status/render.js';
import type { StatusDocument } from '../../../agent/status/status.js';
import { buildStatus, statusProblems } from '../../../agent/status/status.js';
import type { Workload } from '../../../agent/workloads/workload.js';
import { idleAdsStatus } from '../../../agent/xds/server/ads-telemetry.js';
import { runCli } from '../../../lib/cli.js';
import { captureIo } from '../../support/cli.js';
import { idleDataPlaneStatus, statusInput } from '../../support/status-input.js';
import { tempDir } from '../../support/temp-dir.js';

function doc(overrides: Partial<StatusDocument> = {}): StatusDocument {
  return {
    node: 'vm1',
    consul: { mode: 'agent', address: '127.0.0.1:8500', state: 'connected' },
    workloads: [
      {
        name: 'web',
        file: '/w/web.yaml',
        spiffeId: 'spiffe://example.org/ns/default/sa/web',
        port: 8080,
        meshPort: 18080,
        registration: 'registered',
        svid: { state: 'ready', serial: 'ABCDEF0123456789ABCDEF', notAfter: '2099-01-01T00:00:00.000Z' },
        dataPlane: 'serving',
      },
    ],
    workloadErrors: [],
    upstreams: [{ service: 'api', instances: 2, source: 'consul', watch: 'ok', localPort: 9001, caller: 'web', endpoints: 2 }],
    catalogVersion: 3,
    controlPlane: { address: '127.0.0.1:8443', state: 'connected', bundleRoots: 1, bundleSequence: 1 },
    nodeSvid: { state: 'ready', serial: 'FF', notAfter: '2099-01-01T00:00:00.000Z' },
    envoy: { state: 'running', pid: 42, version: '1.40.0', epoch: 0, restarts: 1, adminAddress: '127.0.0.1:15000' },
    xds: {
      socket: '/var/lib/mesh-agent/envoy/ads.sock',
      snapshotVersion: 'abcdef012345',
      streams: [{ id: 1, api: 'delta', node: 'vm1' }],
      counters: {
        sotw: { responses: 0, bytes: 0, resources: 0, removed: 0, acks: 0, nacks: 0 },
        delta: { responses: 5, bytes: 900, resources: 9, removed: 0, acks: 5, nacks: 0 },
      },
      types: [{ type: 'CDS', ackedVersion: 'abcdef012345', ackedAt: '2026-11-22T12:00:00.000Z' }],
    },
    healthy: true,
    problems: [],
    ...overrides,
  };
}

function fakeFetch(body: unknown, status = 200): StatusGet {
  return async () => ({ status, body: JSON.stringify(body) });
}

t.test('human output: the parts an operator reads, exit 0 when healthy', async (t) => {
  const c = captureIo();
  const code = await runCli(
    { name: 'mesh-agent', summary: '', version: '0', commands: [statusCommand(fakeFetch(doc()))] },
    ['status', '--address', '127.0.0.1:1'],
    c.io,
  );
  t.equal(code, 0, c.err());
  const out = c.out();
  t.match(out, /node vm1: healthy/);
  t.match(out, /envoy\s+running, pid 42, version 1\.40\.0, epoch 0, restarts 1/);
  t.match(out, /web\s+spiffe:\/\/example\.org\/ns\/default\/sa\/web\s+18080\s+registered\s+-\s+ready\s+ABCDEF012345…/);
  t.match(out, /api\s+9001\s+web\s+2\s+2\s+consul\s+ok/);
  t.match(out, /CDS\s+abcdef012345\s+-/);
  t.notMatch(out, /problems/);
});

t.test('unhealthy: problems listed, exit 1; --json prints the document', async (t) => {
  const bad = doc({ healthy: false, problems: ['Envoy is backoff'] });
  const c = captureIo();
  const program = { name: 'mesh-agent', summary: '', version: '0', commands: [statusCommand(fakeFetch(bad))] };
  t.equal(await runCli(program, ['status', '--address', '127.0.0.1:1'], c.io), 1);
  t.match(c.out(), /UNHEALTHY[\s\S]*problems:\n {2}- Envoy is backoff/);
  const j = captureIo();
  t.equal(await runCli(program, ['status', '--address', '127.0.0.1:1', '--json'], j.io), 1);
  t.same(JSON.parse(j.out()), bad);
});

t.test('agent not answering, bad flags, --config gives the address', async (t) => {
  const program = (f: StatusGet) => ({ name: 'mesh-agent', summary: '', version: '0', commands: [statusCommand(f)] });
  const c = captureIo();
  const refused: StatusGet = async () => {
    throw new Error('connect ECONNREFUSED');
  };
  t.equal(await runCli(program(refused), ['status', '--address', '127.0.0.1:1'], c.io), 1);
  t.match(c.err(), /MESH_E_AGENT_UNREACHABLE: the agent's status listener at 127\.0\.0\.1:1 did not answer \(connect ECONNREFUSED\)/);
  const u = captureIo();
  t.equal(await runCli(program(refused), ['status', '--address', 'nope'], u.io), 2);
  t.match(u.err(), /--address nope: must be host:port/);
  const dir = await tempDir(t, 'status-cmd-');
  await writeFile(path.join(dir, 'agent.yaml'), 'nodeName: vm1\nstatus: { listen: 127.0.0.1:15999 }\n');
  let asked = '';
  const spy: StatusGet = async (url) => {
    asked = url;
    return { status: 200, body: JSON.stringify(doc()) };
  };
  const s = captureIo();
  t.equal(await runCli(program(spy), ['status', '--config', path.join(dir, 'agent.yaml')], s.io), 0, s.err());
  t.equal(asked, 'http://127.0.0.1:15999/status');

  // A file the agent rejected on reload: status still asks the running agent (its listener from the raw YAML, else the default).
  await writeFile(path.join(dir, 'bad.yaml'), 'nodeName: vm1\nstatus: { listen: 127.0.0.1:15998 }\nlog: { level: loud }\n');
  const b = captureIo();
  t.equal(await runCli(program(spy), ['status', '--config', path.join(dir, 'bad.yaml')], b.io), 0, b.err());
  t.equal(asked, 'http://127.0.0.1:15998/status');
  t.match(
    b.err(),
    /warning: MESH_E_CONFIG_INVALID: .*bad\.yaml: invalid configuration: .*log\.level.*\nwarning: asking the status listener at 127\.0\.0\.1:15998 anyway/,
  );
  await writeFile(path.join(dir, 'worse.yaml'), 'status: [\n');
  const w = captureIo();
  t.equal(await runCli(program(spy), ['status', '--config', path.join(dir, 'worse.yaml')], w.io), 0, w.err());
  t.equal(asked, 'http://127.0.0.1:15100/status', 'unparsable YAML: the default listener');
  const m = captureIo();
  t.equal(await runCli(program(spy), ['status', '--config', path.join(dir, 'missing.yaml')], m.io), 1, 'a missing file is still an error');
});

t.test('statusProblems: each kind of trouble, and a NACK only until the next ACK', async (t) => {
  const now = Date.parse('2026-11-22T12:00:00Z');
  const base = doc();
  const nacked = doc({
    xds: {
      ...(base.xds as NonNullable<StatusDocument['xds']>),
      lastError: 'snapshot abc not served: x',
      streams: [],
      types: [
        {
          type: 'CDS',
          ackedVersion: 'a',
          ackedAt: '2026-11-22T11:00:00.000Z',
          lastNack: { version: 'b', detail: 'bad', at: '2026-11-22T11:30:00.000Z' },
        },
        {
          type: 'EDS',
          ackedVersion: 'c',
          ackedAt: '2026-11-22T11:45:00.000Z',
          lastNack: { version: 'd', detail: 'old', at: '2026-11-22T11:30:00.000Z' },
        },
      ],
    },
    envoy: { state: 'backoff' },
    controlPlane: { address: 'cp:1', state: 'failing', lastError: 'down', bundleRoots: 1, bundleSequence: 1 },
    nodeSvid: { state: 'ready', notAfter: '2026-11-22T11:00:00.000Z' },
    consul: { mode: 'agent', address: 'c:1', state: 'unreachable' },
  });
  nacked.workloads = [
    {
      ...(base.workloads[0] as StatusDocument['workloads'][number]),
      svid: { state: 'failing', error: 'MESH_E_NOT_AUTHORIZED', notAfter: '2026-11-22T11:00:00.000Z' },
      dataPlane: 'waiting for its SVID',
      check: 'critical',
    },
  ];
  t.same(statusProblems(nacked, now), [
    'Consul at c:1 is unreachable',
    'workload web: its check is critical',
    'workload web: cannot get its SVID: MESH_E_NOT_AUTHORIZED',
    'workload web: its SVID expired',
    'workload web: not serving: waiting for its SVID',
    'control plane cp:1 failing: down',
    'the node SVID expired',
    'Envoy is backoff',
    'the latest snapshot was refused: snapshot abc not served: x',
    'Envoy is not connected to the ADS server',
    'Envoy rejected CDS version b: bad',
  ]);
});

t.test('buildStatus without a data plane has no data-plane fields', async (t) => {
  const d = buildStatus(statusInput());
  t.equal(d.envoy, undefined);
  t.equal(d.healthy, true);
});

t.test('SVIDs served from the state folder: the document and the table say where they came from', async (t) => {
  const WEB = 'spiffe://example.org/ns/default/sa/web';
  const notAfter = Date.parse('2026-11-22T13:00:00.000Z');
  // buildStatus reads only these fields of a workload.
  const web = { name: 'web', file: '/w/web.yaml', spiffeId: WEB, port: 8080, meshPort: 18080 } as Workload;
  const d = buildStatus({
    ...statusInput({ workloads: [web] }),
    now: Date.parse('2026-11-22T12:00:00.000Z'),
    dataPlane: {
      envoy: { state: 'running' },
      xds: idleAdsStatus('/run/ads.sock'),
      modelProblems: [],
      upstreams: [],
      serving: [],
      identity: {
        node: { spiffeId: 'spiffe://example.org/mesh/node/vm1', serial: 'AA', notAfter, failures: 0, state: 'ready', source: 'disk' },
        workloads: [
          {
            spiffeId: WEB,
            serial: 'BB',
            notAfter,
            nextRenewalAt: notAfter - 1_000,
            failures: 2,
            lastError: 'MESH_E_CONTROLPLANE_UNAVAILABLE: down',
            state: 'failing',
            source: 'disk',
          },
        ],
        bundle: { sequence: 0, roots: 1 },
        controlPlane: { address: 'cp:1', state: 'failing', lastError: 'MESH_E_CONTROLPLANE_UNAVAILABLE: down' },
      },
    },
  });
  t.same(d.workloads[0]?.svid, {
    state: 'failing',
    serial: 'BB',
    notAfter: '2026-11-22T13:00:00.000Z',
    nextRenewalAt: '2026-11-22T12:59:59.000Z',
    error: 'MESH_E_CONTROLPLANE_UNAVAILABLE: down',
    source: 'disk',
  });
  t.same(d.nodeSvid, { state: 'ready', serial: 'AA', notAfter: '2026-11-22T13:00:00.000Z', source: 'disk' });
  t.match(renderStatus(d), /web\s+spiffe:\/\/example\.org\/ns\/default\/sa\/web\s+18080\s+pending\s+-\s+failing \(disk\)\s+BB/);
  t.match(renderStatus(d), /node SVID {6}ready, serial AA/);
});

t.test('policy in the data plane: the table, the JSON, and the states that are problems', async (t) => {
  const policy = {
    revision: 7,
    origin: 'controlplane' as const,
    resources: [
      { kind: 'AuthorizationPolicy', name: 'api-authz', version: 3, revision: 6, state: 'applied' as const },
      {
        kind: 'TrafficPolicy',
        name: 'api-defaults',
        version: 2,
        revision: 7,
        state: 'rolled-back' as const,
        reason: 'Envoy rejected the configuration it produced (bad cluster); serving version 1 instead',
        servedVersion: 1,
      },
      {
        kind: 'TrafficRoute',
        name: 'api-split',
        version: 1,
        revision: 5,
        state: 'unresolved' as const,
        reason: 'subset v2 (version=v2) selects no instance of api',
      },
    ],
  };
  const d = buildStatus({
    ...statusInput(),
    dataPlane: idleDataPlaneStatus({ policy }),
  });
  t.same(d.dataPlane, { policy }, 'the JSON carries every field under dataPlane.policy');
  t.same(d.problems, [
    'policy TrafficPolicy/api-defaults version 2 rolled-back: Envoy rejected the configuration it produced (bad cluster); serving version 1 instead',
  ]);
  const out = renderStatus(d);
  t.match(out, /policy in the data plane: revision 7 \(controlplane\), 3 resource\(s\)/);
  t.match(out, /POLICY\s+VERSION\s+STATE\s+REASON/);
  t.match(out, /AuthorizationPolicy\/api-authz\s+3\s+applied\s+-/);
  t.match(out, /TrafficPolicy\/api-defaults\s+2 \(serving 1\)\s+rolled-back\s+Envoy rejected/);
  t.match(out, /TrafficRoute\/api-split\s+1\s+unresolved\s+subset v2/);
  t.notMatch(renderStatus(doc()), /policy in the data plane/, 'no policy section without policy');
});

t.test('the policy section: revision and where it came from, in the document and the summary', async (t) => {
  const identity = {
    node: { spiffeId: 'spiffe://example.org/mesh/node/vm1', failures: 0, state: 'ready' as const },
    workloads: [],
    bundle: { sequence: 0, roots: 1 },
    controlPlane: { address: 'cp:1', state: 'connected' as const },
  };
  const base = {
    envoy: { state: 'running' },
    xds: idleAdsStatus('/run/ads.sock'),
    modelProblems: [],
    upstreams: [],
    serving: [],
    identity,
  };
  const fromDisk = buildStatus({
    ...statusInput(),
    dataPlane: {
      ...base,
      policySource: { revision: 7, origin: 'disk', connected: false, lastError: 'MESH_E_CONTROLPLANE_UNAVAILABLE: down', receivedAt: 0 },
    },
  });
  t.same(fromDisk.policy, {
    revision: 7,
    origin: 'disk',
    connected: false,
    lastError: 'MESH_E_CONTROLPLANE_UNAVAILABLE: down',
    receivedAt: '1970-01-01T00:00:00.000Z',
  });
  t.match(renderStatus(fromDisk), /policy {9}revision 7 \(from disk\), watch closed \(MESH_E_CONTROLPLANE_UNAVAILABLE: down\)/);
  const live = buildStatus({
    ...statusInput(),
    dataPlane: { ...base, policySource: { revision: 8, origin: 'controlplane', connected: true } },
  });
  t.match(renderStatus(live), /policy {9}revision 8 \(from the control plane\), watch open, received -/);
  t.equal(buildStatus({ ...statusInput(), dataPlane: base }).policy, undefined, 'no policy source status: no section');
});

t.test('a workload whose mesh port accepts plaintext: the document and the table say so; policy problems are listed', async (t) => {
  const api = {
    name: 'api',
    file: '/w/api.yaml',
    spiffeId: 'spiffe://example.org/ns/default/sa/api',
    port: 9090,
    meshPort: 19090,
  } as Workload;
  const d = buildStatus({
    ...statusInput({ workloads: [api] }),
    dataPlane: {
      envoy: { state: 'running' },
      xds: idleAdsStatus('/run/ads.sock'),
      modelProblems: [{ workload: 'api', part: 'policy', reason: 'policy RateLimit b (a is in force) is not applied' }],
      upstreams: [],
      serving: [],
      plaintextAccepted: [{ workload: 'api', policy: 'api-migrating' }],
      identity: {
        node: { spiffeId: 'spiffe://example.org/mesh/node/vm1', failures: 0, state: 'ready' },
        workloads: [],
        bundle: { sequence: 0, roots: 1 },
        controlPlane: { address: 'cp:1', state: 'connected' },
      },
    },
  });
  t.same(d.workloads[0]?.mtls, { mode: 'permissive', policy: 'api-migrating' });
  t.match(renderStatus(d), /serving \(mTLS permissive: plaintext accepted\)/);
  t.match(renderStatus(d), /warning: workload api accepts plaintext on mesh port 19090 \(PeerAuthentication api-migrating: permissive\)/);
  t.ok(d.problems.includes('workload api: policy RateLimit b (a is in force) is not applied'));
});
