/**
 * The agent's policy source against the fake control plane and a fake clock:
 * the watch request (held revision and interest), updates replacing the set
 * and kept on disk (0600, atomic), the disk copy served at start without
 * waiting for the control plane, a damaged file logged and ignored,
 * re-subscription on a new interest, and reopening with backoff.
 */
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { ControlPlaneClient } from '../../../agent/identity/cp-client.js';
import type { ControlPlaneLink } from '../../../agent/identity/cp-connection.js';
import { type CpPolicySource, createCpPolicySource } from '../../../agent/policy/cp-policy-source.js';
import { loadPolicyCache, policyCachePath } from '../../../agent/policy/policy-cache.js';
import { createLogger } from '../../../lib/logger.js';
import type { PolicySet } from '../../../lib/policy/schema.js';
import { FakeClock } from '../../fakes/clock.js';
import { FAKE_TRUST_DOMAIN, FakeControlPlane } from '../../fakes/control-plane-client.js';
import { tempDir } from '../../support/temp-dir.js';
import { waitFor } from '../../support/wait.js';

const INTEREST = { services: ['api', 'web'], spiffeIds: ['spiffe://example.org/ns/default/sa/web'] };
const BACKOFF = { initialMs: 1_000, maxMs: 8_000 };

function policySet(revision: number, names: string[]): PolicySet {
  return {
    revision,
    resources: names.map((name) => ({
      kind: 'ServiceIdentity' as const,
      name,
      version: 1,
      revision,
      source: {
        apiVersion: 'mesh.v1',
        kind: 'ServiceIdentity',
        metadata: { name },
        spec: { service: 'api', allowedIdentities: ['spiffe://example.org/ns/default/sa/api'] },
      },
    })),
  };
}

