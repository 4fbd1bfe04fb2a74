/**
 * What the CA signs, checked by independent verifiers (openssl; go-spiffe in
 * svid-verify.test.ts and here when provisioned), and what it refuses: forged
 * CSR contents are ignored, bad requests fail with their codes and change
 * nothing but the audit log, a failing audit write fails the operation.
 */
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import t, { type Test } from 'tap';
import { uriSans } from '../../lib/x509/cert-info.js';
import { createCsr } from '../../lib/x509/csr-builder.js';
import { fromPem } from '../../lib/x509/pem.js';
import { freshCsr, freshCsrs, joinedClient, startTestControlPlane } from '../support/controlplane.js';
import { openssl, opensslCsr } from '../support/openssl.js';
import { opensslVerify, splitPemChain, verifySvid } from '../support/svid-verify.js';

t.setTimeout(120_000);

/** A control plane (with these options) and an mTLS client of node vm1 allowed `allow`, its files in the test's folder. */
async function vm1Client(t: Test, allow: string[], options: Parameters<typeof startTestControlPlane>[0] = {}) {
  const tcp = await startTestControlPlane(options);
  t.teardown(() => tcp.stop());
  const dir = t.testdir({});
  const client = await joinedClient(tcp, 'vm1', allow, dir);
  t.teardown(() => client.close());
  return { tcp, dir, client };
}

const counts = (db: { prepare: (s: string) => { get: () => unknown } }) => ({
  certs: (db.prepare('SELECT COUNT(*) AS n FROM certificates').get() as { n: number }).n,
  audit: (db.prepare('SELECT COUNT(*) AS n FROM audit').get() as { n: number }).n,
  nodes: (db.prepare('SELECT COUNT(*) AS n FROM nodes').get() as { n: number }).n,
});

t.test('an issued SVID has exactly what the spec requires, with the configured TTL', async (t) => {
  const { client } = await vm1Client(t, ['spiffe://example.org/ns/default/sa/web'], { svidTtl: '2h' });
  const before = Date.now();
  const svid = await client.signWorkload('spiffe://example.org/ns/default/sa/web', (await freshCsr()).csr);
  const leaf = new X509Certificate(svid.chainPem);
  t.same(uriSans(leaf), ['spiffe://example.org/ns/default/sa/web'], 'one URI SAN, the SPIFFE ID');
  t.notMatch(leaf.subjectAltName ?? '', /DNS:|IP Address:|email:/, 'no other SANs');
  t.equal(leaf.ca, false, 'CA:false');
  t.same(leaf.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'serverAuth + clientAuth');
  const text = await openssl(['x509', '-noout', '-text'], { input: splitPemChain(svid.chainPem)[0] ?? '' });
  t.match(text, /X509v3 Key Usage: critical\s+Digital Signature\n/, 'keyUsage is digitalSignature only, critical');
  t.match(text, /Basic Constraints: critical\s+CA:FALSE/);
  const ttl = Date.parse(leaf.validTo) - before;
  // Measured from before the request: the request's own latency may add a few ms.
  t.ok(Math.abs(ttl - 2 * 3600_000) < 5_000, `TTL is the configured 2h (got ${ttl} ms)`);
  t.equal(svid.serial, leaf.serialNumber);
  t.ok(/^[0-9A-F]{32}$/.test(leaf.serialNumber), '128-bit serial');
  t.equal(
    (await opensslVerify(svid.chainPem, svid.bundle.rootsPem, 'sslclient')).code,
    0,
    'openssl verify: chains to the bundle as a client cert',
  );
  t.equal((await opensslVerify(svid.chainPem, svid.bundle.rootsPem, 'sslserver')).code, 0, 'and as a server cert');
  const spiffe = await verifySvid(svid.chainPem, svid.bundle.rootsPem);
  t.match(
    spiffe,
    {
      ok: true,
      spiffe_id: 'spiffe://example.org/ns/default/sa/web',
      leaf: {
        serial: leaf.serialNumber.replace(/^0+/, ''),
        is_ca: false,
        key_usage: ['digitalSignature'],
        uri_sans: ['spiffe://example.org/ns/default/sa/web'],
        dns_sans: [],
      },
    },
    'go-spiffe ParseAndVerify accepts it',
  );
  t.same(spiffe.ok ? [...spiffe.leaf.ext_key_usage].sort() : [], ['clientAuth', 'serverAuth'], 'go-spiffe sees serverAuth + clientAuth');

  const ed = generateKeyPairSync('ed25519');
  const edSvid = await client.signWorkload('spiffe://example.org/ns/default/sa/web', await createCsr(ed.privateKey, ed.publicKey));
  t.equal(new X509Certificate(edSvid.chainPem).publicKey.asymmetricKeyType, 'ed25519', 'Ed25519 keys are accepted');
});

