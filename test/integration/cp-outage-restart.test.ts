/**
 * A restart of the agent's identities during a control-plane outage, against
 * a real control plane (`mesh-controlplane run`, a child process): workload
 * SVIDs obtained and stored (0700 folders, 0600 keys), the identities
 * stopped, the control plane frozen with SIGSTOP (connections hang, as with a
 * hung host), a new WorkloadIdentities on the same folder serves the same
 * certificates as soon as start() returns, with source 'disk', and keeps
 * serving them while their renewals are due; after SIGCONT the renewals
 * arrive from the control plane and replace the stored files.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { workloadDirName } from '../../agent/identity/svid-check.js';
import { createWorkloadIdentities, type WorkloadIdentities } from '../../agent/identity/workload-identities.js';
import { CHAIN_FILE, KEY_FILE, workloadsDir } from '../../agent/identity/workload-svid-store.js';
import { systemClock } from '../../lib/clock.js';
import { createLogger } from '../../lib/logger.js';
import { uriSans } from '../../lib/x509/cert-info.js';
import { processAlive } from '../support/child.js';
import { adminJoinSource, joinNode, spawnControlPlane } from '../support/controlplane.js';
import { tempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(240_000);

const WEB = 'spiffe://example.org/ns/default/sa/web';
const API = 'spiffe://example.org/ns/default/sa/api';
const IDS = [WEB, API];
const FAST = { backoff: { initialMs: 100, maxMs: 1_000 }, watchdogMs: 500 };

const mode = async (file: string) => (await stat(file)).mode & 0o777;
const serialOf = (pem: string | undefined) => (pem === undefined ? undefined : new X509Certificate(pem).serialNumber);

t.test('a restart while the control plane is stopped serves the stored SVIDs at once, then renews them', async (t) => {
  // A short folder: the admin socket path must fit a Unix socket address.
  const base = await tempDir(t, 'mesh-out-');
  const cpDir = path.join(base, 'cp');
  const dataDir = path.join(base, 'agent');
  const config = path.join(base, 'cp.json');
  // Short workload SVIDs, so a renewal is due soon after the restart.
  await writeFile(config, JSON.stringify({ svidTtl: '30s' }));
  const cp = await spawnControlPlane(cpDir, 'example.org', 0, ['--config', config]);
  t.teardown(async () => {
    if (processAlive(cp.child.pid)) process.kill(cp.child.pid, 'SIGCONT');
    await cp.child.stop();
  });

  await joinNode(adminJoinSource(cp), 'vm1', IDS, dataDir);

  const agents: WorkloadIdentities[] = [];
  // Registered after the folder's removal, so it runs before it (teardowns run last first).
  t.teardown(async () => {
    for (const agent of agents) await agent.stop();
  });
  const identities = (lines: string[]) => {
    const ids = createWorkloadIdentities({
      dataDir,
      clock: systemClock,
      log: createLogger({ level: 'debug', sink: { write: (line) => lines.push(line) } }),
      rotation: FAST,
    });
    agents.push(ids);
    return ids;
  };
  const storedKey = (id: string) => readFile(path.join(workloadsDir(dataDir), workloadDirName(id), KEY_FILE), 'utf8').catch(() => '');

  // First run: obtain and store.
  const firstLines: string[] = [];
  const first = identities(firstLines);
  await first.start();
  first.setWanted(IDS);
  await waitFor(async () => (first.current().certs.size === 2 ? true : undefined), { timeoutMs: 30_000, what: 'two SVIDs' });
  const held = new Map(first.current().certs);
  await first.stop();
  for (const id of IDS) t.equal(await storedKey(id), held.get(id)?.keyPem, `${id}: the key in use is stored`);

  // Modes: 0700 folders, 0600 keys.
  t.equal(await mode(workloadsDir(dataDir)), 0o700, 'identity/workloads is 0700');
  for (const id of IDS) {
    const dir = path.join(workloadsDir(dataDir), workloadDirName(id));
    t.equal(await mode(dir), 0o700, `${workloadDirName(id)} is 0700`);
    t.equal(await mode(path.join(dir, KEY_FILE)), 0o600, `${workloadDirName(id)}/${KEY_FILE} is 0600`);
    t.equal(await readFile(path.join(dir, CHAIN_FILE), 'utf8'), held.get(id)?.chainPem, 'the chain in use is stored');
  }
  t.notMatch(firstLines.join('\n'), /PRIVATE KEY|BEGIN CERTIFICATE/, 'no PEM in the logs');

  // Outage: the control plane is frozen; connections to it hang.
  process.kill(cp.child.pid, 'SIGSTOP');
  const lines: string[] = [];
  const second = identities(lines);
  let changes = 0;
  second.onChange(() => changes++);
  const startedAt = Date.now();
  await second.start();
  second.setWanted(IDS);
  const servedMs = Date.now() - startedAt;
  for (const id of IDS) {
    t.same(second.current().certs.get(id), held.get(id), `${id}: the same certificate and key, served at once`);
  }
  t.ok(changes >= 1, 'onChange fired');
  t.same(
    second.states().workloads.map((w) => [w.spiffeId, w.state, w.source]),
    [
      [API, 'ready', 'disk'],
      [WEB, 'ready', 'disk'],
    ],
    'states show the source: disk',
  );
  t.not(second.states().controlPlane.state, 'connected', 'the control plane does not answer');
  t.comment(`stored SVIDs served ${servedMs} ms after start() was called, with the control plane stopped`);

  // Stopped until the renewals are due: they wait on the frozen control plane; the stored SVIDs are still served.
  await waitFor(
    async () => (second.states().workloads.every((w) => (w.nextRenewalAt ?? Number.POSITIVE_INFINITY) <= Date.now()) ? true : undefined),
    { timeoutMs: 60_000, intervalMs: 100, what: 'the renewals to be due' },
  );
  t.same(
    second.states().workloads.map((w) => w.source),
    ['disk', 'disk'],
  );
  for (const id of IDS) t.same(second.current().certs.get(id), held.get(id), `${id}: still served from disk while renewals are due`);

  // Back: renewals arrive from the control plane, for both, and replace the stored files.
  const resumedAt = Date.now();
  process.kill(cp.child.pid, 'SIGCONT');
  await waitFor(
    async () => (second.states().workloads.every((w) => w.source === 'control-plane' && w.state === 'ready') ? true : undefined),
    { timeoutMs: 90_000, intervalMs: 100, what: 'renewals from the control plane' },
  );
  t.comment(`both renewals arrived ${Date.now() - resumedAt} ms after SIGCONT`);
  for (const id of IDS) {
    const renewed = second.current().certs.get(id);
    t.not(serialOf(renewed?.chainPem), serialOf(held.get(id)?.chainPem), `${id}: a new certificate`);
    t.same(uriSans(new X509Certificate(renewed?.chainPem ?? '')), [id]);
    t.ok(new X509Certificate(renewed?.chainPem ?? '').checkPrivateKey(createPrivateKey(renewed?.keyPem ?? '')), 'with its new key');
    await waitFor(async () => ((await storedKey(id)) === renewed?.keyPem ? true : undefined), { what: `${id}: the renewal stored` });
  }
  await waitFor(async () => (second.states().controlPlane.state === 'connected' ? true : undefined), {
    timeoutMs: 30_000,
    what: 'the bundle watch',
  });
  t.ok(
    lines.some((l) => l.includes('workload SVID loaded from disk')),
    'the log says the SVIDs came from disk',
  );
  t.notMatch(lines.join('\n'), /PRIVATE KEY|BEGIN CERTIFICATE/, 'no PEM in the logs');
});
