/**
 * Doctor's control-plane probe against real control planes: the handshake
 * verifies the server against the joined bundle and its SPIFFE ID (another
 * mesh's control plane fails as "identity", a closed port as "unreachable");
 * the server's clock arrives on an answer (header) and on a refusal
 * (trailers), and is the control plane's injected clock.
 */
import t from 'tap';
import { controlPlaneProbe } from '../../../agent/doctor/cp-probe.js';
import { loadNodeIdentity } from '../../../agent/identity/identity-store.js';
import { freePort } from '../../../lib/ports.js';
import { FakeClock } from '../../fakes/clock.js';
import { joinNode, joinSource, startTestControlPlane } from '../../support/controlplane.js';
import { tempDir } from '../../support/temp-dir.js';

t.setTimeout(120_000);

/** A minute behind ours: the control plane's certificates are valid now, and its clock is told from ours. */
const clock = new FakeClock(Date.now() - 60_000);
const cp = await startTestControlPlane({ clock });
t.teardown(() => cp.stop());
const probe = controlPlaneProbe(() => Date.now());
const target = { address: cp.cp.address, trustDomain: cp.trustDomain, bundlePem: cp.bundlePem() };

t.test('handshake: verified; another mesh and a closed port are told apart', async (t) => {
  t.match(await probe.handshake(target), { ok: true, spiffeId: 'spiffe://example.org/mesh/controlplane', notAfter: Number });
  const other = await startTestControlPlane({ trustDomain: 'other.org' });
  t.teardown(() => other.stop());
  t.match(
    await probe.handshake({ ...target, address: other.cp.address }),
    { ok: false, kind: 'identity' },
    'its chain does not verify against our bundle',
  );
  t.match(
    await probe.handshake({ address: other.cp.address, trustDomain: 'example.org', bundlePem: other.bundlePem() }),
    { ok: false, kind: 'identity', reason: /not spiffe:\/\/example\.org\/mesh\/controlplane/ },
    'a verified chain with the wrong SPIFFE ID',
  );
  t.match(await probe.handshake({ ...target, address: `127.0.0.1:${await freePort()}` }), {
    ok: false,
    kind: 'unreachable',
    reason: /ECONNREFUSED/,
  });
});

t.test("server time: the control plane's clock, on a refused call (trailers) and an answered one (header)", async (t) => {
  const anonymous = await probe.serverTime(target);
  t.equal(anonymous?.serverMs, clock.now(), 'GetBundle without a node SVID is refused; the time is in the trailers');
  const dir = await tempDir(t);
  await joinNode(joinSource(cp), 'vm-time', [], dir);
  const id = await loadNodeIdentity(dir);
  clock.advance(1_000);
  const answered = await probe.serverTime({ ...target, node: { chainPem: id.chainPem, keyPem: id.keyPem } });
  t.equal(answered?.serverMs, clock.now());
  t.ok((answered?.receivedMs ?? 0) >= (answered?.sentMs ?? 1), 'our send and receive times bracket the call');
  t.equal(await probe.serverTime({ ...target, address: `127.0.0.1:${await freePort()}` }), undefined, 'nothing answers: no time');
});
