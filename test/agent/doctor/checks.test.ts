/**
 * Doctor's checks against the shared fake probes: each problem the real-world
 * tests cannot easily make (a newer or older Envoy, no CAP_NET_ADMIN, no
 * iptables, a port held by a stranger, a pending NACK, capture drift, clock
 * skew, an overdue renewal, Consul without a leader) gets its level and fix;
 * the runner survives a check that throws; the renderer's layout.
 */
import path from 'node:path';
import t from 'tap';
import { type AgentConfig, agentConfigSchema } from '../../../agent/config/schema.js';
import { dataDirCheck, envoyBinaryCheck, iptablesCheck, portsCheck, wantedPorts } from '../../../agent/doctor/checks-host.js';
import { clockSkewCheck, nodeSvidCheck, nodeSvidState } from '../../../agent/doctor/checks-identity.js';
import { captureDriftCheck, consulCheck, envoyAdminCheck, pendingNacks } from '../../../agent/doctor/checks-live.js';
import type { DoctorContext, RunningAgent } from '../../../agent/doctor/doctor-types.js';
import { parseProcNet } from '../../../agent/doctor/proc-sockets.js';
import { renderReport } from '../../../agent/doctor/render.js';
import { runChecks } from '../../../agent/doctor/runner.js';
import type { StatusDocument } from '../../../agent/status/status.js';
import type { Workload } from '../../../agent/workloads/workload.js';
import { validateConfig } from '../../../lib/config-file.js';
import { deepFreeze } from '../../../lib/deep-freeze.js';
import { clockSkew } from '../../../lib/server-time.js';
import { FakeDoctorProbes } from '../../fakes/doctor-probes.js';
import { createTestCa } from '../../support/test-ca.js';

const DATA = '/var/lib/mesh-agent';
const ID = path.join(DATA, 'identity');

function config(input: Record<string, unknown> = {}): AgentConfig {
  const parsed = validateConfig(agentConfigSchema(), { dataDir: DATA, ...input }, 'test');
  return deepFreeze({ ...parsed, nodeName: 'vm1', trustDomain: 'example.org', consul: { ...parsed.consul } }) as AgentConfig;
}

const api = { name: 'api', port: 8080, meshPort: 18080 } as unknown as Workload;

function ctx(probes: FakeDoctorProbes, over: Partial<DoctorContext> = {}): DoctorContext {
  return {
    configFile: '/etc/mesh-agent/agent.yaml',
    config: config(),
    workloads: [api],
    agent: undefined,
    probes,
    now: () => Date.now(),
    ...over,
  };
}

function running(status: Partial<StatusDocument> = {}): RunningAgent {
  return { status: { healthy: true, problems: [], ...status } as StatusDocument, pid: 100, envoyPid: 200 };
}

t.test('envoy-binary: the supported line passes, a newer minor warns, an older one and a non-executable fail', async (t) => {
  const p = new FakeDoctorProbes();
  t.match(await envoyBinaryCheck.run(ctx(p)), { level: 'pass', detail: 'Envoy 1.40.0 at /usr/bin/envoy' });
  t.same(p.calls, ['run /usr/bin/envoy --version']);
  p.envoyRun = { kind: 'ran', code: 0, output: 'envoy  version: 0abc/1.41.2/Clean/RELEASE/BoringSSL' };
  t.match(await envoyBinaryCheck.run(ctx(p)), { level: 'warn', detail: /newer than the tested 1\.40\.x/ });
  p.envoyRun = { kind: 'ran', code: 0, output: 'envoy  version: 0abc/1.38.0/Clean/RELEASE/BoringSSL' };
  t.match(await envoyBinaryCheck.run(ctx(p)), { level: 'fail', detail: /is not 1\.40\.x/ });
  p.envoyRun = { kind: 'failed', reason: 'EACCES' };
  t.match(await envoyBinaryCheck.run(ctx(p)), { level: 'fail', fix: 'chmod 0755 /usr/bin/envoy' });
  t.match(await envoyBinaryCheck.run(ctx(p, { config: config({ dataPlane: { enabled: false } }) })), {
    level: 'pass',
    detail: /runs no Envoy/,
  });
});