t.test('a CSR with a forged URI SAN, extra SANs and CA:true: only the authorized ID, CA:false', async (t) => {
  const { dir, client } = await vm1Client(t, ['spiffe://example.org/ns/default/sa/web']);
  const made = await opensslCsr(dir, 'evil', {
    subject: '/CN=evil',
    ext: [
      'subjectAltName = URI:spiffe://example.org/ns/prod/sa/admin,DNS:evil.example,IP:10.0.0.1',
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,keyCertSign,cRLSign',
    ],
  });
  t.equal(made.code, 0, made.stderr);
  const svid = await client.signWorkload('spiffe://example.org/ns/default/sa/web', await readFile(made.csr));
  const leaf = new X509Certificate(svid.chainPem);
  t.equal(leaf.subjectAltName, 'URI:spiffe://example.org/ns/default/sa/web', 'only the authorized ID');
  t.equal(leaf.ca, false, 'CA:false whatever the CSR asked');
  t.notMatch(leaf.subject, /evil/, 'the CSR subject is not copied');
  const text = await openssl(['x509', '-noout', '-text'], { input: leaf.toString() });
  t.notMatch(text, /Certificate Sign/, 'no keyCertSign');
  t.ok(leaf.checkPrivateKey(createPrivateKey(await readFile(made.key))), 'the public key is the CSR key');
});

t.test('bad requests fail with their codes and write only an audit row', async (t) => {
  const { tcp, dir, client } = await vm1Client(t, ['spiffe://example.org/ns/default/sa/*']);
  const id = 'spiffe://example.org/ns/default/sa/web';
  const good = (await freshCsr()).csr;
  const badSignature = Buffer.from(good);
  badSignature[badSignature.length - 5] = (badSignature[badSignature.length - 5] ?? 0) ^ 0xff;
  const p384 = await opensslCsr(dir, 'p384', { subject: '/CN=x', ext: [], key: 'P-384' });
  const rsa = await opensslCsr(dir, 'rsa', { subject: '/CN=x', ext: [], key: 'rsa' });
  const cases: Array<[string, string, Buffer, string]> = [
    ['garbage CSR', id, Buffer.from('not a csr at all'), 'MESH_E_CSR_INVALID'],
    ['truncated CSR', id, good.subarray(0, 40), 'MESH_E_CSR_INVALID'],
    ['signature that does not verify', id, badSignature, 'MESH_E_CSR_INVALID'],
    ['P-384 key', id, await readFile(p384.csr), 'MESH_E_KEY_UNSUPPORTED'],
    ['RSA key', id, await readFile(rsa.csr), 'MESH_E_KEY_UNSUPPORTED'],
    ['bad SPIFFE ID', 'spiffe://example.org/ns/../sa/web', good, 'MESH_E_SPIFFE_ID_INVALID'],
    ['not a SPIFFE ID', 'https://example.org/web', good, 'MESH_E_SPIFFE_ID_INVALID'],
    ['oversized CSR', id, Buffer.alloc(5000, 1), 'MESH_E_REQUEST_TOO_LARGE'],
  ];
  for (const [what, spiffeId, csr, code] of cases) {
    const before = counts(tcp.cp.db);
    await t.rejects(client.signWorkload(spiffeId, csr), { code }, what);
    const after = counts(tcp.cp.db);
    t.equal(after.certs, before.certs, `${what}: no certificate written`);
    t.equal(after.audit, before.audit + 1, `${what}: one audit row`);
    const last = tcp.cp.db.prepare('SELECT result FROM audit ORDER BY id DESC LIMIT 1').get() as { result: string };
    t.equal(last.result, code, `${what}: the audit row says ${code}`);
  }
  await t.rejects(client.signWorkload(id, Buffer.alloc(70_000, 1)), { message: /./ }, 'a message over 64 KiB is refused by the server');
  t.ok(fromPem((await client.signWorkload(id, good)).chainPem).length > 0, 'the same client still gets SVIDs after all that');
});

t.test('if the audit row cannot be written, the operation fails and nothing is issued', async (t) => {
  const { tcp, client } = await vm1Client(t, ['spiffe://example.org/ns/default/sa/web']);
  tcp.cp.db.exec(
    "CREATE TRIGGER no_audit BEFORE INSERT ON audit WHEN NEW.action = 'svid.sign' AND NEW.result = 'ok' BEGIN SELECT RAISE(ABORT, 'audit disk full'); END",
  );
  const before = counts(tcp.cp.db);
  await t.rejects(client.signWorkload('spiffe://example.org/ns/default/sa/web', (await freshCsr()).csr), {
    code: 'MESH_E_AUDIT_FAILED',
    message: /audit disk full/,
  });
  t.equal(counts(tcp.cp.db).certs, before.certs, 'no certificate row');
  tcp.cp.db.exec('DROP TRIGGER no_audit');
  const svid = await client.signWorkload('spiffe://example.org/ns/default/sa/web', (await freshCsr()).csr);
  t.ok(svid.serial, 'works again once the audit can be written');
});

t.test('requests are rate-limited per node', async (t) => {
  const { client } = await vm1Client(t, ['spiffe://example.org/ns/default/sa/web'], { rateLimit: { perSecond: 1, burst: 3 } });
  const csrs = await freshCsrs(6);
  const results = await Promise.allSettled(csrs.map((c) => client.signWorkload('spiffe://example.org/ns/default/sa/web', c.csr)));
  const limited = results.filter((r) => r.status === 'rejected' && (r.reason as { code: string }).code === 'MESH_E_RATE_LIMITED');
  t.ok(limited.length >= 2, `over the burst, requests are refused (${limited.length} of 6)`);
  t.ok(
    results.some((r) => r.status === 'fulfilled'),
    'within the burst they pass',
  );
});
