/**
 * The running agent's identities against a real in-process control plane:
 * workload SVIDs fetched with keys made on the host and stored in the state
 * folder, one refused ID failing alone, dropped IDs forgotten (their files
 * removed), renewals of workload and node SVIDs (the node
 * key and certificate saved to disk), a CA rotation reaching the bundle, and
 * the bundle watch reopening after the control plane restarts.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { connectControlPlane } from '../../../agent/identity/cp-client.js';
import { loadNodeIdentity } from '../../../agent/identity/identity-store.js';
import { createWorkloadIdentities, type WorkloadIdentities } from '../../../agent/identity/workload-identities.js';
import { systemClock } from '../../../lib/clock.js';
import { createLogger } from '../../../lib/logger.js';
import { uriSans } from '../../../lib/x509/cert-info.js';
import { fromPemAll } from '../../../lib/x509/pem.js';
import { chainsToBundle } from '../../support/chain-checks.js';
import { connectAdmin, joinedClient, startTestControlPlane, type TestControlPlane } from '../../support/controlplane.js';
import { tempDir } from '../../support/temp-dir.js';
import { waitFor } from '../../support/wait.js';

t.setTimeout(180_000);

const ALLOW = ['spiffe://example.org/ns/default/sa/*'];
const WEB = 'spiffe://example.org/ns/default/sa/web';
const API = 'spiffe://example.org/ns/default/sa/api';
const OTHER = 'spiffe://example.org/ns/other/sa/db';
const FAST = { backoff: { initialMs: 100, maxMs: 1_000 }, watchdogMs: 500 };

/**
 * A control plane stopped at teardown after the agents: its graceful stop waits for open
 * bundle watches, so an agent still watching would hold it up.
 */
async function controlPlane(t: Test, options: Parameters<typeof startTestControlPlane>[0] = {}) {
  const agents: WorkloadIdentities[] = [];
  const tcp = await startTestControlPlane(options);
  t.teardown(async () => {
    for (const agent of agents) await agent.stop();
    await tcp.stop();
  });
  return { tcp, agents };
}

/** Joins a node allowed ALLOW and starts its identities; log lines are kept. */
async function agentOn(
  t: Test,
  tcp: TestControlPlane,
  agents: WorkloadIdentities[],
  options: { address?: string; node?: string; connect?: typeof connectControlPlane } = {},
) {
  const dataDir = await tempDir(t);
  const { node = 'vm1', ...rest } = options;
  (await joinedClient(tcp, node, ALLOW, dataDir)).close();
  const lines: string[] = [];
  const ids = createWorkloadIdentities({
    dataDir,
    ...rest,
    clock: systemClock,
    log: createLogger({ level: 'debug', sink: { write: (line) => lines.push(line) } }),
    rotation: FAST,
  });
  agents.push(ids);
  // Teardowns run last-registered first: this one stops the agent (and waits for its disk writes) before its folder goes.
  t.teardown(() => ids.stop());
  let changes = 0;
  ids.onChange(() => changes++);
  await ids.start();
  return { ids, dataDir, lines, changes: () => changes };
}

const serialOf = (ids: WorkloadIdentities, id: string) => {
  const pem = ids.current().certs.get(id)?.chainPem;
  return pem === undefined ? undefined : new X509Certificate(pem).serialNumber;
};
const stateOf = (ids: WorkloadIdentities, id: string) => ids.states().workloads.find((w) => w.spiffeId === id);

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

t.test('start before join fails with MESH_E_NOT_JOINED', async (t) => {
  const ids = createWorkloadIdentities({ dataDir: t.testdir({}), clock: systemClock, log: createLogger({ sink: { write: () => {} } }) });
  await t.rejects(ids.start(), { code: 'MESH_E_NOT_JOINED' });
  t.equal(ids.states().node.state, 'pending');
  await ids.stop();
});