t.test('iptables: only with capture on; no iptables and no CAP_NET_ADMIN fail with their fixes', async (t) => {
  const p = new FakeDoctorProbes();
  t.match(await iptablesCheck.run(ctx(p)), { level: 'pass', detail: /no iptables needed/ });
  const on = config({ transparentProxy: { enabled: true } });
  p.procStatuses.set('self', 'CapEff:\t0000000000000000\n');
  t.match(await iptablesCheck.run(ctx(p, { config: on })), {
    level: 'fail',
    detail: /this doctor process .* lacks CAP_NET_ADMIN/,
    fix: /AmbientCapabilities=CAP_NET_ADMIN/,
  });
  p.procStatuses.set(100, 'CapEff:\t0000000000001000\n');
  t.match(await iptablesCheck.run(ctx(p, { config: on, agent: running() })), {
    level: 'pass',
    detail: 'backend nft; the agent (pid 100) has CAP_NET_ADMIN',
  });
  p.backendResult = new Error('iptables-nft-save not found');
  t.match(await iptablesCheck.run(ctx(p, { config: on })), { level: 'fail', fix: /install iptables/ });
});

t.test('ports: a stranger holding one fails and names it; ours pass', async (t) => {
  const p = new FakeDoctorProbes();
  const c = ctx(p);
  t.same(
    wantedPorts(c).map((w) => `${w.port}/${w.protocol} ${w.key}`),
    ['15100/tcp status.listen', '15000/tcp envoy.adminPort', '18080/tcp meshPort of workload api'],
  );
  t.match(await portsCheck.run(c), { level: 'pass', detail: /^the agent is not running; 0 held by the agent or its Envoy, 3 free/ });
  p.sockets_ = [
    { protocol: 'tcp', address: '0100007F', port: 15000, inode: '11' },
    { protocol: 'tcp', address: '00000000', port: 18080, inode: '12' },
    { protocol: 'udp', address: '00000000', port: 18080, inode: '13' },
  ];
  p.socketOwners.set('11', { pid: 200, name: 'envoy' });
  p.socketOwners.set('12', { pid: 999, name: 'nginx' });
  t.match(await portsCheck.run(ctx(p, { agent: running() })), {
    level: 'fail',
    detail: 'tcp 18080 (meshPort of workload api) is held by nginx (pid 999)',
    fix: /stop that process, or set the named key to a free port/,
  });
  p.socketOwners.delete('12');
  t.match(await portsCheck.run(ctx(p, { agent: running() })), { level: 'warn', detail: /cannot see: tcp 18080/ });
});

t.test('data-dir: wrong owner of the key against the running agent', async (t) => {
  const p = new FakeDoctorProbes();
  p.stats.set(DATA, { mode: 0o710, uid: 998, gid: 998, isDirectory: true });
  p.stats.set(ID, { mode: 0o700, uid: 998, gid: 998, isDirectory: true });
  p.stats.set(path.join(ID, 'node.key'), { mode: 0o600, uid: 0, gid: 0, isDirectory: false });
  p.files.set('/etc/passwd', 'root:x:0:0::/root:/bin/sh\nmesh-agent:x:998:998::/var/lib/mesh-agent:/usr/sbin/nologin\n');
  p.procStatuses.set(100, 'Uid:\t998\t998\t998\t998\n');
  t.match(await dataDirCheck.run(ctx(p, { agent: running() })), {
    level: 'fail',
    detail: `${ID}/node.key is owned by uid 0, not the agent's user mesh-agent`,
    fix: `chown -R mesh-agent ${ID}/node.key`,
  });
  p.stats.set(path.join(ID, 'node.key'), { mode: 0o600, uid: 998, gid: 998, isDirectory: false });
  t.match(await dataDirCheck.run(ctx(p, { agent: running() })), { level: 'pass', detail: /owned by mesh-agent$/ });
});

t.test('clock skew: measured from the server time header; warn past 2 s, fail past 60 s', async (t) => {
  t.same(clockSkew({ serverMs: 1000, sentMs: 5000, receivedMs: 5010 }), { skewMs: 4005, uncertaintyMs: 5 });
  const p = new FakeDoctorProbes();
  p.files.set(path.join(ID, 'node.json'), '{"controlPlane":"10.0.0.1:8443"}');
  p.files.set(path.join(ID, 'bundle.pem'), 'PEM');
  t.match(await clockSkewCheck.run(ctx(p)), { level: 'pass', data: { skewMs: 5, uncertaintyMs: 5 } });
  p.time = { serverMs: 0, sentMs: 5000, receivedMs: 5010 };
  t.match(await clockSkewCheck.run(ctx(p)), {
    level: 'warn',
    detail: /5005 ms ahead of the control plane's/,
    fix: /timedatectl set-ntp true/,
  });
  p.time = { serverMs: 120_000, sentMs: 0, receivedMs: 10 };
  t.match(await clockSkewCheck.run(ctx(p)), { level: 'fail', detail: /119995 ms behind/ });
  p.time = undefined;
  t.match(await clockSkewCheck.run(ctx(p)), { level: 'warn', detail: /not measured/ });
});

