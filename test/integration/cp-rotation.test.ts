/**
 * CA root rotation (prepare -> activate -> retire) while an agent keeps
 * fetching SVIDs: the agent follows the bundle stream, and every SVID it
 * fetches verifies against the bundle it holds at that moment.
 */
import t from 'tap';
import { type BundleUpdate, type ControlPlaneClient, connectControlPlane } from '../../agent/identity/cp-client.js';
import { renewNodeSvid } from '../../agent/identity/enroll.js';
import { loadNodeIdentity, saveBundle } from '../../agent/identity/identity-store.js';
import { fromPemAll } from '../../lib/x509/pem.js';
import { chainsToBundle } from '../support/chain-checks.js';
import { freshCsr, joinedClient, startTestControlPlane } from '../support/controlplane.js';
import { waitFor } from '../support/wait.js';

t.setTimeout(120_000);

t.test('prepare, activate, retire while fetching: every SVID verifies against the bundle held', async (t) => {
  const tcp = await startTestControlPlane();
  t.teardown(() => tcp.stop());
  const dataDir = t.testdir({});
  const id = 'spiffe://example.org/ns/default/sa/web';
  (await joinedClient(tcp, 'vm1', [id], dataDir)).close();

  // The agent: holds the bundle from the stream and reconnects with it on change.
  let held: BundleUpdate | undefined;
  let client: ControlPlaneClient | undefined;
  let saving: Promise<unknown> = Promise.resolve();
  let failures: string[] = [];
  let cancelWatch = () => {};
  const connect = async () => {
    const identity = await loadNodeIdentity(dataDir);
    client?.close();
    cancelWatch();
    client = connectControlPlane({
      address: tcp.cp.address,
      trustDomain: 'example.org',
      bundlePem: held?.rootsPem ?? identity.bundlePem,
      node: { chainPem: identity.chainPem, keyPem: identity.keyPem },
    });
    cancelWatch = client.watchBundle(
      (bundle) => {
        const changed = held !== undefined && bundle.sequence !== held.sequence;
        held = bundle;
        // As the agent does: keep the bundle on disk, reconnect trusting it. The test ends
        // only after the last of these (its folder is removed then).
        saving = saving
          .then(() => saveBundle(dataDir, bundle.rootsPem))
          .then(() => (changed ? connect() : undefined))
          .catch((err: unknown) => {
            failures.push(`saving the bundle: ${(err as Error).message}`);
          });
      },
      () => {},
    );
  };
  await connect();
  t.teardown(() => {
    cancelWatch();
    client?.close();
  });
  await waitFor(async () => held, { what: 'the first bundle' });

  let fetched = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      // The CSR first: the client is picked when the request is sent (a reconnect may replace it meanwhile).
      const { csr } = await freshCsr();
      const bundleAtRequest = held as BundleUpdate;
      try {
        const svid = await (client as ControlPlaneClient).signWorkload(id, csr);
        const bundleNow = held as BundleUpdate;
        fetched++;
        if (!chainsToBundle(svid.chainPem, bundleNow.rootsPem))
          failures.push(`seq ${bundleAtRequest.sequence}->${bundleNow.sequence}: ${svid.serial} does not verify`);
      } catch (err) {
        // A reconnect in progress (client closed under us) is retried; other errors are failures.
        if (!/closed|shut down|CANCELLED|UNAVAILABLE|not reachable/i.test((err as Error).message)) failures.push((err as Error).message);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();

  try {
    const waitSequence = (n: number) =>
      waitFor(async () => ((held?.sequence ?? 0) >= n ? true : undefined), { what: `bundle sequence ${n}` });
    const rootsHeld = () => fromPemAll(held?.rootsPem ?? '').length;
    const start = held?.sequence ?? 0;
    t.equal(rootsHeld(), 1);

    await tcp.cp.ca.prepare();
    await waitSequence(start + 1);
    t.equal(rootsHeld(), 2, 'after prepare the agent holds both roots');
    const afterPrepare = fetched;
    await waitFor(async () => (fetched > afterPrepare + 5 ? true : undefined), { what: 'fetches after prepare' });

    await tcp.cp.ca.activate();
    await waitSequence(start + 2);
    const afterActivate = fetched;
    await waitFor(async () => (fetched > afterActivate + 5 ? true : undefined), { what: 'fetches after activate' });
    const newRoot = tcp.cp.ca.active().root;

    // The node renews its own SVID from the new CA before the old root goes.
    await renewNodeSvid({ dataDir, address: tcp.cp.address });
    await connect();
    await t.rejects(tcp.cp.ca.retire(false), { code: 'MESH_E_CA_ROOT_IN_USE' }, 'unexpired SVIDs still chain to the old root');
    await tcp.cp.ca.retire(true);
    await waitSequence(start + 3);
    t.equal(rootsHeld(), 1, 'after retire the agent holds only the new root');
    t.ok(fromPemAll(held?.rootsPem ?? '')[0]?.equals(newRoot.raw), 'and it is the new root');
    const afterRetire = fetched;
    await waitFor(async () => (fetched > afterRetire + 5 ? true : undefined), { what: 'fetches after retire' });
  } finally {
    running = false;
    await loop;
    cancelWatch();
    await saving;
  }

  t.same(failures, [], `all ${fetched} SVIDs fetched across the rotation verified against the bundle held`);
  failures = [];
  const steps = tcp.cp.db.prepare("SELECT action, result FROM audit WHERE action LIKE 'ca.%' ORDER BY id").all();
  t.same(steps, [
    { action: 'ca.init', result: 'ok' },
    { action: 'ca.rotate.prepare', result: 'ok' },
    { action: 'ca.rotate.activate', result: 'ok' },
    { action: 'ca.rotate.retire', result: 'MESH_E_CA_ROOT_IN_USE' },
    { action: 'ca.rotate.retire', result: 'ok' },
  ]);
  await t.rejects(tcp.cp.ca.activate(), { code: 'MESH_E_CA_ROTATION_STATE' }, 'nothing to activate');
  await t.rejects(tcp.cp.ca.retire(false), { code: 'MESH_E_CA_ROTATION_STATE' }, 'nothing to retire');
});