t.test('fetches wanted SVIDs, fails a refused one alone, drops removed ones, follows a CA rotation', async (t) => {
  const { tcp, agents } = await controlPlane(t);
  const { ids, dataDir, lines, changes } = await agentOn(t, tcp, agents);
  await waitFor(async () => (ids.states().controlPlane.state === 'connected' ? true : undefined), {
    timeoutMs: 20_000,
    what: 'the bundle watch',
  });
  t.equal(ids.states().node.state, 'ready');

  ids.setWanted([WEB, API, OTHER]);
  await waitFor(async () => (ids.current().certs.size === 2 && stateOf(ids, OTHER)?.state === 'failing' ? true : undefined), {
    timeoutMs: 20_000,
    what: 'two SVIDs and one refusal',
  });
  const { certs, bundlePem } = ids.current();
  for (const id of [WEB, API]) {
    const material = certs.get(id);
    if (material === undefined) throw new Error(`no SVID for ${id}`);
    const leaf = new X509Certificate(material.chainPem);
    t.same(uriSans(leaf), [id], `${id}: the leaf carries exactly its SPIFFE ID`);
    t.ok(chainsToBundle(material.chainPem, bundlePem), `${id}: chains to the bundle`);
    t.ok(leaf.checkPrivateKey(createPrivateKey(material.keyPem)), `${id}: the key matches the certificate`);
    t.match(stateOf(ids, id), { state: 'ready', failures: 0, serial: leaf.serialNumber });
  }
  t.not(certs.get(WEB)?.keyPem, certs.get(API)?.keyPem, 'a key per SVID');
  t.match(stateOf(ids, OTHER), { state: 'failing', lastError: /^MESH_E_NOT_AUTHORIZED/ });
  t.ok((stateOf(ids, OTHER)?.failures ?? 0) >= 1);
  t.ok(changes() >= 2, 'onChange fired for each SVID obtained');
  // Retried with backoff, still refused, while the others stay held.
  await waitFor(async () => ((stateOf(ids, OTHER)?.failures ?? 0) >= 3 ? true : undefined), { timeoutMs: 20_000, what: 'retries' });
  t.equal(ids.current().certs.size, 2);

  const nodeFiles = ['identity/bundle.pem', 'identity/node.json', 'identity/node.key', 'identity/node.pem'];
  const stored = (...names: string[]) => names.flatMap((n) => [`identity/workloads/${n}/svid.key`, `identity/workloads/${n}/svid.pem`]);
  await waitFor(async () => ((await filesUnder(dataDir)).length === 8 ? true : undefined), { what: 'the workload SVIDs saved' });
  t.same(
    (await filesUnder(dataDir)).sort(),
    [...nodeFiles, ...stored('example.org+ns+default+sa+api', 'example.org+ns+default+sa+web')],
    'the SVIDs held and their keys are stored; nothing for the refused ID',
  );
  const logText = lines.join('\n');
  t.notMatch(logText, /PRIVATE KEY|BEGIN CERTIFICATE/, 'no PEM in the logs');

  // Dropping API (and OTHER): gone from current() and states(); onChange fires.
  const before = changes();
  ids.setWanted([WEB]);
  t.same([...ids.current().certs.keys()], [WEB]);
  t.same(
    ids.states().workloads.map((w) => w.spiffeId),
    [WEB],
  );
  t.ok(changes() > before, 'onChange fired for the dropped SVID');
  await waitFor(async () => ((await filesUnder(dataDir)).length === 6 ? true : undefined), { what: 'the files of API removed' });
  t.same((await filesUnder(dataDir)).sort(), [...nodeFiles, ...stored('example.org+ns+default+sa+web')], 'the files of API are removed');

  // CA rotation: prepare puts the new root in the bundle; the agent gets it, saves it, and reconnects trusting it.
  const admin = connectAdmin(tcp.dataDir);
  t.teardown(() => admin.close());
  const sequence = ids.states().bundle.sequence;
  const beforeRotation = changes();
  await admin.call('RotateCa', { step: 'prepare', force: false });
  await waitFor(async () => (ids.states().bundle.roots === 2 ? true : undefined), { timeoutMs: 20_000, what: 'the prepared root' });
  t.ok(ids.states().bundle.sequence > sequence, 'the bundle sequence moved on');
  t.ok(ids.states().bundle.updatedAt !== undefined);
  t.equal(fromPemAll(ids.current().bundlePem).length, 2, 'current() holds both roots');
  t.ok(changes() > beforeRotation, 'onChange fired for the bundle');
  await waitFor(
    async () => (fromPemAll(await readFile(path.join(dataDir, 'identity', 'bundle.pem'), 'utf8')).length === 2 ? true : undefined),
    {
      what: 'the bundle saved to disk',
    },
  );

  // After activation new SVIDs come from the new CA and still chain to the bundle held.
  await admin.call('RotateCa', { step: 'activate', force: false });
  const newRoot = tcp.cp.ca.active().root;
  ids.setWanted([WEB, API]);
  await waitFor(async () => (ids.current().certs.has(API) ? true : undefined), { timeoutMs: 20_000, what: 'an SVID from the new CA' });
  const api = ids.current().certs.get(API)?.chainPem ?? '';
  t.ok(chainsToBundle(api, newRoot.toString()), 'the new SVID chains to the new root');
  t.ok(chainsToBundle(api, ids.current().bundlePem), 'and to the bundle held');
});