t.test('node SVID: valid, renewal overdue, expired; the chain must lead to the bundle', async (t) => {
  const ca = await createTestCa('example.org');
  const other = await createTestCa('example.org');
  const node = ca.issue('spiffe://example.org/mesh/node/vm1', 3_600_000);
  const now = Date.now();
  t.match(nodeSvidState(node.chainPem, ca.bundlePem, now), { ok: true, spiffeId: 'spiffe://example.org/mesh/node/vm1' });
  t.match(nodeSvidState(node.chainPem, other.bundlePem, now), { ok: false, reason: /does not chain to a root/ });
  t.match(nodeSvidState(node.chainPem, ca.bundlePem, now + 2 * 3_600_000), { ok: false, expired: true, reason: /it expired at/ });
  const p = new FakeDoctorProbes();
  p.files.set(path.join(ID, 'node.pem'), node.chainPem);
  p.files.set(path.join(ID, 'bundle.pem'), ca.bundlePem);
  t.match(await nodeSvidCheck.run(ctx(p)), { level: 'pass', detail: /expires in (59|60)m/ });
  t.match(await nodeSvidCheck.run(ctx(p, { now: () => now + 50 * 60_000 })), { level: 'warn', detail: /renewal is overdue/ });
  t.match(await nodeSvidCheck.run(ctx(p, { now: () => now + 2 * 3_600_000 })), { level: 'fail', fix: /mesh-agent join --force/ });
});

t.test('in kubernetes mode the fixes say there is no join: the agent attests with the pod token at start', async (t) => {
  const kube = config({
    controlPlane: { address: 'cp.example.org:8443' },
    kubernetes: { mode: 'sidecar', tokenFiles: ['/var/run/secrets/mesh/token'] },
  });
  const p = new FakeDoctorProbes();
  const missing = await nodeSvidCheck.run(ctx(p, { config: kube }));
  t.match(missing, {
    level: 'fail',
    fix: /no join: start the agent \(mesh-agent run\); it attests with the token in \/var\/run\/secrets\/mesh\/token/,
  });
  t.notMatch(missing.fix, /mesh-agent join/);
  t.match(await dataDirCheck.run(ctx(p, { config: kube })), { level: 'fail', fix: /kubernetes\.attestation\.allow/ });
  t.match(await nodeSvidCheck.run(ctx(p)), { level: 'fail', fix: /run mesh-agent join/ }, 'a joined-mode agent still gets the join fix');
});

t.test('consul: unreachable, no leader, read-only authorization of the workload services (and the node in catalog mode)', async (t) => {
  const p = new FakeDoctorProbes();
  t.match(await consulCheck.run(ctx(p)), { level: 'pass', detail: /the token may write service api/ });
  t.same(p.calls, ['consul GET /v1/status/leader', 'consul POST /v1/internal/acl/authorize'], 'reads only');
  p.calls = [];
  await consulCheck.run(ctx(p, { config: config({ consul: { mode: 'catalog' } }) }));
  t.match(await consulCheck.run(ctx(p, { config: config({ consul: { mode: 'catalog' } }) })), { detail: /service api, node vm1/ });
  p.consulAnswers.set('GET /v1/status/leader', { status: 200, body: '""' });
  t.match(await consulCheck.run(ctx(p)), { level: 'fail', detail: /has no leader/ });
  p.consulAnswers.set('GET /v1/status/leader', new Error('fetch failed'));
  t.match(await consulCheck.run(ctx(p)), { level: 'fail', detail: /does not answer/, fix: /systemctl start consul/ });
});