/** A link whose client the test replaces, as a node renewal or a bundle change would. */
function fakeLink(fcp: FakeControlPlane): ControlPlaneLink & { replace(): void; drop(): void } {
  const listeners = new Set<() => void>();
  const make = () => fcp.connect({ address: 'fake:1', trustDomain: FAKE_TRUST_DOMAIN, bundlePem: '' });
  let client: ControlPlaneClient | undefined = make();
  return {
    client: () => client,
    onClient(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    replace() {
      client = make();
      for (const l of listeners) l();
    },
    drop() {
      client = undefined;
    },
  };
}

async function setup(t: Test, options: { dataDir?: string; down?: boolean } = {}) {
  const clock = new FakeClock();
  const fcp = new FakeControlPlane(clock);
  fcp.down = options.down ?? false;
  const link = fakeLink(fcp);
  const dataDir = options.dataDir ?? (await tempDir(t));
  const logs: string[] = [];
  const source = createCpPolicySource({
    link,
    dataDir,
    clock,
    log: createLogger({ level: 'debug', sink: { write: (l) => logs.push(l) } }),
    backoff: BACKOFF,
    random: () => 0,
  });
  let changes = 0;
  source.onChange(() => changes++);
  t.teardown(() => source.stop());
  return { clock, fcp, link, dataDir, logs, source, changes: () => changes };
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
const fileWritten = (source: CpPolicySource, dataDir: string, revision: number) =>
  waitFor(async () => ((await loadPolicyCache(policyCachePath(dataDir)))?.set.revision === revision ? true : undefined), {
    what: `revision ${revision} on disk (source at ${source.current().revision})`,
  });

t.test('an update replaces the set, is announced, and is kept on disk (0600, atomic)', async (t) => {
  const { fcp, dataDir, logs, source, changes } = await setup(t);
  source.setInterest(INTEREST);
  await source.start();
  await settle();
  t.same(fcp.policyRequests, [{ revision: 0, services: ['api', 'web'], spiffeIds: INTEREST.spiffeIds }]);
  t.same(source.status(), { revision: 0, origin: 'none', connected: true });

  fcp.pushPolicy(policySet(3, ['a', 'b']));
  t.equal(source.current().revision, 3);
  t.equal(source.current().resources.length, 2);
  t.equal(source.origin(), 'controlplane');
  t.equal(changes(), 1);
  t.match(source.status(), { revision: 3, origin: 'controlplane', connected: true, receivedAt: Number });
  t.ok(
    logs.some((l) => l.includes('policy revision received') && l.includes('"revision":3')),
    'the new revision is logged',
  );

  await fileWritten(source, dataDir, 3);
  const file = policyCachePath(dataDir);
  t.equal((await stat(file)).mode & 0o777, 0o600, 'the file is 0600');
  t.equal((await stat(path.dirname(file))).mode & 0o777, 0o700, 'its folder is 0700');
  t.same(await readdir(path.dirname(file)), ['policy.json'], 'no temporary file left');
  const saved = JSON.parse(await readFile(file, 'utf8')) as { interest: unknown; resources: unknown[] };
  t.same(saved.interest, { services: ['api', 'web'], spiffeIds: INTEREST.spiffeIds });
  t.equal(saved.resources.length, 2);

  fcp.pushPolicy(policySet(4, ['a']));
  fcp.pushPolicy(policySet(5, []));
  await fileWritten(source, dataDir, 5);
  t.equal(source.current().resources.length, 0, 'a set without resources empties the policy');
});

t.test('start serves the set on disk at once, with the control plane down, and resumes from its revision', async (t) => {
  const first = await setup(t);
  first.source.setInterest(INTEREST);
  await first.source.start();
  first.fcp.pushPolicy(policySet(7, ['a']));
  await fileWritten(first.source, first.dataDir, 7);
  await first.source.stop();

  const { fcp, clock, source, changes, logs } = await setup(t, { dataDir: first.dataDir, down: true });
  source.setInterest({ services: ['web', 'api'], spiffeIds: INTEREST.spiffeIds });
  await source.start();
  t.equal(source.current().revision, 7, 'the set on disk is served');
  t.equal(source.origin(), 'disk');
  t.equal(changes(), 1);
  await settle();
  t.match(source.status(), { revision: 7, origin: 'disk', connected: false, lastError: /MESH_E_CONTROLPLANE_UNAVAILABLE/ });
  t.equal(fcp.policyRequests[0]?.revision, 7, 'the same interest resumes from the revision held');
  t.ok(logs.some((l) => l.includes('policy loaded from disk')));

  // The control plane comes back: the watch is reopened after the backoff, and an update takes over.
  fcp.down = false;
  clock.advance(BACKOFF.initialMs / 2 - 1);
  t.equal(fcp.policyRequests.length, 1, 'not before the backoff');
  clock.advance(1);
  t.equal(fcp.policyRequests.length, 2, 'reopened after the backoff');
  await settle();
  t.equal(source.status().connected, true);
  t.equal(source.status().lastError, undefined);
  fcp.pushPolicy(policySet(8, ['a', 'c']));
  t.equal(source.origin(), 'controlplane');
});

t.test('a damaged file on disk is logged and ignored', async (t) => {
  for (const [what, body] of [
    ['not JSON', '{"revision": 3, '],
    ['a wrong shape', JSON.stringify({ revision: -1, interest: { services: [], spiffeIds: [] }, receivedAt: 0, resources: [] })],
    [
      'an unknown kind',
      JSON.stringify({
        revision: 2,
        interest: { services: [], spiffeIds: [] },
        receivedAt: 0,
        resources: [{ kind: 'X', name: 'a', version: 1, revision: 1, source: {} }],
      }),
    ],
  ] as const) {
    const dataDir = await tempDir(t);
    await mkdir(path.join(dataDir, 'policy'), { recursive: true });
    await writeFile(policyCachePath(dataDir), body);
    const { source, fcp, logs } = await setup(t, { dataDir });
    await source.start();
    t.equal(source.origin(), 'none', `${what}: ignored`);
    t.equal(source.current().revision, 0);
    t.ok(
      logs.some((l) => l.includes('MESH_E_POLICY_CACHE_INVALID') && l.includes('policy.json')),
      `${what}: logged with its code and file`,
    );
    await settle();
    t.equal(fcp.policyRequests[0]?.revision, 0, `${what}: the watch asks for everything`);
  }
});

t.test('a new interest re-subscribes, from revision 0; the same interest does not', async (t) => {
  const { fcp, source } = await setup(t);
  source.setInterest(INTEREST);
  await source.start();
  fcp.pushPolicy(policySet(2, ['a']));
  source.setInterest({ services: ['web', 'api', 'api'], spiffeIds: INTEREST.spiffeIds });
  t.equal(fcp.policyRequests.length, 1, 'the same interest in another order changes nothing');
  source.setInterest({ services: ['api', 'db', 'web'], spiffeIds: INTEREST.spiffeIds });
  t.equal(fcp.policyRequests.length, 2);
  t.same(fcp.policyRequests[1], { revision: 0, services: ['api', 'db', 'web'], spiffeIds: INTEREST.spiffeIds });
  t.equal(fcp.policyWatches.size, 1, 'the previous watch was cancelled');
  fcp.pushPolicy(policySet(3, ['a', 'd']));
  // Reconnecting with the interest the set was received for resumes from it.
  fcp.failPolicyWatches();
  t.equal(source.status().connected, false);
  await settle();
  const before = fcp.policyRequests.length;
  fcp.failPolicyWatches();
  t.equal(fcp.policyRequests.length, before, 'no watch open: nothing to fail');
});

t.test('failures back off, doubling; a new client reopens at once', async (t) => {
  const { fcp, clock, link, source } = await setup(t, { down: true });
  source.setInterest(INTEREST);
  await source.start();
  await settle();
  t.equal(fcp.policyRequests.length, 1);
  clock.advance(500);
  await settle();
  t.equal(fcp.policyRequests.length, 2, 'first retry after 500 ms (half of 1 s, no jitter)');
  clock.advance(999);
  await settle();
  t.equal(fcp.policyRequests.length, 2, 'the second waits longer');
  clock.advance(1);
  await settle();
  t.equal(fcp.policyRequests.length, 3, 'second retry after 1 s');

  fcp.down = false;
  link.replace();
  t.equal(fcp.policyRequests.length, 4, 'a new client reopens the watch at once');
  await settle();
  t.equal(source.status().connected, true);
  clock.advance(10_000);
  t.equal(fcp.policyRequests.length, 4, 'the pending retry was cancelled');

  link.drop();
  fcp.failPolicyWatches();
  clock.advance(60_000);
  t.equal(fcp.policyRequests.length, 4, 'no client: nothing opened until one exists');
  link.replace();
  t.equal(fcp.policyRequests.length, 5);
});

t.test('start never waits for the control plane; stop cancels the watch and the retry', async (t) => {
  const { fcp, clock, source } = await setup(t, { down: true });
  fcp.hold = true;
  await source.start();
  t.pass('start resolved with the control plane down');
  await settle();
  await source.stop();
  const n = fcp.policyRequests.length;
  clock.advance(120_000);
  t.equal(fcp.policyRequests.length, n, 'nothing reopened after stop');
  t.equal(fcp.policyWatches.size, 0);
});