t.test('a dropped ID does not come back from a late answer; a certificate for another ID is refused', async (t) => {
  const { tcp, agents } = await controlPlane(t);
  const LATE = 'spiffe://example.org/ns/default/sa/late';
  const SWAPPED = 'spiffe://example.org/ns/default/sa/swapped';
  // The client answers a request for SWAPPED with a (real) SVID for API, and notes each answer.
  const answered = new Set<string>();
  const connect: typeof connectControlPlane = (options) => {
    const client = connectControlPlane(options);
    return {
      ...client,
      signWorkload: async (id, csr) => {
        const svid = await client.signWorkload(id === SWAPPED ? API : id, csr);
        answered.add(id);
        return svid;
      },
    };
  };
  const { ids, changes } = await agentOn(t, tcp, agents, { connect });
  ids.setWanted([WEB, LATE, SWAPPED]);
  ids.setWanted([WEB, SWAPPED]);
  await waitFor(async () => (answered.has(LATE) ? true : undefined), { timeoutMs: 20_000, what: 'the answer for the dropped ID' });
  await waitFor(async () => (ids.current().certs.has(WEB) && stateOf(ids, SWAPPED)?.state === 'failing' ? true : undefined), {
    timeoutMs: 20_000,
    what: 'WEB held and SWAPPED refused',
  });
  await new Promise((resolve) => setImmediate(resolve));
  t.same([...ids.current().certs.keys()], [WEB], 'only WEB is held: the late answer for the dropped ID was thrown away');
  t.same(
    ids.states().workloads.map((w) => w.spiffeId),
    [SWAPPED, WEB],
  );
  t.equal(changes(), 1, 'onChange fired for WEB only');
  t.match(stateOf(ids, SWAPPED), {
    state: 'failing',
    lastError: /^MESH_E_CERT_INVALID: .*not spiffe:\/\/example.org\/ns\/default\/sa\/swapped/,
  });
  t.notOk(ids.current().certs.has(SWAPPED));
});

t.test('renews workload and node SVIDs; the new node key and certificate are saved', async (t) => {
  // Long enough that a loaded machine still starts the agent before the node SVID from the join expires.
  const { tcp, agents } = await controlPlane(t, { svidTtl: '10s', nodeSvidTtl: '12s' });
  const { ids, dataDir, changes } = await agentOn(t, tcp, agents);
  const joined = await loadNodeIdentity(dataDir);
  ids.setWanted([WEB]);
  const first = await waitFor(async () => ids.current().certs.get(WEB), { timeoutMs: 20_000, what: 'the first SVID' });
  const firstSerial = new X509Certificate(first.chainPem).serialNumber;
  const changesBefore = changes();

  await waitFor(async () => (serialOf(ids, WEB) !== firstSerial ? true : undefined), { timeoutMs: 30_000, what: 'a workload renewal' });
  const renewed = ids.current().certs.get(WEB);
  t.not(renewed?.keyPem, first.keyPem, 'a new key with the renewed SVID');
  t.ok(changes() > changesBefore, 'onChange fired for the renewal');
  t.ok(chainsToBundle(renewed?.chainPem ?? '', ids.current().bundlePem));

  // Two node renewals: the second one authenticates with the certificate the first one got.
  const joinedSerial = new X509Certificate(joined.chainPem).serialNumber;
  const seen = new Set<string>();
  await waitFor(
    async () => {
      const serial = ids.states().node.serial;
      if (serial !== undefined && serial !== joinedSerial) seen.add(serial);
      return seen.size >= 2 && ids.states().node.failures === 0 ? true : undefined;
    },
    { timeoutMs: 40_000, intervalMs: 20, what: 'two node renewals' },
  );
  const onDisk = await waitFor(
    async () => {
      const stored = await loadNodeIdentity(dataDir);
      return new X509Certificate(stored.chainPem).serialNumber === ids.states().node.serial ? stored : undefined;
    },
    { what: 'the renewed node SVID on disk' },
  );
  t.not(onDisk.keyPem, joined.keyPem, 'a new node key on disk');
  t.ok(new X509Certificate(onDisk.chainPem).checkPrivateKey(createPrivateKey(onDisk.keyPem)), 'the key on disk goes with the certificate');
  t.equal(onDisk.controlPlane, joined.controlPlane);

  // Calls keep working over the client reconnected with the renewed node SVID.
  ids.setWanted([WEB, API]);
  await waitFor(async () => (ids.current().certs.has(API) ? true : undefined), { timeoutMs: 20_000, what: 'an SVID after node renewal' });
  t.equal(ids.states().controlPlane.state, 'connected');
});