t.test('envoy-admin: not running warns; a NACK after the latest ACK fails with its detail', async (t) => {
  const p = new FakeDoctorProbes();
  t.match(await envoyAdminCheck.run(ctx(p)), { level: 'warn', fix: /systemctl start mesh-agent/ });
  const xds = {
    socket: 's',
    streams: [],
    counters: {} as never,
    types: [
      {
        type: 'CDS',
        ackedVersion: 'v2',
        ackedAt: '2026-01-01T00:00:02Z',
        lastNack: { version: 'v1', detail: 'old', at: '2026-01-01T00:00:01Z' },
      },
      {
        type: 'LDS',
        ackedVersion: 'v1',
        ackedAt: '2026-01-01T00:00:01Z',
        lastNack: { version: 'v2', detail: 'bad\n listener', at: '2026-01-01T00:00:03Z' },
      },
    ],
  };
  const agent = running({ xds, envoy: { state: 'running' } });
  t.same(pendingNacks(agent.status), [{ type: 'LDS', version: 'v2', detail: 'bad listener' }]);
  t.match(await envoyAdminCheck.run(ctx(p, { agent })), { level: 'fail', detail: 'Envoy rejected LDS version v2: bad listener' });
  p.envoyAdminAnswer = new Error('connect ECONNREFUSED');
  t.match(await envoyAdminCheck.run(ctx(p, { agent })), { level: 'fail', detail: /does not answer .* the agent says Envoy is running/ });
});

t.test('capture-drift: drift fails with the rules; in sync passes', async (t) => {
  const p = new FakeDoctorProbes();
  const on = config({ transparentProxy: { enabled: true } });
  t.match(await captureDriftCheck.run(ctx(p, { config: on })), { level: 'warn', detail: /the agent is not running/ });
  t.match(await captureDriftCheck.run(ctx(p, { config: on, agent: running() })), {
    level: 'pass',
    detail: '10 rules installed as expected (backend nft)',
  });
  p.inspection = { expected: 10, installed: 9, missing: ['ipv4 nat -A MESH_OUTPUT -j X'], unexpected: [] };
  t.match(await captureDriftCheck.run(ctx(p, { config: on, agent: running() })), {
    level: 'fail',
    detail: 'capture rules drifted: 1 missing, 0 unexpected (backend nft)',
    data: { missing: ['ipv4 nat -A MESH_OUTPUT -j X'] },
  });
});

t.test('the runner turns a throwing check into a fail; the renderer prints PASS/WARN/FAIL lines and fixes', async (t) => {
  const p = new FakeDoctorProbes();
  const report = await runChecks(ctx(p), [
    envoyBinaryCheck,
    { id: 'boom', title: 'throws', run: async () => Promise.reject(new Error('kaput')) },
    envoyAdminCheck,
  ]);
  t.same(report.counts, { pass: 1, warn: 1, fail: 1 });
  t.equal(report.ok, false);
  t.match(report.checks[1], { level: 'fail', detail: 'the check itself failed: MESH_E_INTERNAL: kaput' });
  t.equal(
    renderReport(report),
    [
      'mesh-agent doctor: /etc/mesh-agent/agent.yaml (agent not running)',
      '',
      'PASS  envoy-binary  Envoy 1.40.0 at /usr/bin/envoy',
      'FAIL  boom          the check itself failed: MESH_E_INTERNAL: kaput',
      '                    fix: run mesh-agent doctor as root; if it persists, report it with this output',
      'WARN  envoy-admin   not checked: nothing answers at status.listen 127.0.0.1:15100',
      '                    fix: start the agent (systemctl start mesh-agent), then run doctor again',
      '',
      '3 checks: 1 pass, 1 warn, 1 fail',
      '',
    ].join('\n'),
  );
});

t.test('/proc/net parsing: TCP LISTEN and bound UDP sockets only', async (t) => {
  const tcp = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:3A98 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0',
    '   1: 0100007F:3A98 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 100 0 0 10 0',
  ].join('\n');
  t.same(parseProcNet(tcp, 'tcp'), [{ protocol: 'tcp', address: '0100007F', port: 15000, inode: '4242' }]);
  const udp = [
    '  sl  local_address rem_address   st',
    '  1: 00000000:3ACD 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 77 2',
  ].join('\n');
  t.same(parseProcNet(udp, 'udp'), [{ protocol: 'udp', address: '00000000', port: 15053, inode: '77' }]);
});

t.test('an unreadable identity (doctor run as another user) is said as such, not as "not joined"', async (t) => {
  const p = new FakeDoctorProbes();
  p.host.readText = async (file: string) => {
    throw Object.assign(new Error(`EACCES: permission denied, open '${file}'`), { code: 'EACCES' });
  };
  const report = await runChecks(ctx(p), [nodeSvidCheck]);
  t.match(report.checks[0], {
    level: 'fail',
    detail: /the check itself failed: .*EACCES: permission denied/,
    fix: /run mesh-agent doctor as root/,
  });
});
