import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { loadAgentConfig } from '../../../agent/config/load.js';
import { joinedTrustDomain, saveNodeIdentity } from '../../../agent/identity/identity-store.js';
import { parseDuration } from '../../../lib/duration.js';
import { isMeshError } from '../../../lib/errors.js';
import { tempDir } from '../../support/temp-dir.js';
import { createTestCa } from '../../support/test-ca.js';

const deps = { hostname: async () => 'host-a', joinedTrustDomain: async () => undefined };

/** The files of this test, each in its own folder under one that goes when the test ends. */
const root = await tempDir(t, 'agent-config-');
let made = 0;

async function fileWith(text: string, name = 'agent.yaml'): Promise<string> {
  made += 1;
  const dir = path.join(root, String(made));
  await mkdir(dir);
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

t.test('durations', async (t) => {
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('5s'), 5000);
  t.equal(parseDuration('2m'), 120000);
  t.equal(parseDuration('1h'), 3600000);
  t.equal(parseDuration('5'), undefined);
  t.equal(parseDuration('1.5s'), undefined);
});

t.test('an empty file gets every default and the hostname as node name', async (t) => {
  const config = await loadAgentConfig(await fileWith(''), deps);
  t.equal(config.nodeName, 'host-a');
  t.equal(config.trustDomain, '', 'not joined, not set: unknown (only run requires it)');
  t.equal(config.dataDir, '/var/lib/mesh-agent');
  t.equal(config.workloadsDir, '/etc/mesh-agent/workloads.d');
  t.same(config.consul, {
    mode: 'agent',
    address: '127.0.0.1:8500',
    token: '',
    datacenter: '',
    retryInitial: 250,
    retryMax: 5000,
    syncInterval: 5000,
    watchWait: 60000,
    coalesceWindow: 25,
  });
  t.same(config.envoy, {
    binary: '/usr/bin/envoy',
    adminPort: 15000,
    api: 'delta',
    concurrency: 2,
    logLevel: 'warning',
    drainTime: 5000,
    restartBackoffInitial: 1000,
    restartBackoffMax: 30000,
    accessLog: false,
  });
  t.same(config.dataPlane, { enabled: true });
  t.same(config.controlPlane, { caBundle: '/etc/mesh-agent/ca-bundle.pem' }, 'no control plane address: the one stored at join is used');
  t.equal(config.status.listen, '127.0.0.1:15100');
  t.equal(config.mesh.inboundPortOffset, 10000);
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.consul), 'frozen');
});

t.test('the issue example parses; JSON works too', async (t) => {
  const yaml = `nodeName: vm1
trustDomain: example.org
dataDir: /tmp/x
workloadsDir: /tmp/w
controlPlane: { address: cp.example.internal:8443, caBundle: /etc/mesh-agent/ca-bundle.pem }
consul: { address: 127.0.0.1:8500, token: "abc", datacenter: "dc2", mode: catalog, retryMax: 2s }
envoy: { binary: /usr/bin/envoy, adminPort: 15000 }
status: { listen: 127.0.0.1:15100 }
`;
  const config = await loadAgentConfig(await fileWith(yaml), deps);
  t.equal(config.nodeName, 'vm1');
  t.equal(config.consul.mode, 'catalog');
  t.equal(config.consul.token, 'abc');
  t.equal(config.consul.retryMax, 2000);
  const json = await loadAgentConfig(await fileWith(JSON.stringify({ nodeName: 'vm2', consul: { datacenter: 'x' } }), 'a.json'), deps);
  t.equal(json.nodeName, 'vm2');
  t.equal(json.consul.datacenter, 'x');
});

t.test('the token can come from a file', async (t) => {
  const tokenFile = await fileWith('secret-token\n', 'token');
  const config = await loadAgentConfig(await fileWith(`consul: { token: x, tokenFile: ${tokenFile} }`), deps);
  t.equal(config.consul.token, 'secret-token');
  t.notOk('tokenFile' in config.consul);
  const err = await loadAgentConfig(await fileWith('consul: { tokenFile: /nonexistent/token }'), deps).catch((e) => e);
  t.ok(isMeshError(err, 'MESH_E_CONFIG_INVALID'));
  t.match(err.message, /consul\.tokenFile/);
});

