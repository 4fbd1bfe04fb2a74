import { X509Certificate } from 'node:crypto';
import t, { type Test } from 'tap';
import {
  createLeafSigner,
  defaultSigningWorkers,
  inlineSigner,
  type LeafSigner,
  workerSigner,
} from '../../../controlplane/ca/leaf-signer.js';
import { createLogger, silentLogger } from '../../../lib/logger.js';
import { freshCsr, freshCsrs } from '../../support/controlplane.js';
import { createTestCa } from '../../support/test-ca.js';

const ca = await createTestCa('signer.example');
const ID = 'spiffe://signer.example/ns/default/sa/web';
const quiet = () => silentLogger;

async function checkSigner(t: Test, signer: LeafSigner) {
  const issuer = new X509Certificate(ca.generation.signerPem);
  const requests = await freshCsrs(20);
  const now = Date.now();
  const leaves = await Promise.all(requests.map((r) => signer.sign(ca.generation, { csr: r.csr, spiffeId: ID, ttlMs: 3_600_000, now })));
  const serials = new Set<string>();
  leaves.forEach((leaf, i) => {
    const cert = new X509Certificate(leaf.der);
    t.ok(cert.verify(issuer.publicKey), 'signed by the signing CA');
    t.equal(cert.subjectAltName, `URI:${ID}`);
    t.ok(cert.publicKey.equals(requests[i]?.key.publicKey as never), 'the key from the CSR');
    t.equal(cert.serialNumber, leaf.serial);
    t.equal(leaf.notAfter, Math.floor((now + 3_600_000) / 1000) * 1000);
    serials.add(leaf.serial);
  });
  t.equal(serials.size, 20, 'unique serials');

  await t.rejects(signer.sign(ca.generation, { csr: Buffer.from([0x30, 0x01]), spiffeId: ID, ttlMs: 1000, now }), {
    code: 'MESH_E_CSR_INVALID',
    message: /certificate signing request is invalid/,
  });
  await t.rejects(signer.sign(ca.generation, { csr: Buffer.alloc(5000), spiffeId: ID, ttlMs: 1000, now }), {
    code: 'MESH_E_REQUEST_TOO_LARGE',
    message: /5000 bytes; at most 4096/,
  });
  await t.rejects(
    signer.sign(ca.generation, { csr: (await freshCsr()).csr, spiffeId: ID, ttlMs: 1000, now: ca.generation.signerNotAfter + 1 }),
    { code: 'MESH_E_CA_EXPIRED' },
    'a signer past its notAfter signs nothing',
  );
}

t.test('inline and worker signers check CSRs and sign the same way', async (t) => {
  const inline = createLeafSigner({ workers: 0, maxCsrBytes: 4096, logger: quiet() });
  t.equal(inline.workers, 0);
  t.same(inline.threads(), []);
  await checkSigner(t, inline);
  await inline.close();

  const pool = createLeafSigner({ workers: 2, maxCsrBytes: 4096, logger: quiet() });
  t.teardown(() => pool.close());
  t.equal(pool.workers, 2);
  await checkSigner(t, pool);
  t.equal(pool.threads().length, 2, 'both workers were used');
  t.not(pool.threads()[0]?.threadId, pool.threads()[1]?.threadId);
});

t.test('a worker that dies fails only its requests in flight, and the next request gets a new worker', async (t) => {
  const errors: string[] = [];
  const logger = createLogger({ level: 'error', sink: { write: (line) => void errors.push(line) } });
  const pool = workerSigner({ workers: 1, maxCsrBytes: 4096, logger });
  t.teardown(() => pool.close());
  await pool.sign(ca.generation, { csr: (await freshCsr()).csr, spiffeId: ID, ttlMs: 60_000, now: Date.now() });
  const [first] = pool.threads();
  const inFlight = (await freshCsrs(50)).map((c) => pool.sign(ca.generation, { csr: c.csr, spiffeId: ID, ttlMs: 60_000, now: Date.now() }));
  await first?.terminate();
  const settled = await Promise.allSettled(inFlight);
  const failed = settled.filter((s) => s.status === 'rejected');
  t.ok(failed.length > 0, `${failed.length} of 50 in flight failed`);
  for (const f of failed) t.match((f as PromiseRejectedResult).reason, { code: 'MESH_E_INTERNAL', message: /signing worker stopped/ });
  t.match(errors.join('\n'), /a signing worker stopped; starting another/);

  const after = await pool.sign(ca.generation, { csr: (await freshCsr()).csr, spiffeId: ID, ttlMs: 60_000, now: Date.now() });
  t.ok(after.der.length > 0, 'a new worker signs, with the key sent to it again');
  t.not(pool.threads()[0], first);

  await pool.close();
  await t.rejects(pool.sign(ca.generation, { csr: (await freshCsr()).csr, spiffeId: ID, ttlMs: 60_000, now: Date.now() }), {
    code: 'MESH_E_INTERNAL',
    message: /stopping/,
  });
});

t.test('inlineSigner is what zero workers means', async (t) => {
  const signer = inlineSigner(100);
  await t.rejects(signer.sign(ca.generation, { csr: (await freshCsr()).csr, spiffeId: ID, ttlMs: 1000, now: Date.now() }), {
    code: 'MESH_E_REQUEST_TOO_LARGE',
  });
});

t.test('the default pool is one worker per core, at most 4', async (t) => {
  t.equal(defaultSigningWorkers(1), 1);
  t.equal(defaultSigningWorkers(2), 2);
  t.equal(defaultSigningWorkers(64), 4);
  t.ok(defaultSigningWorkers() >= 1);
});