/** A TCP relay on a fixed port: closing it resets every connection, as a crashed control plane would. */
async function relay(port: number, target: string) {
  const sockets = new Set<net.Socket>();
  const [host, targetPort] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const server = net.createServer((inbound) => {
    const outbound = net.connect(targetPort, host);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    inbound.pipe(outbound).pipe(inbound);
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.resetAndDestroy();
        server.close(() => resolve());
      }),
  };
}

t.test('the bundle watch reopens and renewals work again after the control plane restarts', async (t) => {
  // Short: the admin socket path must fit in sockaddr_un.
  const cpDir = await tempDir(t);
  let tcp = await startTestControlPlane({ dataDir: cpDir, svidTtl: '8s' });
  let proxy = await relay(0, tcp.cp.address);
  const port = proxy.port;
  const agents: WorkloadIdentities[] = [];
  t.teardown(async () => {
    for (const agent of agents) await agent.stop();
    await proxy.close();
    await tcp.stop();
  });
  const { ids } = await agentOn(t, tcp, agents, { address: `127.0.0.1:${port}` });
  ids.setWanted([WEB]);
  await waitFor(async () => (ids.current().certs.has(WEB) && ids.states().controlPlane.state === 'connected' ? true : undefined), {
    timeoutMs: 20_000,
    what: 'an SVID and the bundle watch',
  });
  t.equal(ids.states().controlPlane.address, `127.0.0.1:${port}`);

  // Down: connections reset, the control plane stops.
  await proxy.close();
  await tcp.stop();
  await waitFor(async () => (ids.states().controlPlane.state === 'failing' ? true : undefined), {
    timeoutMs: 20_000,
    what: 'the watch to fail',
  });
  t.match(ids.states().controlPlane, { lastError: /MESH_E_CONTROLPLANE_UNAVAILABLE/ });
  await waitFor(async () => ((stateOf(ids, WEB)?.failures ?? 0) >= 1 ? true : undefined), { timeoutMs: 20_000, what: 'a failed renewal' });
  t.match(stateOf(ids, WEB), { state: 'failing', lastError: /MESH_E_CONTROLPLANE_UNAVAILABLE/ });
  t.ok(ids.current().certs.has(WEB), 'the SVID held is kept while renewals fail');
  const serialWhileDown = serialOf(ids, WEB);

  // Back on the same data folder, reachable at the same address.
  tcp = await startTestControlPlane({ dataDir: cpDir, svidTtl: '8s' });
  proxy = await relay(port, tcp.cp.address);
  await waitFor(async () => (ids.states().controlPlane.state === 'connected' ? true : undefined), {
    timeoutMs: 30_000,
    what: 'the watch to reopen',
  });
  t.notOk(ids.states().controlPlane.lastError);
  await waitFor(async () => (serialOf(ids, WEB) !== serialWhileDown && stateOf(ids, WEB)?.failures === 0 ? true : undefined), {
    timeoutMs: 30_000,
    what: 'a renewal after the restart',
  });
  t.match(stateOf(ids, WEB), { state: 'ready' });
});