t.test('errors name the file and the field path', async (t) => {
  const file = await fileWith('consul: { adress: x, mode: local }\ntrustDomain: "Bad:Domain"\nstatus: { listen: nope }\nconsul2: 1\n');
  const err = await loadAgentConfig(file, deps).catch((e) => e);
  t.ok(isMeshError(err, 'MESH_E_CONFIG_INVALID'));
  t.match(err.message, file);
  const paths = (err.details.issues as Array<{ path: string }>).map((i) => i.path).sort();
  t.same(paths, ['consul.adress', 'consul.mode', 'consul2', 'status.listen', 'trustDomain']);
  const dur = await loadAgentConfig(await fileWith('consul: { syncInterval: 5 }'), deps).catch((e) => e);
  t.match(dur.details.issues, [{ path: 'consul.syncInterval' }]);
  const zero = await loadAgentConfig(await fileWith('consul: { syncInterval: 0s }'), deps).catch((e) => e);
  t.match(zero.details.issues, [{ path: 'consul.syncInterval', message: /greater than zero/ }]);
});

t.test('advertiseAddress6: absent (the host default), an IPv6 address, or "none"; anything else names the field', async (t) => {
  t.equal((await loadAgentConfig(await fileWith(''), deps)).advertiseAddress6, undefined);
  t.equal((await loadAgentConfig(await fileWith('advertiseAddress6: "fd00:77::2"'), deps)).advertiseAddress6, 'fd00:77::2');
  t.equal((await loadAgentConfig(await fileWith('advertiseAddress6: none'), deps)).advertiseAddress6, 'none');
  for (const bad of ['10.0.0.1', 'fe80::1%eth0', 'host.example.org', '""']) {
    const err = await loadAgentConfig(await fileWith(`advertiseAddress6: ${bad}`), deps).catch((e) => e);
    t.ok(isMeshError(err, 'MESH_E_CONFIG_INVALID'), bad);
    t.match(err.details.issues, [{ path: 'advertiseAddress6', message: /IPv6 address/ }], bad);
  }
});

t.test('an empty hostname needs nodeName', async (t) => {
  const err = await loadAgentConfig(await fileWith(''), { hostname: async () => '' }).catch((e) => e);
  t.ok(isMeshError(err, 'MESH_E_CONFIG_INVALID'));
  t.match(err.message, /nodeName/);
});

t.test('the trust domain comes from the join', async (t) => {
  const joined = { ...deps, joinedTrustDomain: async () => 'joined.example' };
  t.equal((await loadAgentConfig(await fileWith(''), joined)).trustDomain, 'joined.example', 'no trustDomain in the file: the joined one');
  t.equal(
    (await loadAgentConfig(await fileWith('trustDomain: joined.example\n'), joined)).trustDomain,
    'joined.example',
    'the same one in the file is fine',
  );
  const file = await fileWith('trustDomain: other.example\n');
  const err = await loadAgentConfig(file, joined).catch((e: unknown) => e);
  t.ok(isMeshError(err, 'MESH_E_TRUST_DOMAIN_MISMATCH'), 'a different configured one is a start-up error with its own code');
  t.match(
    String((err as Error).message),
    new RegExp(`${file}: trustDomain is other.example, but this host joined the trust domain joined.example`),
  );
  t.equal((await loadAgentConfig(file, deps)).trustDomain, 'other.example', 'not joined: the configured one (data plane off)');
  const unknown = await loadAgentConfig(await fileWith(''), { ...deps, requireTrustDomain: true }).catch((e: unknown) => e);
  t.ok(isMeshError(unknown, 'MESH_E_NOT_JOINED'), 'run with neither: not joined');
  t.match(String((unknown as Error).message), /run mesh-agent join first/);
});

t.test('the joined trust domain is read from the node SVID in dataDir', async (t) => {
  const dataDir = await tempDir(t, 'agent-config-joined-');
  t.equal(await joinedTrustDomain(dataDir), undefined, 'not joined');
  const ca = await createTestCa('svid.example');
  const node = ca.issue('spiffe://svid.example/mesh/node/vm1');
  await saveNodeIdentity(dataDir, {
    controlPlane: '127.0.0.1:1',
    trustDomain: 'svid.example',
    spiffeId: 'spiffe://svid.example/mesh/node/vm1',
    keyPem: node.keyPem,
    chainPem: node.chainPem,
    bundlePem: ca.bundlePem,
  });
  t.equal(await joinedTrustDomain(dataDir), 'svid.example');
  const file = await fileWith(`dataDir: ${dataDir}\n`);
  t.equal((await loadAgentConfig(file, { hostname: deps.hostname, requireTrustDomain: true })).trustDomain, 'svid.example');
});
